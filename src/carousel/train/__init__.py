"""Training: ``fit`` / ``Trainer`` for any module, callbacks, checkpoints, distributed runs.

>>> from carousel.train import fit, EarlyStopping, ModelCheckpoint
"""

from carousel.train.callbacks import (
    Callback,
    CSVLogger,
    EarlyStopping,
    LRScheduler,
    ModelCheckpoint,
    ReduceLROnPlateau,
    TensorBoard,
)
from carousel.train.checkpoint import load_state, load_weights, save_state, save_weights
from carousel.train.objectives import LOSSES, METRICS, OPTIMIZERS, Metric
from carousel.train.trainer import History, NonFiniteLossError, Trainer, fit, seed_everything
from carousel.train.tuning import OptunaPruning, suggest, tune

__all__ = [
    "LOSSES",
    "METRICS",
    "OPTIMIZERS",
    "CSVLogger",
    "Callback",
    "EarlyStopping",
    "History",
    "LRScheduler",
    "Metric",
    "ModelCheckpoint",
    "NonFiniteLossError",
    "OptunaPruning",
    "ReduceLROnPlateau",
    "TensorBoard",
    "Trainer",
    "fit",
    "load_state",
    "load_weights",
    "save_state",
    "save_weights",
    "seed_everything",
    "suggest",
    "tune",
]

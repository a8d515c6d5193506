"""Callbacks: hooks into :class:`~carousel.train.Trainer`'s loop, Keras-style.

The trainer calls, in order: ``on_train_begin``; per epoch ``on_epoch_begin``, ``on_batch_end``
after every batch, ``on_step_end`` after every optimizer step, ``on_epoch_end`` with the epoch's
logs, then ``on_epoch_finished`` (once every callback has seen the logs; checkpoints are written
there so that they hold every callback's updated state); finally ``on_train_end``. Epochs are
numbered from 1. A callback that keeps state across epochs returns it from ``state_dict`` so that a
resumed run continues exactly.
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from carousel.train.trainer import Trainer

Logs = Mapping[str, float]


class Callback:
    """Base class: every hook is a no-op; override the ones you need."""

    def on_train_begin(self, trainer: Trainer) -> None: ...
    def on_epoch_begin(self, trainer: Trainer, epoch: int) -> None: ...
    def on_batch_end(self, trainer: Trainer, batch: int, logs: Logs) -> None: ...
    def on_step_end(self, trainer: Trainer) -> None: ...
    def on_epoch_end(self, trainer: Trainer, epoch: int, logs: Logs) -> None: ...
    def on_epoch_finished(self, trainer: Trainer, epoch: int, logs: Logs) -> None: ...
    def on_train_end(self, trainer: Trainer) -> None: ...

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        return None


def _mode(monitor: str, mode: str) -> str:
    if mode not in ("auto", "min", "max"):
        raise ValueError(f"mode: expected 'auto', 'min' or 'max', got {mode!r}")
    if mode == "auto":
        return "max" if any(k in monitor for k in ("acc", "auc", "f1", "r2")) else "min"
    return mode


def _monitored(logs: Logs, monitor: str, owner: str) -> float:
    if monitor not in logs:
        hint = " (pass validation data or validation_split, or monitor 'loss')" if monitor.startswith("val_") else ""
        raise KeyError(f"{owner}: monitor {monitor!r} is not among the epoch's logs {sorted(logs)}{hint}")
    return float(logs[monitor])


class _Monitor:
    """Tracks the best value of a logged quantity."""

    def __init__(self, monitor: str, mode: str, min_delta: float) -> None:
        self.monitor, self.mode, self.min_delta = monitor, _mode(monitor, mode), abs(float(min_delta))
        self.best = math.inf if self.mode == "min" else -math.inf

    def improved(self, value: float) -> bool:
        if math.isnan(value):
            return False
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta


class EarlyStopping(Callback):
    """Stop when ``monitor`` has not improved by ``min_delta`` for ``patience`` epochs.

    With ``restore_best_weights`` the model ends training with the weights of its best epoch.

    Example:
        >>> stop = EarlyStopping(monitor="val_loss", patience=5)
        >>> stop.patience, stop.monitor.mode
        (5, 'min')
    """

    def __init__(self, monitor: str = "val_loss", *, patience: int = 10, min_delta: float = 0.0, mode: str = "auto",
                 restore_best_weights: bool = True, start_from_epoch: int = 0) -> None:
        if isinstance(patience, bool) or not isinstance(patience, int) or patience < 0:
            raise ValueError(f"patience: expected an integer >= 0, got {patience!r}")
        self.monitor = _Monitor(monitor, mode, min_delta)
        self.patience, self.restore_best_weights = patience, restore_best_weights
        self.start_from_epoch = start_from_epoch
        self.wait, self.best_epoch, self.stopped_epoch = 0, 0, 0
        self.best_weights: dict[str, torch.Tensor] | None = None

    def on_epoch_end(self, trainer: Trainer, epoch: int, logs: Logs) -> None:
        value = _monitored(logs, self.monitor.monitor, "EarlyStopping")
        if epoch <= self.start_from_epoch:
            return
        if self.monitor.improved(value):
            self.monitor.best, self.best_epoch, self.wait = value, epoch, 0
            if self.restore_best_weights:
                self.best_weights = {k: v.detach().clone() for k, v in trainer.model.state_dict().items()}
            return
        self.wait += 1
        if self.wait > self.patience:
            self.stopped_epoch = epoch
            trainer.stop_training = True

    def on_train_end(self, trainer: Trainer) -> None:
        if self.restore_best_weights and self.best_weights is not None:
            trainer.model.load_state_dict(self.best_weights)

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.monitor.best, "wait": self.wait, "best_epoch": self.best_epoch,
                "stopped_epoch": self.stopped_epoch, "best_weights": self.best_weights}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.monitor.best, self.wait = state["best"], state["wait"]
        self.best_epoch, self.stopped_epoch, self.best_weights = state["best_epoch"], state["stopped_epoch"], state[
            "best_weights"]


SchedulerLike = torch.optim.lr_scheduler.LRScheduler | torch.optim.lr_scheduler.ReduceLROnPlateau


class LRScheduler(Callback):
    """Drive any torch learning-rate scheduler: after every epoch (``interval="epoch"``) or every
    optimizer step (``interval="step"``).

    ``scheduler`` is a scheduler instance or a factory ``optimizer -> scheduler`` (useful when the
    trainer builds the optimizer from a name). A ``ReduceLROnPlateau`` is stepped with the epoch's
    ``monitor`` value.

    Example:
        >>> cb = LRScheduler(lambda opt: torch.optim.lr_scheduler.StepLR(opt, step_size=10, gamma=0.5))
        >>> cb.interval
        'epoch'
    """

    def __init__(self, scheduler: SchedulerLike | Callable[[torch.optim.Optimizer], SchedulerLike], *,
                 interval: str = "epoch", monitor: str = "val_loss") -> None:
        if interval not in ("epoch", "step"):
            raise ValueError(f"interval: expected 'epoch' or 'step', got {interval!r}")
        if not callable(scheduler) and not hasattr(scheduler, "step"):
            raise TypeError(f"scheduler: expected a torch LR scheduler or a factory optimizer -> scheduler, "
                            f"got {type(scheduler).__name__}")
        self._source, self.interval, self.monitor = scheduler, interval, monitor
        self.scheduler: SchedulerLike | None = None

    @property
    def _plateau(self) -> bool:
        return isinstance(self.scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau)

    def on_train_begin(self, trainer: Trainer) -> None:
        if self.scheduler is None:
            source = self._source
            is_instance = isinstance(source, (torch.optim.lr_scheduler.LRScheduler,
                                              torch.optim.lr_scheduler.ReduceLROnPlateau))
            self.scheduler = source if is_instance else source(trainer.optimizer)
        if getattr(self.scheduler, "optimizer", trainer.optimizer) is not trainer.optimizer:
            raise ValueError("scheduler: expected a scheduler of the trainer's optimizer, got one built on another "
                             "optimizer (pass a factory: lambda optimizer: Scheduler(optimizer, ...))")
        if self._plateau and self.interval == "step":
            raise ValueError("interval: expected 'epoch' for ReduceLROnPlateau (it needs an epoch's logs), got 'step'")

    def on_step_end(self, trainer: Trainer) -> None:
        if self.interval == "step":
            self.scheduler.step()

    def on_epoch_end(self, trainer: Trainer, epoch: int, logs: Logs) -> None:
        if self.interval != "epoch":
            return
        if self._plateau:
            self.scheduler.step(_monitored(logs, self.monitor, "ReduceLROnPlateau"))
        else:
            self.scheduler.step()

    def state_dict(self) -> dict[str, Any]:
        return {"scheduler": self.scheduler.state_dict() if self.scheduler is not None else None}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if state.get("scheduler") is not None:
            self.scheduler.load_state_dict(dict(state["scheduler"]))


class ReduceLROnPlateau(LRScheduler):
    """Multiply the learning rate by ``factor`` when ``monitor`` stalls for ``patience`` epochs
    (torch's ``ReduceLROnPlateau``, driven by the epoch's logs)."""

    def __init__(self, monitor: str = "val_loss", *, factor: float = 0.1, patience: int = 10, mode: str = "auto",
                 min_delta: float = 1e-4, cooldown: int = 0, min_lr: float = 0.0) -> None:
        if not 0.0 < factor < 1.0:
            raise ValueError(f"factor: expected a number in (0, 1), got {factor!r}")
        resolved = _mode(monitor, mode)

        def build(optimizer: torch.optim.Optimizer) -> torch.optim.lr_scheduler.ReduceLROnPlateau:
            return torch.optim.lr_scheduler.ReduceLROnPlateau(
                optimizer, mode=resolved, factor=factor, patience=patience, threshold=min_delta,
                threshold_mode="abs", cooldown=cooldown, min_lr=min_lr)

        super().__init__(build, interval="epoch", monitor=monitor)


class ModelCheckpoint(Callback):
    """Write the whole training state (model, optimizer, schedulers and callbacks, RNG states,
    epoch, history) to ``path`` after an epoch, atomically, as safetensors + JSON.

    ``path`` may contain ``{epoch}`` and any logged name (``"ckpt-{epoch:03d}-{val_loss:.4f}.safetensors"``).
    With ``save_best_only`` it is written only when ``monitor`` improves. Resume with
    ``fit(..., resume=path)``. Only the main process writes.
    """

    def __init__(self, path: str | os.PathLike, *, monitor: str = "val_loss", mode: str = "auto",
                 save_best_only: bool = False, every: int = 1) -> None:
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise ValueError(f"every: expected an integer >= 1, got {every!r}")
        self.path, self.save_best_only, self.every = str(path), save_best_only, every
        self.monitor = _Monitor(monitor, mode, 0.0)
        self.last_path: Path | None = None
        self._due = False

    def on_epoch_end(self, trainer: Trainer, epoch: int, logs: Logs) -> None:
        self._due = epoch % self.every == 0
        if self.save_best_only:
            value = _monitored(logs, self.monitor.monitor, "ModelCheckpoint")
            self._due = self.monitor.improved(value)
            if self._due:
                self.monitor.best = value

    def on_epoch_finished(self, trainer: Trainer, epoch: int, logs: Logs) -> None:
        if self._due:
            self.last_path = Path(self.path.format(epoch=epoch, **logs))
            trainer.save_checkpoint(self.last_path)

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.monitor.best}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.monitor.best = state["best"]


class CSVLogger(Callback):
    """Append one row per epoch (epoch and every logged value) to a CSV file (main process only).

    A resumed run appends to the existing file instead of starting it again.
    """

    def __init__(self, path: str | os.PathLike, *, separator: str = ",", append: bool = False) -> None:
        self.path, self.separator, self.append = Path(path), separator, append
        self._keys: list[str] | None = None

    def on_train_begin(self, trainer: Trainer) -> None:
        if not trainer.is_main:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        keep = (self.append or trainer.resumed) and self.path.exists()
        if keep:
            with open(self.path, newline="") as handle:
                header = next(csv.reader(handle, delimiter=self.separator), None)
            self._keys = header[1:] if header else None
        else:
            self.path.write_text("")
            self._keys = None

    def on_epoch_end(self, trainer: Trainer, epoch: int, logs: Logs) -> None:
        if not trainer.is_main:
            return
        with open(self.path, "a", newline="") as handle:
            writer = csv.writer(handle, delimiter=self.separator)
            if self._keys is None:
                self._keys = list(logs)
                writer.writerow(["epoch", *self._keys])
            writer.writerow([epoch, *(repr(float(logs[k])) if k in logs else "" for k in self._keys)])


class TensorBoard(Callback):
    """Write every logged value as a TensorBoard scalar per epoch (and the batch loss every
    ``batch_every`` batches when set). Needs the ``tensorboard`` package (``carousel[tensorboard]``)."""

    def __init__(self, log_dir: str | os.PathLike = "runs", *, batch_every: int | None = None) -> None:
        self.log_dir, self.batch_every = str(log_dir), batch_every
        self._writer = None
        self._batches = 0

    def on_train_begin(self, trainer: Trainer) -> None:
        if not trainer.is_main:
            return
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as err:  # pragma: no cover - depends on the environment
            raise ImportError("TensorBoard: expected the tensorboard package, got none installed "
                              "(pip install 'carousel[tensorboard]')") from err
        self._writer = SummaryWriter(self.log_dir)

    def on_batch_end(self, trainer: Trainer, batch: int, logs: Logs) -> None:
        self._batches += 1
        if self._writer is not None and self.batch_every and self._batches % self.batch_every == 0:
            self._writer.add_scalar("batch/loss", logs["loss"], self._batches)

    def on_epoch_end(self, trainer: Trainer, epoch: int, logs: Logs) -> None:
        if self._writer is None:
            return
        for key, value in logs.items():
            self._writer.add_scalar(f"epoch/{key}", value, epoch)
        self._writer.flush()

    def on_train_end(self, trainer: Trainer) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

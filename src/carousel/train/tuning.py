"""Hyperparameter search with Optuna: a search space as a plain dict, a pruning callback that stops
unpromising trials after any epoch, and :func:`tune` to run a study. Needs ``optuna``
(``pip install 'carousel[tune]'``)."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from carousel.train.callbacks import Callback, Logs, _monitored

if TYPE_CHECKING:
    import optuna

    from carousel.train.trainer import Trainer

SpaceSpec = Sequence[Any] | tuple[float, float] | tuple[float, float, str]


def _optuna():
    try:
        import optuna
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError("tune: expected the optuna package, got none installed (pip install 'carousel[tune]')"
                          ) from err
    return optuna


def suggest(trial: optuna.Trial, space: Mapping[str, SpaceSpec]) -> dict[str, Any]:
    """Draw one value per entry of ``space`` from an Optuna trial.

    A list is a categorical choice; ``(low, high)`` an int range when both are ints, else a float
    range; ``(low, high, "log")`` the same on a log scale.

    Example:
        >>> import optuna
        >>> trial = optuna.trial.FixedTrial({"hidden_size": 32, "lr": 0.01, "cell": "lstm"})
        >>> suggest(trial, {"hidden_size": (8, 64), "lr": (1e-4, 1e-1, "log"), "cell": ["lstm"]})
        {'hidden_size': 32, 'lr': 0.01, 'cell': 'lstm'}
    """
    values: dict[str, Any] = {}
    for name, spec in space.items():
        if isinstance(spec, list):
            if not spec:
                raise ValueError(f"space[{name!r}]: expected a non-empty list of choices, got []")
            values[name] = trial.suggest_categorical(name, spec)
            continue
        if not isinstance(spec, tuple) or len(spec) not in (2, 3) or (len(spec) == 3 and spec[2] != "log"):
            raise ValueError(f"space[{name!r}]: expected a list of choices, (low, high) or (low, high, 'log'), "
                             f"got {spec!r}")
        low, high, log = spec[0], spec[1], len(spec) == 3
        if not low < high:
            raise ValueError(f"space[{name!r}]: expected low < high, got {spec!r}")
        if isinstance(low, int) and isinstance(high, int) and not isinstance(low, bool):
            values[name] = trial.suggest_int(name, low, high, log=log)
        else:
            values[name] = trial.suggest_float(name, float(low), float(high), log=log)
    return values


class OptunaPruning(Callback):
    """Report ``monitor`` to an Optuna trial after every epoch and stop the trial (``TrialPruned``)
    when the study's pruner says so.

    ``step_offset`` shifts the reported step, so that several fits in one trial (an ensemble, the
    folds of a backtest) report distinct steps.
    """

    def __init__(self, trial: optuna.Trial, monitor: str = "val_loss", *, step_offset: int = 0) -> None:
        self.trial, self.monitor, self.step_offset = trial, monitor, step_offset

    def on_epoch_end(self, trainer: Trainer, epoch: int, logs: Logs) -> None:
        value = _monitored(logs, self.monitor, "OptunaPruning")
        step = self.step_offset + epoch
        self.trial.report(value if math.isfinite(value) else float("inf"), step)
        if self.trial.should_prune():
            raise _optuna().TrialPruned(f"{self.monitor} {value:.6g} at epoch {epoch}")


_PRUNERS = ("median", "hyperband", "none")


def tune(objective: Callable[[optuna.Trial], float], *, n_trials: int = 20, timeout: float | None = None,
         direction: str = "minimize", pruner: str | Any = "median", seed: int | None = 0,
         study_name: str | None = None, storage: str | None = None) -> optuna.Study:
    """Run an Optuna study of ``objective`` (a trial -> value function) with pruning.

    ``pruner`` is ``"median"`` (stop a trial whose intermediate value is worse than the median of
    earlier trials at the same step, after 5 startup trials and 5 warm-up steps), ``"hyperband"``,
    ``"none"`` or an Optuna pruner. ``seed`` seeds the TPE sampler. ``storage`` (e.g.
    ``"sqlite:///study.db"``) makes the study persistent and resumable.

    Example:
        >>> study = tune(lambda trial: (trial.suggest_float("x", -3, 3) - 1) ** 2, n_trials=30)
        >>> abs(study.best_params["x"] - 1) < 0.5
        True
    """
    optuna = _optuna()
    if isinstance(n_trials, bool) or not isinstance(n_trials, int) or n_trials < 1:
        raise ValueError(f"n_trials: expected an integer >= 1, got {n_trials!r}")
    if direction not in ("minimize", "maximize"):
        raise ValueError(f"direction: expected 'minimize' or 'maximize', got {direction!r}")
    if isinstance(pruner, str):
        if pruner not in _PRUNERS:
            raise ValueError(f"pruner: expected one of {_PRUNERS} or an optuna pruner, got {pruner!r}")
        pruner = {"median": lambda: optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=5),
                  "hyperband": optuna.pruners.HyperbandPruner, "none": optuna.pruners.NopPruner}[pruner]()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction=direction, pruner=pruner, sampler=optuna.samplers.TPESampler(seed=seed),
                                study_name=study_name, storage=storage, load_if_exists=storage is not None)
    study.optimize(objective, n_trials=n_trials, timeout=timeout)
    return study

"""``Forecaster``: a recurrent-network forecaster with scikit-learn conventions.

The method, for a target series ``y_t`` (``k`` columns) and optional covariates ``x_t``:

1. transform (``transform``): ``w_t = log y_t`` (or ``log(1 + y_t)``, or ``y_t``);
2. difference (``difference = d``, ``seasonal_difference = D``, ``season = s``)::

       e_t = (1 - B)^d (1 - B^s)^D w_t          (B is the backshift, B w_t = w_{t-1})

3. scale (``scaler``): ``v_t = (e_t - mu) / sigma`` (standard) or ``(e_t - min) / (max - min)``;
4. a recurrent layer reads the last ``L = lookback`` steps ``u_tau = [v_tau, x_tau]``,
   ``tau = t-L..t-1``, and a linear head maps its last output and the covariates of the target
   steps to the forecast, plus (``linear_skip``) a linear autoregression on the window, the
   "highway" of LSTNet (Lai et al. 2018)::

       h = RNN(u_{t-L}, ..., u_{t-1})[-1]
       v_hat_{t..t+H-1} = W [h, x_t, ..., x_{t+H-1}] + b + A [u_{t-L}, ..., u_{t-1}]

   (``H = 1`` for ``strategy="recursive"``);

5. ``ensemble`` networks trained from different seeds are averaged, and every step is inverted
   (unscale, ``w_t = e_t - sum_{j>=1} c_j w_{t-j}`` with ``c`` the coefficients of the difference
   polynomial, ``y_t = exp(w_t)``).

``strategy="recursive"`` trains a one-step model and feeds its forecasts back as inputs;
``strategy="direct"`` trains one output per step of the horizon.

Intervals are bootstrap paths over held-out residuals (the calibration set of split-conformal
prediction): the residuals ``r = v_t - v_hat_t`` of every ensemble member on the held-out tail of
the training windows (the last ``validation_split`` of them), centred, are drawn with replacement
and added to the forecast of the member that each path follows (path ``p`` follows member
``p mod ensemble``, so the spread of the ensemble enters too), fed back through the recursion and
inverted like the point forecast. The interval is the pair of empirical quantiles
``(1 - coverage) / 2`` and ``(1 + coverage) / 2`` of 1000 paths at each step. The direct strategy
draws whole residual vectors (all ``H`` steps of one window), keeping their correlation.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from carousel.models import _preprocessing as prep
from carousel.models._base import Estimator, NotFittedError
from carousel.models.metrics import MetricsTable, metrics_table
from carousel.train import Callback, EarlyStopping
from carousel.train import fit as train
from carousel.train.checkpoint import atomic_write_bytes

__all__ = ["Backtest", "Forecaster"]

STRATEGIES = ("recursive", "direct")
_PATHS = 1000  # bootstrap paths per forecast origin for the intervals
_FORMAT = "carousel.models.Forecaster"
_CONFIG, _WEIGHTS = "config.json", "model.safetensors"


# ---------------------------------------------------------------------- the network
def recurrent_layers() -> dict[str, type]:
    """The recurrent layer classes exported by :mod:`carousel.nn`, by lower-case name: the names
    that ``Forecaster(cell=...)`` accepts.

    Example:
        >>> recurrent_layers()["lstm"].__name__
        'LSTM'
    """
    import carousel.nn
    from carousel.runner import RecurrentLayer

    found = {}
    for name in getattr(carousel.nn, "__all__", dir(carousel.nn)):
        obj = getattr(carousel.nn, name, None)
        if isinstance(obj, type) and issubclass(obj, RecurrentLayer):
            found[name.lower()] = obj
    return found


def _layer_class(cell: object) -> type:
    if isinstance(cell, type):
        return cell
    layers = recurrent_layers()
    if isinstance(cell, str) and cell.lower() in layers:
        return layers[cell.lower()]
    raise ValueError(f"cell: expected one of {sorted(layers)} or a recurrent layer class, got {cell!r}")


class _Network(nn.Module):
    """A recurrent layer over ``lookback`` steps of ``n_inputs`` features, a linear head over its
    last output and ``n_future`` covariate values, and optionally a linear map of the whole window
    added to it. Input: one flat tensor ``(B, lookback * n_inputs + n_future)``; output
    ``(B, n_outputs)``."""

    def __init__(
        self,
        layer: type,
        lookback: int,
        n_inputs: int,
        n_future: int,
        n_outputs: int,
        hidden_size: int,
        num_layers: int,
        dropout: float,
        cell_options: dict,
        linear_skip: bool,
    ) -> None:
        super().__init__()
        self.lookback, self.n_inputs = lookback, n_inputs
        try:
            self.rnn = layer(
                n_inputs, hidden_size, num_layers=num_layers, batch_first=True,
                dropout=dropout if num_layers > 1 else 0.0, **cell_options,
            )  # fmt: skip
            with torch.no_grad():
                width = self.rnn(torch.zeros(1, 1, n_inputs))[0].shape[-1]
        except TypeError as err:  # a layer that needs more than torch.nn.LSTM's arguments and input
            raise ValueError(
                f"cell: expected a layer built as {layer.__name__}(input_size, hidden_size, num_layers=..., "
                f"batch_first=True, dropout=..., **cell_options) and called on the input alone, got {err} "
                "(give the missing arguments in cell_options)"
            ) from err
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(width + n_future, n_outputs)
        self.skip = nn.Linear(lookback * n_inputs, n_outputs, bias=False) if linear_skip else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n_seq = self.lookback * self.n_inputs
        seq = x[:, :n_seq].reshape(x.shape[0], self.lookback, self.n_inputs)  # (B, L, F)
        last = self.rnn(seq)[0][:, -1]  # (B, hidden)
        out = self.head(torch.cat([self.drop(last), x[:, n_seq:]], dim=1))
        return out if self.skip is None else out + self.skip(x[:, :n_seq])


# ---------------------------------------------------------------------- results
@dataclass
class Backtest:
    """Rolling-origin forecasts with the actual values and the baselines on the same points.

    ``predictions``, ``actuals``, ``naive``, ``seasonal_naive`` (None without a season), ``lower``
    and ``upper`` (None without ``coverage``) have shape ``(origins, horizon, k)``; ``origins`` are
    the positions of the first forecast step of each origin (the history is everything before).
    ``metrics`` is the table of RMSE, MAE and MAPE with rows model / naive / seasonal_naive.
    """

    origins: np.ndarray
    predictions: np.ndarray
    actuals: np.ndarray
    naive: np.ndarray
    seasonal_naive: np.ndarray | None
    metrics: MetricsTable
    lower: np.ndarray | None = None
    upper: np.ndarray | None = None
    coverage: float | None = None
    names: list[str] = field(default_factory=list)
    index: object = None

    def to_frame(self):
        """One row per origin, step and target: ``origin, step, target, time, actual, prediction,
        naive, seasonal_naive[, lower, upper]`` (a ``pandas.DataFrame``)."""
        import pandas as pd

        n, h, k = self.predictions.shape
        o, s, j = np.meshgrid(np.arange(n), np.arange(h), np.arange(k), indexing="ij")
        position = self.origins[o] + s
        columns = {
            "origin": self.origins[o].ravel(),
            "step": s.ravel() + 1,
            "target": np.asarray(self.names, dtype=object)[j.ravel()],
            "time": np.asarray(self.index)[position.ravel()] if self.index is not None else position.ravel(),
            "actual": self.actuals.ravel(),
            "prediction": self.predictions.ravel(),
            "naive": self.naive.ravel(),
        }
        if self.seasonal_naive is not None:
            columns["seasonal_naive"] = self.seasonal_naive.ravel()
        if self.lower is not None and self.upper is not None:
            columns["lower"], columns["upper"] = self.lower.ravel(), self.upper.ravel()
        return pd.DataFrame(columns)


# ---------------------------------------------------------------------- checks
def _integer(name: str, value: object, low: int, *, allow_none: bool = False) -> int | None:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        expected = f"an integer >= {low}" + (" or None" if allow_none else "")
        raise ValueError(f"{name}: expected {expected}, got {value!r}")
    return int(value)


def _real(name: str, value: object, low: float, high: float, *, closed_high: bool = False) -> float:
    ok = not isinstance(value, bool) and isinstance(value, (int, float, np.floating, np.integer))
    if ok:
        ok = math.isfinite(value) and low <= value and (value <= high if closed_high else value < high)
    if not ok:
        bracket = "]" if closed_high else ")"
        raise ValueError(f"{name}: expected a number in [{low}, {high}{bracket}, got {value!r}")
    return float(value)


def _choice(name: str, value: object, choices: tuple) -> Any:
    if not any(value is c or (isinstance(value, str) and value == c) for c in choices):
        raise ValueError(f"{name}: expected one of {list(choices)}, got {value!r}")
    return value


def _coverage(value: object) -> float:
    ok = not isinstance(value, bool) and isinstance(value, (int, float, np.floating)) and 0.0 < value < 1.0
    if not ok:
        raise ValueError(f"coverage: expected a probability in (0, 1), got {value!r}")
    return float(value)


# ---------------------------------------------------------------------- the estimator
class Forecaster(Estimator):
    r"""Recurrent-network forecaster for one or more series, with covariates, intervals and
    backtests, reported beside the naive and seasonal-naive baselines.

    The method (see the module docstring and ``docs/forecasting.md``)::

        w_t = log y_t                                   transform
        e_t = (1 - B)^d (1 - B^s)^D w_t                 differences
        v_t = (e_t - mu) / sigma                        scaler
        v_hat_{t..t+H-1} = W [RNN(u_{t-L..t-1})[-1], x_{t..t+H-1}] + b + A u_{t-L..t-1}
                                                        u_tau = [v_tau, x_tau]

    averaged over ``ensemble`` networks and inverted step by step.

    Args:
        cell: recurrent layer, by name among the layers of :mod:`carousel.nn` (case-insensitive,
            e.g. ``"lstm"``) or a class with ``torch.nn.LSTM``'s constructor and ``(output, state)``
            return.
        hidden_size, num_layers: of the recurrent layer.
        lookback: ``L``, the number of (differenced) steps each forecast reads.
        horizon: ``H``, the outputs per window for ``strategy="direct"``; the default ``steps``.
        strategy: ``"recursive"`` (one-step model fed back its forecasts) or ``"direct"``.
        transform: ``"log"``, ``"log1p"``, None, or ``"auto"`` (log when every value is > 0).
        difference: ``d``, the order of ordinary differencing.
        seasonal_difference: ``D``, the order of seasonal differencing, or ``"auto"`` (1 when the
            season is known, else 0).
        season: ``s``, the period; None infers it from a pandas index (monthly 12, quarterly 4,
            weekly 52, daily 7, business-daily 5, hourly 24).
        scaler: ``"standard"``, ``"minmax"`` or None; fitted on the differenced training values
            (covariates get their own of the same kind).
        fill_missing: ``"raise"`` (name the NaNs), ``"interpolate"`` (linear in time) or
            ``"ffill"``.
        ensemble: number of networks trained from seeds ``random_state + i`` and averaged.
        epochs, batch_size, lr, weight_decay, clip_norm: training (Adam, MSE on ``v``).
        validation_split: the last fraction of the training windows, held out for early stopping and
            for the interval residuals.
        early_stopping: patience in epochs on the held-out loss (the training loss when
            ``validation_split=0``), restoring the best weights; None trains all ``epochs``.
        dropout: between stacked layers and before the head.
        linear_skip: add the linear autoregression ``A u_{t-L..t-1}`` on the window to the head
            (LSTNet's highway); False leaves the recurrent layer alone.
        cell_options: extra keyword arguments of the layer (e.g. ``dict(peepholes=True)``).
        random_state: int seed (None: a fresh one at each ``fit``).
        verbose: passed to :func:`carousel.train.fit`.

    Attributes (after ``fit``): ``members_`` (the networks), ``season_``, ``transform_``,
    ``seasonal_difference_``, ``n_targets_``, ``n_covariates_``, ``target_names_``,
    ``residuals_`` (held-out residuals in the scaled space), ``history_`` (per member),
    ``seeds_``, ``fit_time_``.

    Example:
        >>> import numpy as np
        >>> t = np.arange(120)
        >>> y = 10 + np.sin(2 * np.pi * t / 12) + 0.01 * t
        >>> f = Forecaster(season=12, lookback=12, hidden_size=8, epochs=3, ensemble=1, random_state=0)
        >>> f.fit(y).predict(3).shape
        (3,)
        >>> point, lower, upper = f.predict(3, return_interval=True, coverage=0.8)
        >>> bool((lower <= point).all() and (point <= upper).all())
        True
    """

    def __init__(
        self,
        cell: str | type = "lstm",
        hidden_size: int = 32,
        num_layers: int = 1,
        lookback: int = 24,
        horizon: int = 1,
        strategy: str = "recursive",
        transform: str | None = "auto",
        difference: int = 0,
        seasonal_difference: int | str = "auto",
        season: int | None = None,
        scaler: str | None = "standard",
        fill_missing: str = "raise",
        ensemble: int = 5,
        epochs: int = 200,
        batch_size: int = 16,
        lr: float = 0.01,
        weight_decay: float = 0.0,
        clip_norm: float | None = 1.0,
        validation_split: float = 0.2,
        early_stopping: int | None = 20,
        dropout: float = 0.0,
        linear_skip: bool = True,
        cell_options: dict | None = None,
        random_state: int | None = None,
        verbose: int = 0,
    ) -> None:
        self.cell = cell
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.lookback = lookback
        self.horizon = horizon
        self.strategy = strategy
        self.transform = transform
        self.difference = difference
        self.seasonal_difference = seasonal_difference
        self.season = season
        self.scaler = scaler
        self.fill_missing = fill_missing
        self.ensemble = ensemble
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.clip_norm = clip_norm
        self.validation_split = validation_split
        self.early_stopping = early_stopping
        self.dropout = dropout
        self.linear_skip = linear_skip
        self.cell_options = cell_options
        self.random_state = random_state
        self.verbose = verbose

    # ------------------------------------------------------------------ parameters
    def _check_params(self) -> None:
        self._layer = _layer_class(self.cell)
        _integer("hidden_size", self.hidden_size, 1)
        _integer("num_layers", self.num_layers, 1)
        _integer("lookback", self.lookback, 1)
        _integer("horizon", self.horizon, 1)
        _choice("strategy", self.strategy, STRATEGIES)
        _choice("transform", self.transform, prep.TRANSFORMS)
        _integer("difference", self.difference, 0)
        if self.seasonal_difference != "auto":
            _integer("seasonal_difference", self.seasonal_difference, 0)
        _integer("season", self.season, 2, allow_none=True)
        _choice("scaler", self.scaler, prep.SCALERS)
        _choice("fill_missing", self.fill_missing, prep.FILL_MISSING)
        _integer("ensemble", self.ensemble, 1)
        _integer("epochs", self.epochs, 1)
        _integer("batch_size", self.batch_size, 1)
        _real("lr", self.lr, 0.0, math.inf)
        if self.lr == 0:
            raise ValueError(f"lr: expected a number > 0, got {self.lr!r}")
        _real("weight_decay", self.weight_decay, 0.0, math.inf)
        if self.clip_norm is not None:
            _real("clip_norm", self.clip_norm, 0.0, math.inf)
        _real("validation_split", self.validation_split, 0.0, 1.0)
        _integer("early_stopping", self.early_stopping, 1, allow_none=True)
        _real("dropout", self.dropout, 0.0, 1.0)
        if not isinstance(self.linear_skip, (bool, np.bool_)):
            raise ValueError(f"linear_skip: expected True or False, got {self.linear_skip!r}")
        if self.cell_options is not None and not isinstance(self.cell_options, dict):
            raise ValueError(f"cell_options: expected a dict of keyword arguments or None, got {self.cell_options!r}")
        _integer("random_state", self.random_state, 0, allow_none=True)

    # ------------------------------------------------------------------ fit
    def fit(self, y: object, X: object = None, *, callbacks: Sequence[Callback] = ()) -> Forecaster:
        """Learn from the series ``y`` (pandas Series/DataFrame, or array ``(T,)`` / ``(T, k)``) and
        optional covariates ``X`` (``(T, E)``, matched with ``y`` by position; their future values
        must then be given to :meth:`predict`). ``callbacks``: extra :mod:`carousel.train` callbacks
        (e.g. ``OptunaPruning``) given to the training of every ensemble member in turn, beside the
        early stopping. Returns ``self``."""
        start = time.perf_counter()
        self._check_params()
        extra = list(callbacks)
        for i, cb in enumerate(extra):
            if not isinstance(cb, Callback):
                raise TypeError(f"callbacks[{i}]: expected a carousel.train.Callback, got {type(cb).__name__}")
        series = prep.as_series("y", y, fill_missing=self.fill_missing)
        values = series.values
        covariates = self._covariates("X", X, None, len(values), None) if X is not None else None

        self.season_ = self.season if self.season is not None else prep.season_of_index(series.index)
        if self.seasonal_difference == "auto":
            self.seasonal_difference_ = 1 if self.season_ else 0
        else:
            self.seasonal_difference_ = int(self.seasonal_difference)
            if self.seasonal_difference_ and not self.season_:
                raise ValueError(
                    f"season: expected the seasonal period (an integer >= 2), required by "
                    f"seasonal_difference={self.seasonal_difference_}, got None (it cannot be inferred from "
                    f"{'the index' if series.index is not None else 'an array without a time index'})"
                )
        if self.transform == "auto":
            self.transform_ = "log" if (values > 0).all() else None
        else:
            self.transform_ = self.transform
        prep.check_domain("y", values, self.transform_)
        self._coef = prep.difference_coefficients(self.difference, self.seasonal_difference_, self.season_)
        m = len(self._coef) - 1
        direct = self.strategy == "direct"
        out_steps = self.horizon if direct else 1
        needed = m + self.lookback + out_steps + (1 if self.validation_split > 0 else 0)
        if len(values) < needed:
            lost = f" + {m} consumed by differencing" if m else ""
            spare = " + 1 held out for validation" if self.validation_split > 0 else ""
            raise ValueError(
                f"y: expected at least {needed} observations (lookback={self.lookback} + "
                f"{'horizon=' + str(self.horizon) if direct else '1 target'}{lost}{spare}), got {len(values)}"
            )

        self.n_targets_ = values.shape[1]
        self.n_covariates_ = 0 if covariates is None else covariates.values.shape[1]
        self.target_names_ = series.names
        self.covariate_names_ = [] if covariates is None else covariates.names
        self._kind = series.kind
        self._index_state = prep.index_state(series.index)

        e = prep.apply_difference(prep.transform(values, self.transform_), self._coef)
        self._scaler = prep.Scaler.fit(self.scaler, e)
        v = self._scaler(e)
        xv = None
        if covariates is not None:
            self._xscaler = prep.Scaler.fit(self.scaler, covariates.values)
            xv = self._xscaler(covariates.values)[m:]
        inputs, targets = self._windows(v, xv, out_steps)
        n_val = round(len(inputs) * self.validation_split) if self.validation_split > 0 else 0
        n_val = min(max(n_val, 1 if self.validation_split > 0 else 0), len(inputs) - 1)
        n_train = len(inputs) - n_val

        base = int(self.random_state) if self.random_state is not None else int(np.random.default_rng().integers(2**31))
        self.seeds_ = [base + i for i in range(self.ensemble)]
        x_train, y_train = torch.as_tensor(inputs[:n_train]), torch.as_tensor(targets[:n_train])
        x_val, y_val = torch.as_tensor(inputs[n_train:]), torch.as_tensor(targets[n_train:])
        n_future = self.n_covariates_ * out_steps
        members, histories, residuals = [], [], []
        with _preserved_rng():
            for seed in self.seeds_:
                net = self._network(n_future, out_steps, seed)
                history = self._train(net, seed, (x_train, y_train), (x_val, y_val) if n_val else None, extra)
                # Residuals for the intervals: held-out windows, or the training ones when none are held out.
                x_cal, y_cal = (x_val, y_val) if n_val else (x_train, y_train)
                with torch.no_grad():
                    residuals.append((y_cal - net(x_cal)).numpy())
                members.append(net)
                histories.append(dict(history.history))

        self.members_, self.history_ = members, histories  # only now is the estimator fitted
        pooled = np.concatenate(residuals).astype(np.float64)
        self.residuals_ = pooled - pooled.mean(axis=0)
        self.calibration_ = "held-out" if n_val else "in-sample"

        keep = max(m + self.lookback, self.season_ or 1)
        self._tail = values[-keep:].copy()
        self._xtail = covariates.values[-keep:].copy() if covariates is not None else None
        self.fit_time_ = time.perf_counter() - start
        return self

    def _train(self, net: _Network, seed: int, data: tuple, validation: tuple | None, extra: list[Callback]):
        options: dict[str, Any] = {}
        if self.weight_decay:
            options["optimizer_options"] = {"weight_decay": self.weight_decay}
        callbacks = list(extra)
        if self.early_stopping is not None:
            monitor = "val_loss" if validation is not None else "loss"
            callbacks.append(EarlyStopping(monitor=monitor, patience=self.early_stopping, restore_best_weights=True))
        history = train(
            net, data, loss="mse", optimizer="adam", lr=self.lr, epochs=self.epochs, batch_size=self.batch_size,
            validation_data=validation, callbacks=callbacks, shuffle=True, seed=seed, verbose=self.verbose,
            clip_norm=self.clip_norm, **options,
        )  # fmt: skip
        net.eval()
        return history

    def _network(self, n_future: int, out_steps: int, seed: int) -> _Network:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return _Network(
                self._layer, self.lookback, self.n_targets_ + self.n_covariates_, n_future,
                out_steps * self.n_targets_, self.hidden_size, self.num_layers, self.dropout,
                dict(self.cell_options or {}),
                self.linear_skip,
            )  # fmt: skip

    def _windows(self, v: np.ndarray, xv: np.ndarray | None, out_steps: int) -> tuple[np.ndarray, np.ndarray]:
        """Training pairs: inputs ``(N, L * (k + E) + H * E)`` and targets ``(N, H * k)``, float32."""
        L = self.lookback
        n = len(v) - L - out_steps + 1
        past = np.arange(n)[:, None] + np.arange(L)  # (N, L)
        future = np.arange(n)[:, None] + L + np.arange(out_steps)  # (N, H)
        seq = v[past] if xv is None else np.concatenate([v[past], xv[past]], axis=-1)
        parts = [seq.reshape(n, -1)]
        if xv is not None:
            parts.append(xv[future].reshape(n, -1))
        return (
            np.concatenate(parts, axis=1).astype(np.float32),
            v[future].reshape(n, -1).astype(np.float32),
        )

    def _covariates(self, name: str, X: object, expected_cols: int | None, rows: int | None, min_rows: int | None):
        cov = prep.as_series(name, X, fill_missing=self.fill_missing)
        n, e = cov.values.shape
        if expected_cols is not None and e != expected_cols:
            raise ValueError(f"{name}: expected {expected_cols} covariate columns (as in fit), got {e}")
        if rows is not None and n != rows:
            raise ValueError(f"{name}: expected {rows} rows (one per observation of y), got {n}")
        if min_rows is not None and n < min_rows:
            raise ValueError(f"{name}: expected at least {min_rows} rows of future covariates, got {n}")
        return cov

    # ------------------------------------------------------------------ forecasting core
    def _check_fitted(self, method: str) -> None:
        if not hasattr(self, "members_"):
            raise NotFittedError(
                f"{method}: this Forecaster is not fitted yet; call fit(y) first (or Forecaster.load(path))"
            )

    def _forecast(
        self, ys: np.ndarray, xs: np.ndarray | None, fut: np.ndarray | None, steps: int, paths: int = 0
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Forecast ``steps`` values after each of ``B`` history tails ``ys`` ``(B, m + L, k)`` with
        covariate tails ``xs`` ``(B, m + L, E)`` and future covariates ``fut`` ``(B, S, E)``.
        Returns the point forecasts ``(B, steps, k)`` and, if ``paths``, bootstrap paths
        ``(B, paths, steps, k)``."""
        m = len(self._coef) - 1
        w = prep.transform(ys, self.transform_)
        v = self._scaler(prep.apply_difference(w, self._coef))  # (B, L, k)
        xv = self._xscaler(xs[:, m:]) if xs is not None else None
        fv = self._xscaler(fut) if fut is not None else None
        point = self._roll(v, xv, fv, w[:, w.shape[1] - m :], steps, None, None)
        if not np.isfinite(point).all():
            step = int(np.argwhere(~np.isfinite(point))[0][1]) + 1
            raise FloatingPointError(
                f"steps: the forecast overflowed at step {step} of {steps} (the inverse transform of a diverging "
                f"recursion); expected finite values, got inf or NaN"
            )
        if not paths:
            return point, None
        b = len(ys)
        rng = np.random.default_rng(self.seeds_[0] + 7919)

        def rep(a: np.ndarray | None) -> np.ndarray | None:
            return None if a is None else np.repeat(a, paths, axis=0)

        member = np.tile(np.arange(paths) % len(self.members_), b)

        def noise() -> np.ndarray:
            return self.residuals_[rng.integers(len(self.residuals_), size=b * paths)]

        samples = self._roll(rep(v), rep(xv), rep(fv), rep(w[:, w.shape[1] - m :]), steps, member, noise)
        return point, samples.reshape(b, paths, steps, -1)

    def _net(self, inputs: np.ndarray, member: np.ndarray | None) -> np.ndarray:
        x = torch.as_tensor(inputs, dtype=torch.float32)
        with torch.no_grad():
            if member is None:
                return torch.stack([net(x) for net in self.members_]).mean(0).double().numpy()
            out = np.empty((len(x), self.members_[0].head.out_features))
            for i, net in enumerate(self.members_):
                rows = np.flatnonzero(member == i)
                if len(rows):
                    out[rows] = net(x[rows]).double().numpy()
            return out

    def _roll(self, v, xv, fv, wtail, steps, member, noise) -> np.ndarray:
        n, k = v.shape[0], self.n_targets_
        out = []

        def emit(vhat: np.ndarray, wtail: np.ndarray) -> np.ndarray:
            w_new = prep.undifference(self._scaler.inverse(vhat), wtail, self._coef)
            out.append(w_new)
            return np.concatenate([wtail[:, 1:], w_new[:, None]], axis=1)

        def inputs(v, xv, future) -> np.ndarray:
            seq = v if xv is None else np.concatenate([v, xv], axis=-1)
            parts = [seq.reshape(n, -1)] + ([] if future is None else [future.reshape(n, -1)])
            return np.concatenate(parts, axis=1)

        if self.strategy == "direct":
            vhat = self._net(inputs(v, xv, None if fv is None else fv[:, : self.horizon]), member)
            if noise is not None:
                vhat = vhat + noise()
            vhat = vhat.reshape(n, self.horizon, k)
            for s in range(steps):
                wtail = emit(vhat[:, s], wtail)
        else:
            for s in range(steps):
                future = None if fv is None else fv[:, s : s + 1]
                vhat = self._net(inputs(v, xv, future), member)
                if noise is not None:
                    vhat = vhat + noise()
                wtail = emit(vhat, wtail)
                v = np.concatenate([v[:, 1:], vhat[:, None]], axis=1)
                if xv is not None:
                    xv = np.concatenate([xv[:, 1:], future], axis=1)
        return prep.inverse_transform(np.stack(out, axis=1), self.transform_)

    def _steps(self, steps: object) -> int:
        steps = self.horizon if steps is None else _integer("steps", steps, 1)
        if self.strategy == "direct" and steps > self.horizon:
            raise ValueError(f"steps: expected at most horizon={self.horizon} for strategy='direct', got {steps}")
        return steps  # type: ignore[return-value]

    def _future_rows(self, steps: int) -> int:
        return self.horizon if self.strategy == "direct" else steps

    # ------------------------------------------------------------------ predict
    def predict(
        self,
        steps: int | None = None,
        X: object = None,
        *,
        history: object = None,
        history_X: object = None,
        return_interval: bool = False,
        coverage: float = 0.9,
    ):
        """Forecast ``steps`` (default ``horizon``) values after the end of the series given to
        ``fit``, or after ``history`` (a newer series with the same columns; ``history_X`` its
        covariates), without refitting.

        ``X``: the covariates of the forecast steps, ``(steps, E)`` (``(horizon, E)`` for the
        direct strategy), required when ``fit`` had covariates. Returns the forecasts like the input
        of ``fit`` (pandas with a continued index, ``(steps,)`` or ``(steps, k)``); with
        ``return_interval=True`` the tuple ``(forecast, lower, upper)`` for central ``coverage``.
        """
        self._check_fitted("predict")
        steps = self._steps(steps)
        cover = _coverage(coverage) if return_interval else None
        ys, xs, state = self._history(history, history_X)
        fut = self._future(X, steps)
        point, samples = self._forecast(ys[None], xs, fut, steps, _PATHS if return_interval else 0)
        out = self._format(point[0], state)
        if samples is None or cover is None:
            return out
        lower, upper = np.quantile(samples[0], [(1 - cover) / 2, (1 + cover) / 2], axis=0)
        return out, self._format(lower, state), self._format(upper, state)

    def _history(self, history: object, history_X: object) -> tuple[np.ndarray, np.ndarray | None, dict]:
        m = len(self._coef) - 1
        need = m + self.lookback
        if history is None:
            if history_X is not None:
                raise ValueError("history_X: expected None when history is None, got covariates")
            xs = None if self._xtail is None else self._xtail[None, -need:]
            return self._tail[-need:], xs, self._index_state
        series = prep.as_series("history", history, fill_missing=self.fill_missing)
        self._check_columns("history", series.values)
        if len(series.values) < need:
            raise ValueError(f"history: expected at least {need} observations (lookback + differencing), got "
                             f"{len(series.values)}")  # fmt: skip
        xs = None
        if self.n_covariates_:
            if history_X is None:
                raise ValueError(f"history_X: expected the {self.n_covariates_} covariates of history, got None")
            cov = self._covariates("history_X", history_X, self.n_covariates_, len(series.values), None)
            xs = cov.values[None, -need:]
        elif history_X is not None:
            raise ValueError("history_X: expected None (the model was fitted without covariates), got covariates")
        return series.values[-need:], xs, prep.index_state(series.index)

    def _check_columns(self, name: str, values: np.ndarray, *, domain: bool = True) -> None:
        if domain:
            prep.check_domain(name, values, self.transform_)
        if values.shape[1] != self.n_targets_:
            raise ValueError(f"{name}: expected {self.n_targets_} target columns (as in fit), got {values.shape[1]}")

    def _future(self, X: object, steps: int) -> np.ndarray | None:
        if not self.n_covariates_:
            if X is not None:
                raise ValueError("X: expected None (the model was fitted without covariates), got covariates")
            return None
        rows = self._future_rows(steps)
        if X is None:
            raise ValueError(f"X: expected the future covariates, shape ({rows}, {self.n_covariates_}), got None")
        values = self._covariates("X", X, self.n_covariates_, None, rows).values
        return values[None, :rows]

    def _format(self, values: np.ndarray, state: dict):
        if self._kind in ("1d", "2d"):
            return values[:, 0] if self._kind == "1d" else values
        import pandas as pd

        index = prep.future_index(state, len(values))
        if self._kind == "series":
            return pd.Series(values[:, 0], index=index, name=self.target_names_[0])
        return pd.DataFrame(values, index=index, columns=self.target_names_)

    # ------------------------------------------------------------------ evaluation
    def evaluate(self, y_true: object, X: object = None, *, history: object = None, history_X: object = None):
        """Forecast ``len(y_true)`` steps after the training series (or ``history``) and return the
        :class:`~carousel.models.metrics.MetricsTable` of the model, the naive and the
        seasonal-naive forecasts from the same history, against ``y_true``."""
        self._check_fitted("evaluate")
        actual = prep.as_series("y_true", y_true).values
        self._check_columns("y_true", actual, domain=False)
        steps = self._steps(len(actual))
        ys, xs, _ = self._history(history, history_X)
        full = (
            self._tail if history is None else prep.as_series("history", history, fill_missing=self.fill_missing).values
        )
        point, _ = self._forecast(ys[None], xs, self._future(X, steps), steps)
        forecasts = {"model": point[0], "naive": np.repeat(full[-1:], steps, axis=0)}
        if self.season_ and len(full) >= self.season_:
            last = full[-self.season_ :]
            forecasts["seasonal_naive"] = np.stack([last[h % self.season_] for h in range(steps)])
        return metrics_table(actual, forecasts)

    def backtest(
        self,
        y: object,
        start: int,
        horizon: int = 1,
        *,
        X: object = None,
        refit: bool | int = False,
        stride: int = 1,
        coverage: float | None = None,
    ) -> Backtest:
        """Rolling-origin evaluation on ``y`` (the whole series, training part included).

        For each origin ``t = start, start + stride, ...`` (with ``t + horizon <= len(y)``) forecast
        ``y[t : t + horizon]`` from the actual history ``y[:t]`` (and ``X[:t + horizon]``: ``X`` has a
        row per observation of ``y`` and may run further, as the direct strategy reads the covariates
        of all ``self.horizon`` steps). ``refit=False`` uses this fitted model as it is;
        ``refit=True`` fits a copy on ``y[:t]`` at every origin, ``refit=k`` at every ``k``-th
        origin. The naive (``y[t-1]``) and seasonal naive (``y[t+h-s*ceil(h/s)]``) forecasts of the
        same points give the baselines of ``metrics``; ``coverage`` adds intervals. ``self`` is
        never modified.

        Example:
            >>> import numpy as np
            >>> y = 10 + np.sin(np.arange(60) / 2)
            >>> f = Forecaster(lookback=6, hidden_size=4, epochs=3, ensemble=1, random_state=0).fit(y[:50])
            >>> result = f.backtest(y, start=50, horizon=2, coverage=0.8)
            >>> result.predictions.shape, result.origins[:3].tolist(), sorted(result.metrics)
            ((9, 2, 1), [50, 51, 52], ['model', 'naive'])
        """
        horizon = _integer("horizon", horizon, 1)  # type: ignore[assignment]
        stride = _integer("stride", stride, 1)  # type: ignore[assignment]
        if isinstance(refit, bool):
            every = 1 if refit else 0
        else:
            every = _integer("refit", refit, 1)  # type: ignore[assignment]
        cover = None if coverage is None else _coverage(coverage)
        if not every:
            self._check_fitted("backtest (refit=False)")
            model = self
        else:
            model = self._clone()  # type: ignore[assignment]
            model._check_params()
        series = prep.as_series("y", y, fill_missing=self.fill_missing)
        values = series.values
        n = len(values)
        cov = None if X is None else prep.as_series("X", X, fill_missing=self.fill_missing).values
        if cov is not None and len(cov) < n:
            raise ValueError(f"X: expected at least {n} rows (one per observation of y), got {len(cov)}")
        start = _integer("start", start, 1)  # type: ignore[assignment]
        if start + horizon > n:
            raise ValueError(f"start: expected at most len(y) - horizon = {n - horizon}, got {start}")
        origins = np.arange(start, n - horizon + 1, stride)

        if every:
            blocks = [origins[i : i + every] for i in range(0, len(origins), every)]
        else:
            blocks = [origins]
        preds, lows, ups = [], [], []
        for block in blocks:
            if every:
                first = int(block[0])
                model.fit(_slice(y, first), None if X is None else _slice(X, first))
            p, lo, up = model._backtest_block(values, cov, block, horizon, cover)
            preds.append(p)
            lows.append(lo)
            ups.append(up)
        predictions = np.concatenate(preds)
        steps = np.arange(horizon)
        actuals = values[origins[:, None] + steps]  # (N, h, k)
        naive = np.repeat(values[origins - 1][:, None], horizon, axis=1)
        season = model.season_
        snaive = None
        forecasts = {"model": predictions, "naive": naive}
        if season and start >= season:
            back = season * np.ceil((steps + 1) / season).astype(int)
            snaive = values[origins[:, None] + steps - back]
            forecasts["seasonal_naive"] = snaive
        return Backtest(
            origins=origins, predictions=predictions, actuals=actuals, naive=naive, seasonal_naive=snaive,
            metrics=metrics_table(actuals, forecasts), lower=np.concatenate(lows) if cover else None,
            upper=np.concatenate(ups) if cover else None, coverage=cover, names=list(series.names),
            index=series.index,
        )  # fmt: skip

    def _backtest_block(self, values, cov, origins, horizon, cover):
        steps = self._steps(horizon)
        self._check_columns("y", values)
        need = len(self._coef) - 1 + self.lookback
        if origins[0] < need:
            raise ValueError(
                f"start: expected at least {need} (lookback + differencing) so that every origin has a history, "
                f"got {int(origins[0])}"
            )
        window = origins[:, None] + np.arange(-need, 0)  # (N, need)
        ys = values[window]
        xs = fut = None
        if self.n_covariates_:
            if cov is None:
                raise ValueError(f"X: expected the {self.n_covariates_} covariates of y, got None")
            if cov.shape[1] != self.n_covariates_:
                raise ValueError(f"X: expected {self.n_covariates_} covariate columns (as in fit), got {cov.shape[1]}")
            rows = self._future_rows(steps)
            if origins[-1] + rows > len(cov):
                raise ValueError(
                    f"X: expected {int(origins[-1]) + rows} rows (the direct strategy reads the covariates of all "
                    f"horizon={self.horizon} steps after the last origin {int(origins[-1])}; rows after the end of y "
                    f"may be given), got {len(cov)}"
                )
            xs = cov[window]
            fut = cov[origins[:, None] + np.arange(rows)]
        elif cov is not None:
            raise ValueError("X: expected None (the model was fitted without covariates), got covariates")
        point, samples = self._forecast(ys, xs, fut, steps, _PATHS if cover else 0)
        if samples is None or cover is None:
            return point, None, None
        lower, upper = np.quantile(samples, [(1 - cover) / 2, (1 + cover) / 2], axis=1)
        return point, lower, upper

    # ------------------------------------------------------------------ save / load
    def save(self, path: str | os.PathLike) -> Path:
        """Write the fitted forecaster to the directory ``path``: ``model.safetensors`` (the
        weights of every member) and ``config.json`` (hyperparameters and the fitted
        preprocessing state). Each file is written to a temporary file and moved into place.
        Returns the directory.

        Example:
            >>> import tempfile, numpy as np
            >>> y = 10 + np.sin(np.arange(40) / 2)
            >>> f = Forecaster(lookback=4, hidden_size=4, epochs=2, ensemble=1, random_state=0).fit(y)
            >>> with tempfile.TemporaryDirectory() as tmp:
            ...     g = Forecaster.load(f.save(tmp + "/model"))
            >>> bool((g.predict(3) == f.predict(3)).all())
            True
        """
        self._check_fitted("save")
        from safetensors.torch import save as serialize

        tensors = {
            f"member{i}.{name}": t.detach().cpu().contiguous()
            for i, net in enumerate(self.members_)
            for name, t in net.state_dict().items()
        }
        blob = serialize(tensors)
        digest = hashlib.sha256(blob).hexdigest()
        params = self.get_params()
        params["cell"] = _cell_name(self.cell)
        try:
            json.dumps(params["cell_options"], default=_json_scalar)
        except TypeError as err:
            raise ValueError(
                f"cell_options: expected JSON-serialisable values to save, got {self.cell_options!r}"
            ) from err
        config = {
            "format": _FORMAT,
            "version": 1,
            "params": params,
            "state": {
                "season": self.season_,
                "transform": self.transform_,
                "seasonal_difference": self.seasonal_difference_,
                "n_targets": self.n_targets_,
                "n_covariates": self.n_covariates_,
                "target_names": self.target_names_,
                "covariate_names": self.covariate_names_,
                "kind": self._kind,
                "index": self._index_state,
                "scaler": self._scaler.state(),
                "covariate_scaler": self._xscaler.state() if self.n_covariates_ else None,
                "tail": self._tail.tolist(),
                "covariate_tail": None if self._xtail is None else self._xtail.tolist(),
                "residuals": self.residuals_.tolist(),
                "calibration": self.calibration_,
                "seeds": self.seeds_,
                "history": self.history_,
                "fit_time": self.fit_time_,
            },
            "weights_sha256": digest,
        }
        text = json.dumps(config, indent=1, default=_json_scalar)
        directory = Path(path)
        directory.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(directory / _WEIGHTS, blob)
        atomic_write_bytes(directory / _CONFIG, text.encode("utf-8"))
        return directory

    @classmethod
    def load(cls, path: str | os.PathLike, *, cell: type | None = None) -> Forecaster:
        """Read a forecaster written by :meth:`save` (no pickle: JSON and safetensors only).
        ``cell`` gives the layer class when it was not a layer of :mod:`carousel.nn` or
        ``torch.nn``."""
        from safetensors.torch import load_file

        directory = Path(path)
        config_path, weights = directory / _CONFIG, directory / _WEIGHTS
        for p in (config_path, weights):
            if not p.is_file():
                raise FileNotFoundError(
                    f"path: expected a directory written by Forecaster.save with {p.name}, got {directory}"
                )
        config = json.loads(config_path.read_text(encoding="utf-8"))
        if not isinstance(config, dict) or config.get("format") != _FORMAT:
            raise ValueError(f"path: expected a {_FORMAT} checkpoint, got format {config.get('format')!r}")
        digest = hashlib.sha256(weights.read_bytes()).hexdigest()
        if digest != config["weights_sha256"]:
            raise ValueError(
                f"path: {_WEIGHTS} does not match {_CONFIG} (expected sha256 {config['weights_sha256']}, got {digest})"
            )
        params = dict(config["params"])
        params["cell"] = _resolve_cell(params["cell"], cell)
        self = cls(**params)
        self._check_params()
        s = config["state"]
        self.season_, self.transform_ = s["season"], s["transform"]
        self.seasonal_difference_ = s["seasonal_difference"]
        self.n_targets_, self.n_covariates_ = s["n_targets"], s["n_covariates"]
        self.target_names_, self.covariate_names_ = s["target_names"], s["covariate_names"]
        self._kind, self._index_state = s["kind"], s["index"]
        self._scaler = prep.Scaler.from_state(s["scaler"])
        if self.n_covariates_:
            self._xscaler = prep.Scaler.from_state(s["covariate_scaler"])
        self._tail = np.asarray(s["tail"], dtype=np.float64)
        self._xtail = None if s["covariate_tail"] is None else np.asarray(s["covariate_tail"], dtype=np.float64)
        self.residuals_ = np.asarray(s["residuals"], dtype=np.float64)
        self.calibration_, self.seeds_, self.history_ = s["calibration"], s["seeds"], s["history"]
        self.fit_time_ = s["fit_time"]
        self._coef = prep.difference_coefficients(self.difference, self.seasonal_difference_, self.season_)
        out_steps = self.horizon if self.strategy == "direct" else 1
        tensors = load_file(str(weights))
        self.members_ = []
        for i, seed in enumerate(self.seeds_):
            net = self._network(self.n_covariates_ * out_steps, out_steps, seed)
            prefix = f"member{i}."
            net.load_state_dict({k[len(prefix) :]: t for k, t in tensors.items() if k.startswith(prefix)})
            net.eval()
            self.members_.append(net)
        return self


@contextlib.contextmanager
def _preserved_rng():
    """Leave the caller's torch, NumPy and ``random`` generators as they were (training seeds them)."""
    np_state, py_state = np.random.get_state(), random.getstate()
    with torch.random.fork_rng(devices=[]):
        try:
            yield
        finally:
            np.random.set_state(np_state)
            random.setstate(py_state)


def _json_scalar(value: object) -> object:
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _slice(data: object, stop: int):
    if prep._is_pandas(data):
        return data.iloc[:stop]  # type: ignore[attr-defined]
    return np.asarray(data)[:stop]


def _cell_name(cell: object) -> str:
    if isinstance(cell, str):
        return cell
    for cls in recurrent_layers().values():
        if cls is cell:
            return f"carousel.nn.{cls.__name__}"
    if isinstance(cell, type) and getattr(torch.nn, cell.__name__, None) is cell:
        return f"torch.nn.{cell.__name__}"
    return f"{cell.__module__}.{cell.__qualname__}"  # type: ignore[union-attr]


def _resolve_cell(name: str, given: type | None) -> str | type:
    if given is not None:
        return given
    for prefix, layers in (("torch.nn.", vars(torch.nn)), ("carousel.nn.", None)):
        if name.startswith(prefix):
            if layers is None:
                layers = {cls.__name__: cls for cls in recurrent_layers().values()}
            found = layers.get(name[len(prefix) :])
            if isinstance(found, type):
                return found
    if name.lower() in recurrent_layers():
        return name
    raise ValueError(
        f"cell: the checkpoint's layer {name!r} is not a layer of carousel.nn or torch.nn; expected it as "
        f"Forecaster.load(path, cell=...), got None"
    )

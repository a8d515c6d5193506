"""Forecast errors and the two baselines every forecast is compared with.

For actual values ``y_i`` and forecasts ``f_i``, ``i = 1..n`` (every target and step pooled)::

    RMSE = sqrt(1/n sum_i (y_i - f_i)^2)
    MAE  = 1/n sum_i |y_i - f_i|
    MAPE = 100/n sum_i |y_i - f_i| / |y_i|          (in percent; undefined when some y_i = 0)

The baselines forecast ``h = 1, 2, ...`` steps after the last observation ``y_T`` of a history with
season ``s``::

    naive           f_{T+h} = y_T
    seasonal naive  f_{T+h} = y_{T+h-s*ceil(h/s)}      (the value one season earlier)
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

__all__ = ["MetricsTable", "mae", "mape", "metrics_table", "naive_forecast", "rmse", "seasonal_naive_forecast"]

COLUMNS = ("rmse", "mae", "mape")


def _pair(y_true: object, y_pred: object) -> tuple[np.ndarray, np.ndarray]:
    a = _numeric("y_true", y_true)
    b = _numeric("y_pred", y_pred)
    if a.shape != b.shape:
        raise ValueError(f"y_pred: expected the shape of y_true {a.shape}, got {b.shape}")
    if a.size == 0:
        raise ValueError("y_true: expected at least one value, got an empty array")
    return a, b


def _numeric(name: str, values: object) -> np.ndarray:
    try:
        out = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise TypeError(f"{name}: expected numeric values, got {type(values).__name__} ({err})") from err
    bad = ~np.isfinite(out)
    if bad.any():
        positions = np.argwhere(bad)[:10].tolist()
        raise ValueError(f"{name}: expected finite values, got NaN or inf at positions {positions}")
    return out


def rmse(y_true: object, y_pred: object) -> float:
    """Root mean squared error ``sqrt(mean((y_true - y_pred)^2))`` over all values.

    Example:
        >>> rmse([1.0, 2.0, 3.0], [1.0, 2.0, 5.0])
        1.1547005383792515
    """
    a, b = _pair(y_true, y_pred)
    return float(np.sqrt(np.mean((a - b) ** 2)))


def mae(y_true: object, y_pred: object) -> float:
    """Mean absolute error ``mean(|y_true - y_pred|)`` over all values.

    Example:
        >>> mae([1.0, 2.0, 3.0], [1.0, 2.0, 5.0])
        0.6666666666666666
    """
    a, b = _pair(y_true, y_pred)
    return float(np.mean(np.abs(a - b)))


def mape(y_true: object, y_pred: object) -> float:
    """Mean absolute percentage error ``100 * mean(|y_true - y_pred| / |y_true|)``, in percent.

    Raises ``ValueError`` when an actual value is 0 (the error is undefined there).

    Example:
        >>> mape([100.0, 200.0], [110.0, 180.0])
        10.0
    """
    a, b = _pair(y_true, y_pred)
    zero = a == 0
    if zero.any():
        positions = np.argwhere(zero)[:10].tolist()
        raise ValueError(f"y_true: expected nonzero actual values for MAPE, got 0 at positions {positions}")
    return float(100.0 * np.mean(np.abs(a - b) / np.abs(a)))


def naive_forecast(history: object, steps: int) -> np.ndarray:
    """Repeat the last observation: ``f_{T+h} = y_T``. ``history`` is ``(T,)`` or ``(T, k)``; returns
    ``(steps,)`` or ``(steps, k)``.

    Example:
        >>> naive_forecast([1.0, 2.0, 3.0], 2)
        array([3., 3.])
    """
    y = _numeric("history", history)
    if y.shape[0] < 1:
        raise ValueError("history: expected at least 1 observation, got 0")
    return np.repeat(y[-1:], steps, axis=0)


def seasonal_naive_forecast(history: object, steps: int, season: int) -> np.ndarray:
    """Repeat the last season: ``f_{T+h} = y_{T+h-s*ceil(h/s)}``. Shapes as :func:`naive_forecast`.

    Example:
        >>> seasonal_naive_forecast([1.0, 2.0, 3.0, 4.0], 3, season=2)
        array([3., 4., 3.])
    """
    y = _numeric("history", history)
    if isinstance(season, bool) or not isinstance(season, (int, np.integer)) or season < 1:
        raise ValueError(f"season: expected an integer >= 1, got {season!r}")
    if y.shape[0] < season:
        raise ValueError(f"history: expected at least season={season} observations, got {y.shape[0]}")
    last = y[-season:]
    return np.stack([last[h % season] for h in range(steps)])


class MetricsTable(dict):
    """Errors of a forecast and of its baselines on the same points: ``{row: {column: value}}``.

    Rows are ``"model"``, ``"naive"`` and ``"seasonal_naive"`` (the last only when a season is
    known); columns are ``"rmse"``, ``"mae"`` and ``"mape"`` (percent; ``None`` when an actual value
    is 0). ``str(table)`` prints it aligned; :meth:`to_frame` gives a pandas DataFrame.

    Example:
        >>> table = metrics_table([10.0, 12.0], {"model": [10.5, 11.5], "naive": [9.0, 9.0]})
        >>> table["model"]["rmse"], sorted(table)
        (0.5, ['model', 'naive'])
    """

    def to_frame(self):
        """The table as a ``pandas.DataFrame`` (rows = forecasters, columns = metrics)."""
        import pandas as pd

        return pd.DataFrame.from_dict(dict(self), orient="index", columns=list(COLUMNS))

    def __str__(self) -> str:
        width = max(len(r) for r in self) + 2 if self else 7
        lines = [" " * width + "".join(f"{c:>10}" for c in COLUMNS)]
        for row, values in self.items():
            cells = "".join(f"{'-':>10}" if values[c] is None else f"{values[c]:>10.3f}" for c in COLUMNS)
            lines.append(f"{row:<{width}}{cells}")
        return "\n".join(lines)


def metrics_table(y_true: object, forecasts: Mapping[str, object]) -> MetricsTable:
    """RMSE, MAE and MAPE of each named forecast against the same actual values.

    Example:
        >>> print(metrics_table([10.0, 20.0], {"model": [11.0, 19.0]}))
                     rmse       mae      mape
        model       1.000     1.000     7.500
    """
    table = MetricsTable()
    for name, pred in forecasts.items():
        a, b = _pair(y_true, pred)
        row = {"rmse": rmse(a, b), "mae": mae(a, b), "mape": None if (a == 0).any() else mape(a, b)}
        if any(v is not None and not math.isfinite(v) for v in row.values()):
            raise ValueError(f"forecasts[{name!r}]: expected finite errors, got {row}")
        table[name] = row
    return table

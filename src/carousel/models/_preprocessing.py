"""Input checks and the invertible transforms of :class:`carousel.models.Forecaster`.

Every function here works on NumPy arrays of shape ``(..., T, k)`` (time on the second-last axis).
pandas is imported only when a pandas object is given.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass

import numpy as np

FILL_MISSING = ("raise", "interpolate", "ffill")
TRANSFORMS = ("auto", "log", "log1p", None)
SCALERS = ("standard", "minmax", None)

# Seasonal period of a pandas frequency whose multiple is 1 (``"MS"`` -> 12).
_SEASON_OF_FREQ = {
    "M": 12, "MS": 12, "ME": 12, "BM": 12, "BMS": 12, "BME": 12, "SM": 24, "SMS": 24, "SME": 24,
    "Q": 4, "QS": 4, "QE": 4, "BQ": 4, "BQS": 4, "BQE": 4,
    "W": 52, "D": 7, "B": 5, "C": 5, "H": 24, "BH": 24, "CBH": 24,
}  # fmt: skip


def _is_pandas(obj: object) -> bool:
    return type(obj).__module__.split(".")[0] == "pandas"


@dataclass
class Series:
    """Validated values of a series: ``values`` ``(T, k)`` float64, column ``names``, how it came
    (``"series" | "frame" | "1d" | "2d"``) and its time ``index`` (pandas objects only)."""

    values: np.ndarray
    names: list[str]
    kind: str
    index: object = None


def _position_text(positions: np.ndarray, index: object) -> str:
    shown = positions[:10].tolist()
    text = f"positions {shown}"
    if index is not None:
        text += f" (index {[str(index[p]) for p in shown]})"
    if len(positions) > 10:
        text += f" and {len(positions) - 10} more"
    return text


def as_series(name: str, data: object, *, fill_missing: str = "raise") -> Series:
    """Check a series (pandas Series/DataFrame, NumPy array, or nested sequence) and return it as a
    :class:`Series`: numeric, finite, with missing values filled or refused."""
    if data is None:
        raise TypeError(f"{name}: expected a series (pandas Series/DataFrame or array), got None")
    index = None
    if _is_pandas(data) and hasattr(data, "dtypes"):
        index = data.index
        if data.ndim == 1:
            kind, names, columns = "series", [str(data.name) if data.name is not None else "y"], [data]
        else:
            kind, names, columns = "frame", [str(c) for c in data.columns], [data[c] for c in data.columns]
        for col_name, col in zip(names, columns):
            if col.dtype.kind not in "iuf":
                raise TypeError(f"{name}: expected numeric values, got column {col_name!r} of dtype {col.dtype}")
        values = data.to_numpy(dtype=np.float64, na_value=np.nan)
    else:
        if isinstance(data, np.ndarray):
            raw = data
        else:
            try:
                raw = np.asarray(data, dtype=object)
            except ValueError as err:
                raise ValueError(f"{name}: expected a rectangular array, got {type(data).__name__} ({err})") from None
        if raw.dtype.kind not in "iufO":
            raise TypeError(f"{name}: expected numeric values, got dtype {raw.dtype}")
        if raw.dtype.kind == "O":
            values = np.empty(raw.shape, dtype=np.float64)
            for pos, item in np.ndenumerate(raw):
                if item is None:
                    values[pos] = np.nan
                elif isinstance(item, (int, float, np.integer, np.floating)) and not isinstance(item, (bool, np.bool_)):
                    values[pos] = float(item)
                elif isinstance(item, (list, tuple, np.ndarray)):
                    raise ValueError(f"{name}: expected a rectangular array, got rows of different lengths")
                else:
                    raise TypeError(f"{name}: expected numeric values, got {item!r} at position {list(pos)}")
        else:
            values = raw.astype(np.float64)
        if values.ndim not in (1, 2):
            raise ValueError(f"{name}: expected a 1-D (time,) or 2-D (time, columns) array, got shape {values.shape}")
        kind = "1d" if values.ndim == 1 else "2d"
        names = ["y"] if kind == "1d" else [str(j) for j in range(values.shape[1])]
    if values.size == 0:
        raise ValueError(f"{name}: expected at least one observation and one column, got shape {values.shape}")
    values = values.reshape(len(values), -1)
    infinite = np.isinf(values).any(axis=1)
    if infinite.any():
        raise ValueError(
            f"{name}: expected finite values, got inf at {_position_text(np.flatnonzero(infinite), index)}"
        )
    missing = np.isnan(values).any(axis=1)
    if missing.any():
        values = fill(name, values, missing, fill_missing, index)
    return Series(values, names, kind, index)


def fill(name: str, values: np.ndarray, missing: np.ndarray, how: str, index: object) -> np.ndarray:
    """Fill NaNs column by column: ``"interpolate"`` linearly in time (nearest value at the ends),
    ``"ffill"`` with the last value seen (the first value backwards at the start); ``"raise"``
    names the positions."""
    if how == "raise":
        raise ValueError(
            f"{name}: expected no missing values, got NaN at {_position_text(np.flatnonzero(missing), index)}; "
            f"pass fill_missing='interpolate' or 'ffill' to fill them"
        )
    out = values.copy()
    t = np.arange(len(out))
    for j in range(out.shape[1]):
        col = out[:, j]
        ok = ~np.isnan(col)
        if not ok.any():
            raise ValueError(f"{name}: expected at least one value in column {j}, got only NaN")
        if how == "interpolate":
            col[~ok] = np.interp(t[~ok], t[ok], col[ok])
        else:
            last = np.maximum.accumulate(np.where(ok, t, -1))
            first = np.flatnonzero(ok)[0]
            col[:] = col[np.where(last < 0, first, last)]
    return out


def season_of_index(index: object) -> int | None:
    """The seasonal period implied by a pandas index frequency: 12 monthly, 4 quarterly, 52 weekly,
    7 daily, 5 business-daily, 24 hourly; None otherwise (or when the frequency is unknown)."""
    if index is None:
        return None
    freq = getattr(index, "freqstr", None)
    if freq is None and type(index).__name__ == "DatetimeIndex":
        freq = _infer_freq(index)
    if not freq:
        return None
    match = re.fullmatch(r"(1?)([A-Za-z]+)(-\w+)?", freq)
    if match is None:
        return None
    return _SEASON_OF_FREQ.get(match.group(2).upper())


def _infer_freq(index) -> str | None:
    """The frequency string pandas infers from the dates themselves, or None."""
    if len(index) < 3:
        return None
    import pandas as pd

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*infer_freq.*")
        try:
            freq = pd.infer_freq(index)
        except (TypeError, ValueError):
            return None
    return getattr(freq, "freqstr", freq)


def index_state(index: object) -> dict:
    """A JSON description of a pandas index, enough to continue it (see :func:`future_index`)."""
    if index is None or len(index) == 0:
        return {"kind": "none"}
    kind = type(index).__name__
    if kind in ("DatetimeIndex", "PeriodIndex"):
        freq = getattr(index, "freqstr", None)
        if freq is None and kind == "DatetimeIndex":
            freq = _infer_freq(index)
        if freq:
            return {"kind": kind, "freq": freq, "last": str(index[-1])}
        return {"kind": "none"}
    if kind == "RangeIndex" or (getattr(index, "dtype", None) is not None and index.dtype.kind in "iu"):
        step = int(index[-1] - index[-2]) if len(index) > 1 else 1
        return {"kind": "integer", "last": int(index[-1]), "step": step or 1}
    return {"kind": "none"}


def future_index(state: dict, steps: int):
    """The pandas index of the ``steps`` periods after the last one described by ``state``, or None
    when it cannot be continued."""
    import pandas as pd

    kind = state.get("kind")
    if kind == "DatetimeIndex":
        return pd.date_range(pd.Timestamp(state["last"]), periods=steps + 1, freq=state["freq"])[1:]
    if kind == "PeriodIndex":
        return pd.period_range(pd.Period(state["last"], freq=state["freq"]), periods=steps + 1)[1:]
    if kind == "integer":
        start = state["last"] + state["step"]
        return pd.RangeIndex(start, start + state["step"] * steps, state["step"])
    return None


# ---------------------------------------------------------------------- transforms
def transform(values: np.ndarray, kind: str | None) -> np.ndarray:
    """``w = log(y)`` (``"log"``), ``w = log(1 + y)`` (``"log1p"``) or ``w = y`` (None)."""
    if kind == "log":
        return np.log(values)
    if kind == "log1p":
        return np.log1p(values)
    return values


def inverse_transform(values: np.ndarray, kind: str | None) -> np.ndarray:
    """``y = exp(w)``, ``y = exp(w) - 1`` or ``y = w``."""
    with np.errstate(over="ignore"):  # an overflow is reported by the caller, which checks for inf
        if kind == "log":
            return np.exp(values)
        if kind == "log1p":
            return np.expm1(values)
    return values


def check_domain(name: str, values: np.ndarray, kind: str | None) -> None:
    """Refuse values outside a transform's domain, naming the first of them."""
    bad = values <= 0 if kind == "log" else values <= -1 if kind == "log1p" else None
    if bad is not None and bad.any():
        pos = np.argwhere(bad)[0].tolist()
        bound = "> 0" if kind == "log" else "> -1"
        raise ValueError(
            f"{name}: transform={kind!r} expects values {bound}, got {values[tuple(pos)]:g} at position {pos[0]}"
            + (f" (column {pos[1]})" if values.ndim > 1 and values.shape[1] > 1 else "")
        )


def difference_coefficients(difference: int, seasonal_difference: int, season: int | None) -> np.ndarray:
    """Coefficients ``c_0 = 1, c_1, ..., c_m`` of ``(1 - B)^d (1 - B^s)^D`` in the backshift ``B``:
    the differenced series is ``e_t = sum_j c_j w_{t-j}``.

    Example:
        >>> difference_coefficients(1, 1, 4).tolist()
        [1.0, -1.0, 0.0, 0.0, -1.0, 1.0]
    """
    c = np.array([1.0])
    for _ in range(difference):
        c = np.convolve(c, [1.0, -1.0])
    for _ in range(seasonal_difference):
        c = np.convolve(c, np.r_[1.0, np.zeros((season or 1) - 1), -1.0])
    return c


def apply_difference(w: np.ndarray, c: np.ndarray) -> np.ndarray:
    """``e_t = sum_j c_j w_{t-j}`` along axis -2: ``(..., T, k) -> (..., T - m, k)``."""
    m = len(c) - 1
    n = w.shape[-2]
    out = c[0] * w[..., m:n, :]
    for j in range(1, m + 1):
        if c[j]:
            out = out + c[j] * w[..., m - j : n - j, :]
    return out


def undifference(e: np.ndarray, tail: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Invert one step: ``w_t = e_t - sum_{j>=1} c_j w_{t-j}``. ``tail`` holds the last ``m``
    values ``(..., m, k)`` in time order; ``e`` is ``(..., k)``."""
    m = len(c) - 1
    w = e.copy()
    for j in range(1, m + 1):
        if c[j]:
            w = w - c[j] * tail[..., m - j, :]
    return w


@dataclass
class Scaler:
    """``v = (e - shift) / scale`` per column: ``"standard"`` (mean, standard deviation),
    ``"minmax"`` (min, max - min, so the training values lie in [0, 1]) or None (0, 1)."""

    shift: np.ndarray
    scale: np.ndarray

    @classmethod
    def fit(cls, kind: str | None, e: np.ndarray) -> Scaler:
        k = e.shape[-1]
        flat = e.reshape(-1, k)
        if kind == "standard":
            shift, scale = flat.mean(axis=0), flat.std(axis=0)
        elif kind == "minmax":
            shift, scale = flat.min(axis=0), flat.max(axis=0) - flat.min(axis=0)
        else:
            shift, scale = np.zeros(k), np.ones(k)
        scale = np.where(scale > 1e-12 * np.maximum(1.0, np.abs(shift)), scale, 1.0)
        return cls(shift, scale)

    def __call__(self, e: np.ndarray) -> np.ndarray:
        return (e - self.shift) / self.scale

    def inverse(self, v: np.ndarray) -> np.ndarray:
        return v * self.scale + self.shift

    def state(self) -> dict:
        return {"shift": self.shift.tolist(), "scale": self.scale.tolist()}

    @classmethod
    def from_state(cls, state: dict) -> Scaler:
        return cls(np.asarray(state["shift"], dtype=np.float64), np.asarray(state["scale"], dtype=np.float64))

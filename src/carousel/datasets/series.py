"""Real time series for forecasting, and the Mackey-Glass chaotic series.

The airline passengers series is bundled with the package. Sunspots, CO2 and Nile come from the
datasets that statsmodels ships (``pip install carousel[data]``); nothing is downloaded. Every
loader returns a ``pandas.Series`` with a ``DatetimeIndex`` (``as_frame=True``, the default) or a
float64 NumPy array of the values (``as_frame=False``).
"""

from __future__ import annotations

import csv
import io
import math
from importlib import resources
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import pandas as pd
    from numpy.typing import ArrayLike

_PANDAS_HINT = "pip install carousel[forecast]"
_STATSMODELS_HINT = "pip install carousel[data]"


def _check_bool(name: str, value: object) -> None:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name}: expected a bool, got {value!r}")


def _import_pandas(caller: str):
    try:
        import pandas
    except ImportError as err:
        raise ImportError(
            f"{caller}(as_frame=True) needs pandas: {_PANDAS_HINT}, or pass as_frame=False for a NumPy array"
        ) from err
    return pandas


def _statsmodels_frame(caller: str, name: str) -> pd.DataFrame:
    """The ``load_pandas().data`` frame of the statsmodels dataset ``name``."""
    try:
        from statsmodels import datasets
    except ImportError as err:
        raise ImportError(f"{caller} needs statsmodels: {_STATSMODELS_HINT}") from err
    return getattr(datasets, name).load_pandas().data


def _yearly(
    caller: str, frame: pd.DataFrame, year: str, value: str, name: str, as_frame: bool
) -> pd.Series | np.ndarray:
    """A yearly series from a frame with a float year column and a value column."""
    years = frame[year].to_numpy()
    values = frame[value].to_numpy(dtype=np.float64)
    # The index below is built from the first year; it is only right if the years follow each other.
    if not np.array_equal(years, years[0] + np.arange(len(years))):
        raise RuntimeError(f"{caller}: expected consecutive years in the statsmodels data, got {years!r}")
    if not as_frame:
        return values
    pd = _import_pandas(caller)
    index = pd.date_range(start=f"{int(years[0])}-01-01", periods=len(years), freq="YS", name="Year")
    return pd.Series(values, index=index, name=name)


def load_air_passengers(as_frame: bool = True) -> pd.Series | np.ndarray:
    """Monthly totals of international airline passengers, January 1949 to December 1960.

    The classic airline series of Box, Jenkins & Reinsel, *Time Series Analysis: Forecasting and
    Control* (series G), in thousands of passengers: 144 values from 112 to 622, with a rising
    trend and a yearly seasonal swing that grows with the level (a log transform makes it roughly
    constant). The data are bundled with the package.

    Args:
        as_frame: return a ``pandas.Series`` (needs pandas, ``pip install carousel[forecast]``);
            ``False`` returns a NumPy array and needs only NumPy.

    Returns:
        A float64 ``pandas.Series`` named ``"Passengers"`` with a month-start ``DatetimeIndex``
        (``freq="MS"``, named ``"Month"``), or a float64 array of shape ``(144,)``.

    Example:
        >>> y = load_air_passengers()
        >>> len(y), y.index.freqstr, str(y.index[0].date()), float(y.iloc[-1])
        (144, 'MS', '1949-01-01', 432.0)
        >>> load_air_passengers(as_frame=False)[:3]
        array([112., 118., 132.])
    """
    _check_bool("as_frame", as_frame)
    text = resources.files("carousel.datasets").joinpath("data", "air_passengers.csv").read_text(encoding="utf-8")
    rows = list(csv.reader(io.StringIO(text)))
    months = [row[0] for row in rows[1:]]
    values = np.array([float(row[1]) for row in rows[1:]], dtype=np.float64)
    if not as_frame:
        return values
    pd = _import_pandas("load_air_passengers")
    # freq="MS" makes pandas check that the months follow each other without gaps.
    index = pd.DatetimeIndex(pd.to_datetime(months, format="%Y-%m"), freq="MS", name="Month")
    return pd.Series(values, index=index, name="Passengers")


def load_sunspots(as_frame: bool = True) -> pd.Series | np.ndarray:
    """Yearly sunspot numbers, 1700 to 2008 (309 values).

    The yearly mean sunspot numbers of the National Geophysical Data Center (NOAA), as shipped
    by statsmodels (``statsmodels.datasets.sunspots``, public domain). These are the numbers
    before the 2015 recalibration of the international sunspot number. The series is
    dimensionless, from 0 to 190.2, with the roughly 11-year solar cycle. Needs statsmodels:
    ``pip install carousel[data]``.

    Args:
        as_frame: return a ``pandas.Series``; ``False`` returns a NumPy array.

    Returns:
        A float64 ``pandas.Series`` named ``"SUNACTIVITY"`` with a year-start ``DatetimeIndex``
        (``freq="YS"``, named ``"Year"``), or a float64 array of shape ``(309,)``.

    Example:
        >>> y = load_sunspots()
        >>> len(y), y.index[0].year, y.index[-1].year, float(y.iloc[0])
        (309, 1700, 2008, 5.0)
    """
    _check_bool("as_frame", as_frame)
    frame = _statsmodels_frame("load_sunspots", "sunspots")
    return _yearly("load_sunspots", frame, "YEAR", "SUNACTIVITY", "SUNACTIVITY", as_frame)


def load_nile(as_frame: bool = True) -> pd.Series | np.ndarray:
    """Yearly flow of the Nile at Aswan, 1871 to 1970 (100 values, in 10^8 cubic metres).

    The series of Cobb (1978), "The problem of the Nile: conditional solution to a changepoint
    problem", *Biometrika* 65(2), 243-251, as shipped by statsmodels (``statsmodels.datasets.nile``,
    public domain). The level drops around 1898, after the first Aswan dam was started: the
    textbook change-point and local-level example (Durbin & Koopman). Needs statsmodels:
    ``pip install carousel[data]``.

    Args:
        as_frame: return a ``pandas.Series``; ``False`` returns a NumPy array.

    Returns:
        A float64 ``pandas.Series`` named ``"volume"`` with a year-start ``DatetimeIndex``
        (``freq="YS"``, named ``"Year"``), or a float64 array of shape ``(100,)``.

    Example:
        >>> y = load_nile()
        >>> len(y), y.index[0].year, y.index[-1].year, float(y.iloc[0])
        (100, 1871, 1970, 1120.0)
    """
    _check_bool("as_frame", as_frame)
    frame = _statsmodels_frame("load_nile", "nile")
    return _yearly("load_nile", frame, "year", "volume", "volume", as_frame)


def load_co2(as_frame: bool = True, *, interpolate: bool = True) -> pd.Series | np.ndarray:
    """Weekly atmospheric CO2 at Mauna Loa, Hawaii, March 1958 to December 2001 (2284 weeks).

    Concentrations in parts per million by volume (ppmv), in weeks ending on Saturday, from
    Keeling & Whorf (2004), "Atmospheric CO2 concentrations derived from flask air samples at sites
    in the SIO network", *Trends: A Compendium of Data on Global Change*, CDIAC, Oak Ridge National
    Laboratory; as shipped by statsmodels (``statsmodels.datasets.co2``, public domain). Needs
    statsmodels: ``pip install carousel[data]``.

    59 weeks have no measurement, most alone or in short runs, the longest 18 weeks (25 January
    to 23 May 1964). By default they are filled by linear interpolation in time, so that the
    series can be fed to a network as is; the filled stretch of 1964 is a straight line and lacks
    that spring's seasonal rise. Pass ``interpolate=False`` for the raw data, with NaN in the
    missing weeks. The first and the last week are measured, so interpolation fills every gap.

    Args:
        as_frame: return a ``pandas.Series``; ``False`` returns a NumPy array.
        interpolate: fill the missing weeks by linear interpolation in time (the default);
            ``False`` keeps them as NaN.

    Returns:
        A float64 ``pandas.Series`` named ``"co2"`` with a weekly ``DatetimeIndex``
        (``freq="W-SAT"``, named ``"Date"``), or a float64 array of shape ``(2284,)``.

    Example:
        >>> y = load_co2()
        >>> len(y), y.index.freqstr, str(y.index[0].date()), int(y.isna().sum())
        (2284, 'W-SAT', '1958-03-29', 0)
        >>> int(load_co2(interpolate=False).isna().sum())
        59
    """
    _check_bool("as_frame", as_frame)
    _check_bool("interpolate", interpolate)
    series = _statsmodels_frame("load_co2", "co2")["co2"].astype(np.float64)
    if interpolate:
        series = series.interpolate(method="time")
    if not as_frame:
        return series.to_numpy()
    # statsmodels already gives a weekly (W-SAT) DatetimeIndex; name it like the other loaders.
    return series.rename_axis("Date").rename("co2")


def _check_real(name: str, value: object, *, low: float | None = None, strict: bool = False) -> float:
    """``value`` as a finite float, at least (or above, if ``strict``) ``low`` when given."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name}: expected a real number, got {value!r}")
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"{name}: expected a finite number, got {value!r}")
    if low is not None and (number <= low if strict else number < low):
        raise ValueError(f"{name}: expected a number {'>' if strict else '>='} {low:g}, got {value!r}")
    return number


def _steps(name: str, value: float, h: float) -> int:
    """How many integration steps ``h`` make ``value``; it must be a whole number of them."""
    count = round(value / h)
    if count < 1 or abs(value / h - count) > 1e-9 * max(1.0, value / h):
        raise ValueError(f"{name}: expected a positive multiple of the integration step h={h:g}, got {value:g}")
    return count


def mackey_glass(
    n: int = 2000,
    *,
    tau: float = 17.0,
    beta: float = 0.2,
    gamma: float = 0.1,
    power: float = 10.0,
    x0: float = 1.2,
    h: float = 0.1,
    dt: float = 1.0,
    history: ArrayLike | None = None,
    seed: int | np.random.Generator | None = None,
) -> np.ndarray:
    """The Mackey-Glass series, solved from its delay differential equation.

    Mackey & Glass (1977), "Oscillation and chaos in physiological control systems", *Science*
    197(4300), 287-289:

        dx/dt = beta * x(t - tau) / (1 + x(t - tau)^power) - gamma * x(t)

    With the defaults (``tau=17``, ``beta=0.2``, ``gamma=0.1``, ``power=10``) the solution is
    chaotic and stays between about 0.2 and 1.4: the usual benchmark for chaotic time-series
    prediction with recurrent networks and echo state networks. For small ``tau`` (below about
    4.7 with these coefficients) it settles on the fixed point x = 1; ``tau=30`` gives a more
    strongly chaotic series.

    The equation is integrated with the classical fourth-order Runge-Kutta method with a fixed
    step ``h`` (0.1 by default), on a grid that contains ``t - tau``: the delayed value
    ``x(t + h/2 - tau)`` of the two middle stages comes from linear interpolation between its two
    grid neighbours, and the others are read from the grid. That interpolation makes the scheme second-order
    accurate: halving ``h`` divides the error by 4, and with ``h=0.1`` the first 200 samples are
    within 2e-4 of the exact solution. The series is sampled every ``dt`` time units (1 by
    default, so every 10th step). Before t = 0 the solution is ``history``: by default the
    constant ``x0``; with ``seed``, ``x0`` plus uniform noise in [-0.1, 0.1) at each grid point of
    [-tau, 0), so that each seed gives another trajectory. The first sample is ``x(0) = x0``.
    The first few hundred time units are a transient before the solution reaches its attractor;
    drop them if only the attractor matters.

    Args:
        n: number of samples.
        tau: the delay; a positive multiple of ``h``.
        beta, gamma, power: the coefficients of the equation (``power`` is the Hill exponent,
            written n in the original paper).
        x0: the value at t = 0, positive.
        h: the integration step.
        dt: the time between two samples; a positive multiple of ``h``.
        history: the solution before t = 0, at t = -tau, -tau + h, ..., -h: ``round(tau / h)``
            positive values. Excludes ``seed``.
        seed: seed or ``numpy.random.Generator`` for a random history (see above).

    Returns:
        A float64 array of shape ``(n,)``: x(0), x(dt), ..., x((n - 1) dt).

    Example:
        >>> x = mackey_glass(1000)
        >>> x.shape, x.dtype, float(x[0])
        ((1000,), dtype('float64'), 1.2)
        >>> bool(0.2 < x.min() < x.max() < 1.4)
        True
    """
    if isinstance(n, (bool, np.bool_)) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n: expected an integer >= 1, got {n!r}")
    beta = _check_real("beta", beta, low=0.0)
    gamma = _check_real("gamma", gamma, low=0.0)
    power = _check_real("power", power, low=0.0, strict=True)
    x0 = _check_real("x0", x0, low=0.0, strict=True)
    h = _check_real("h", h, low=0.0, strict=True)
    delay = _steps("tau", _check_real("tau", tau, low=0.0, strict=True), h)
    stride = _steps("dt", _check_real("dt", dt, low=0.0, strict=True), h)

    if history is not None:
        if seed is not None:
            raise ValueError(f"seed: expected None when history is given, got {seed!r}")
        past = np.asarray(history, dtype=np.float64)
        if past.shape != (delay,):
            raise ValueError(
                f"history: expected shape ({delay},), the values at t = -tau, ..., -h with tau={tau:g} and h={h:g}, "
                f"got shape {past.shape}"
            )
        if not np.all(np.isfinite(past) & (past > 0)):
            raise ValueError(f"history: expected positive finite values, got minimum {past.min()!r}")
    elif seed is not None:
        past = x0 + 0.2 * (np.random.default_rng(seed).random(delay) - 0.5)
    else:
        past = np.full(delay, x0)

    # x[k] is the solution at t = (k - delay) h: the history, then x(0), then the steps.
    steps = (n - 1) * stride
    x = [*past.tolist(), x0] + [0.0] * steps
    half, sixth = 0.5 * h, h / 6.0
    late = x[0]
    g_late = beta * late / (1.0 + late**power)  # the delayed term at the start of the step
    try:
        for k in range(delay, delay + steps):
            now, next_late = x[k], x[k - delay + 1]
            mid = 0.5 * (late + next_late)
            g_mid = beta * mid / (1.0 + mid**power)
            g_next = beta * next_late / (1.0 + next_late**power)
            k1 = g_late - gamma * now
            k2 = g_mid - gamma * (now + half * k1)
            k3 = g_mid - gamma * (now + half * k2)
            k4 = g_next - gamma * (now + h * k3)
            x[k + 1] = now + sixth * (k1 + 2.0 * k2 + 2.0 * k3 + k4)
            late, g_late = next_late, g_next
        out = np.array(x[delay::stride], dtype=np.float64)
    # An unstable step overflows a float power (OverflowError), or drives x below 0, where a
    # fractional power is complex and the conversion to float64 fails (TypeError).
    except (OverflowError, TypeError):
        out = None
    # The exact solution stays positive; a value <= 0, inf or NaN means the integration failed.
    if out is None or not np.all(np.isfinite(out) & (out > 0)):
        raise ValueError(
            f"h: expected a step small enough for a stable integration, got h={h:g} (the solution diverged)"
        )
    return out

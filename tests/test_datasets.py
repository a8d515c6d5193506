"""Real series (values, dates, optional dependencies) and the Mackey-Glass generator."""

from __future__ import annotations

import itertools
import sys
from importlib import resources

import numpy as np
import pandas as pd
import pytest
from pandas.tseries.frequencies import to_offset

from carousel.datasets.series import load_air_passengers, load_co2, load_nile, load_sunspots, mackey_glass

# ---------------------------------------------------------------------------------------------
# Airline passengers (bundled)


def test_air_passengers_values_and_dates():
    y = load_air_passengers()
    assert isinstance(y, pd.Series)
    assert y.name == "Passengers" and y.dtype == np.float64 and len(y) == 144
    # Box, Jenkins & Reinsel series G: first, last, total, smallest (Nov 1949), largest (Jul 1960).
    assert y.iloc[0] == 112 and y.iloc[-1] == 432 and y.sum() == 40363
    assert y.min() == 104 and y.idxmin() == pd.Timestamp("1949-11-01")
    assert y.max() == 622 and y.idxmax() == pd.Timestamp("1960-07-01")
    assert y["1949"].tolist() == [112, 118, 132, 129, 121, 135, 148, 148, 136, 119, 104, 118]
    assert isinstance(y.index, pd.DatetimeIndex) and y.index.freqstr == "MS" and y.index.name == "Month"
    assert y.index[0] == pd.Timestamp("1949-01-01") and y.index[-1] == pd.Timestamp("1960-12-01")
    assert np.array_equal(y.index, pd.date_range("1949-01-01", "1960-12-01", freq="MS"))


def test_air_passengers_numpy():
    values = load_air_passengers(as_frame=False)
    assert isinstance(values, np.ndarray) and values.dtype == np.float64 and values.shape == (144,)
    assert np.array_equal(values, load_air_passengers().to_numpy())


def test_air_passengers_csv_is_plain():
    text = resources.files("carousel.datasets").joinpath("data", "air_passengers.csv").read_text(encoding="utf-8")
    lines = text.splitlines()
    assert lines[0] == "Month,Passengers" and lines[1] == "1949-01,112" and lines[-1] == "1960-12,432"
    assert len(lines) == 145


def test_air_passengers_without_pandas(monkeypatch):
    monkeypatch.setitem(sys.modules, "pandas", None)  # makes `import pandas` raise ImportError
    with pytest.raises(ImportError, match=r"pip install carousel\[forecast\]"):
        load_air_passengers()
    assert load_air_passengers(as_frame=False).shape == (144,)


@pytest.mark.parametrize("loader", [load_air_passengers, load_sunspots, load_nile, load_co2])
def test_as_frame_must_be_bool(loader):
    with pytest.raises(TypeError, match=r"as_frame: expected a bool, got 'yes'"):
        loader("yes")


# ---------------------------------------------------------------------------------------------
# statsmodels series


def test_sunspots():
    y = load_sunspots()
    assert y.name == "SUNACTIVITY" and y.dtype == np.float64 and len(y) == 309
    assert y.index.freq == to_offset("YS") and y.index.name == "Year"
    assert y.index[0] == pd.Timestamp("1700-01-01") and y.index[-1] == pd.Timestamp("2008-01-01")
    assert y.iloc[0] == 5.0 and y.iloc[-1] == 2.9 and y.max() == 190.2 and y.idxmax().year == 1957
    assert not y.isna().any()
    assert np.array_equal(load_sunspots(as_frame=False), y.to_numpy())


def test_nile():
    y = load_nile()
    assert y.name == "volume" and y.dtype == np.float64 and len(y) == 100
    assert y.index.freq == to_offset("YS") and y.index[0].year == 1871 and y.index[-1].year == 1970
    assert y.iloc[0] == 1120 and y.iloc[-1] == 740 and y.sum() == 91935
    # The change point of 1898: the mean flow drops by more than 200.
    assert y[:"1897"].mean() - y["1899":].mean() > 200
    values = load_nile(as_frame=False)
    assert values.shape == (100,) and values.dtype == np.float64


def test_co2_raw_keeps_the_missing_weeks():
    raw = load_co2(interpolate=False)
    assert raw.name == "co2" and raw.dtype == np.float64 and len(raw) == 2284
    assert raw.index.freqstr == "W-SAT" and raw.index.name == "Date"
    assert raw.index[0] == pd.Timestamp("1958-03-29") and raw.index[-1] == pd.Timestamp("2001-12-29")
    assert raw.isna().sum() == 59 and raw.iloc[0] == 316.1 and raw.iloc[-1] == 371.5
    assert np.isnan(load_co2(as_frame=False, interpolate=False)).sum() == 59


def test_co2_interpolation_fills_linearly():
    raw, filled = load_co2(interpolate=False), load_co2()
    assert not filled.isna().any() and filled.index.equals(raw.index)
    measured = raw.notna()
    assert np.array_equal(filled[measured], raw[measured])
    # A single missing week is the mean of its neighbours; the 18-week gap of 1964 is a straight line.
    assert np.isnan(raw.iloc[6]) and filled.iloc[6] == pytest.approx((raw.iloc[5] + raw.iloc[7]) / 2)
    gap = filled["1964-01-18":"1964-05-30"]
    assert raw[gap.index].isna().sum() == 18
    assert np.allclose(np.diff(gap.to_numpy(), 2), 0, atol=1e-9)
    assert np.array_equal(load_co2(as_frame=False), filled.to_numpy())


def test_co2_interpolate_must_be_bool():
    with pytest.raises(TypeError, match=r"interpolate: expected a bool, got 1"):
        load_co2(interpolate=1)


@pytest.mark.parametrize("loader", [load_sunspots, load_nile, load_co2])
def test_statsmodels_missing(loader, monkeypatch):
    monkeypatch.setitem(sys.modules, "statsmodels", None)
    monkeypatch.setitem(sys.modules, "statsmodels.datasets", None)
    with pytest.raises(ImportError, match=r"needs statsmodels: pip install carousel\[data\]"):
        loader()


# ---------------------------------------------------------------------------------------------
# Mackey-Glass


def _reference_mackey_glass(n, tau, beta, gamma, power, x0, h, dt, past):
    """Classical RK4 written as a generic integrator: the right-hand side is a function of time,
    and the past is read by np.interp on the stored (time, value) grid, as a textbook would."""
    times, values = list(-tau + h * np.arange(len(past))), list(past)
    times.append(0.0)
    values.append(x0)

    def delayed(t):
        return np.interp(t - tau, times[-len(past) - 2 :], values[-len(past) - 2 :])

    def rhs(t, x):
        d = delayed(t)
        return beta * d / (1 + d**power) - gamma * x

    t, x = 0.0, x0
    per_sample = round(dt / h)
    for _ in range((n - 1) * per_sample):
        k1 = rhs(t, x)
        k2 = rhs(t + h / 2, x + h / 2 * k1)
        k3 = rhs(t + h / 2, x + h / 2 * k2)
        k4 = rhs(t + h, x + h * k3)
        x = x + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
        # Advance time by counting steps, not by summing h, so that the grid stays exact.
        t = (len(times) - len(past)) * h
        times.append(t)
        values.append(x)
    return np.array(values[len(past) :: per_sample])


@pytest.mark.parametrize(
    "params",
    [
        dict(tau=17.0, beta=0.2, gamma=0.1, power=10.0, h=0.1, dt=1.0),
        dict(tau=30.0, beta=0.2, gamma=0.1, power=10.0, h=0.25, dt=0.5),
        dict(tau=6.5, beta=0.25, gamma=0.12, power=9.5, h=0.5, dt=2.0),
    ],
    ids=["mg17", "mg30", "other"],
)
def test_mackey_glass_matches_reference(params):
    x0, n = 1.2, 120
    past = x0 + 0.2 * (np.random.default_rng(7).random(round(params["tau"] / params["h"])) - 0.5)
    ours = mackey_glass(n, x0=x0, history=past, **params)
    ref = _reference_mackey_glass(n, x0=x0, past=past, **params)
    assert ours.shape == (n,) and ours.dtype == np.float64
    np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-12)


def test_mackey_glass_converges_at_second_order():
    exact = mackey_glass(201, h=1 / 256)
    errors = [np.abs(mackey_glass(201, h=h) - exact).max() for h in (0.25, 0.125, 0.0625)]
    assert errors[-1] < 1e-4
    for coarse, fine in itertools.pairwise(errors):
        assert 3.5 < coarse / fine < 4.5
    # The default step is as accurate as the docstring says.
    assert np.abs(mackey_glass(201) - exact).max() < 2e-4


def test_mackey_glass_attractor():
    x = mackey_glass(4000)
    assert x[0] == 1.2
    tail = x[500:]
    assert 0.2 < tail.min() < 0.5 and 1.2 < tail.max() < 1.4
    # Not periodic: no lag from 10 to 1000 time units repeats the series, not even roughly.
    assert min(np.abs(tail[lag:] - tail[:-lag]).max() for lag in range(10, 1001)) > 0.25


def test_mackey_glass_fixed_point_below_the_hopf_delay():
    # The fixed point x = 1 (beta / gamma = 2) is stable for tau < arccos(-1/4) / sqrt(0.15) ~ 4.71.
    assert np.abs(mackey_glass(1500, tau=4.0)[-100:] - 1).max() < 1e-6
    assert np.ptp(mackey_glass(1500, tau=5.0)[-100:]) > 0.1


def test_mackey_glass_is_chaotic_at_tau_17():
    # A change of 1e-9 in the history grows to the size of the attractor within 4000 time units.
    past = np.full(170, 1.2)
    a = mackey_glass(4000, history=past)
    b = mackey_glass(4000, history=past + 1e-9)
    assert np.abs(a[:100] - b[:100]).max() < 1e-7
    assert np.abs(a[-500:] - b[-500:]).max() > 0.1
    # Without chaos (tau=4) the same change dies out.
    c, d = mackey_glass(4000, tau=4.0, history=past[:40]), mackey_glass(4000, tau=4.0, history=past[:40] + 1e-9)
    assert np.abs(c[-500:] - d[-500:]).max() < 1e-12


def test_mackey_glass_determinism_and_seeds():
    assert np.array_equal(mackey_glass(300), mackey_glass(300))
    assert np.array_equal(mackey_glass(300, seed=1), mackey_glass(300, seed=1))
    assert np.array_equal(mackey_glass(300, seed=1), mackey_glass(300, seed=np.random.default_rng(1)))
    assert not np.allclose(mackey_glass(300, seed=1), mackey_glass(300, seed=2))
    assert not np.allclose(mackey_glass(300, seed=1), mackey_glass(300))
    # The seeded history is x0 plus uniform noise in [-0.1, 0.1) at the 170 grid points of [-17, 0).
    past = 1.2 + 0.2 * (np.random.default_rng(3).random(170) - 0.5)
    assert np.array_equal(mackey_glass(300, seed=3), mackey_glass(300, history=past))
    # A constant history equal to x0 is the default.
    assert np.array_equal(mackey_glass(300), mackey_glass(300, history=np.full(170, 1.2)))


def test_mackey_glass_sampling():
    fine = mackey_glass(401, dt=0.1)
    assert np.array_equal(mackey_glass(41, dt=1.0), fine[::10])
    assert mackey_glass(1).tolist() == [1.2]
    assert mackey_glass(5, x0=0.7)[0] == 0.7


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        (dict(n=0), ValueError, r"n: expected an integer >= 1, got 0"),
        (dict(n=10.0), ValueError, r"n: expected an integer >= 1, got 10.0"),
        (dict(n=True), ValueError, r"n: expected an integer >= 1, got True"),
        (dict(tau=17.05), ValueError, r"tau: expected a positive multiple of the integration step h=0.1, got 17.05"),
        (dict(tau=0), ValueError, r"tau: expected a number > 0, got 0"),
        (dict(dt=0.15), ValueError, r"dt: expected a positive multiple of the integration step h=0.1, got 0.15"),
        (dict(h=0.0), ValueError, r"h: expected a number > 0, got 0.0"),
        (dict(h=float("inf")), ValueError, r"h: expected a finite number, got inf"),
        (dict(x0=-1.0), ValueError, r"x0: expected a number > 0, got -1.0"),
        (dict(x0=float("nan")), ValueError, r"x0: expected a finite number, got nan"),
        (dict(power=0), ValueError, r"power: expected a number > 0, got 0"),
        (dict(gamma=-0.1), ValueError, r"gamma: expected a number >= 0, got -0.1"),
        (dict(beta="0.2"), TypeError, r"beta: expected a real number, got '0.2'"),
        (dict(history=np.ones(17)), ValueError, r"history: expected shape \(170,\).*got shape \(17,\)"),
        (dict(history=np.r_[np.ones(169), -1.0]), ValueError, r"history: expected positive finite values"),
        (dict(history=np.ones(170), seed=0), ValueError, r"seed: expected None when history is given, got 0"),
        (dict(gamma=50.0), ValueError, r"h: expected a step small enough for a stable integration, got h=0.1"),
        (dict(gamma=50.0, power=10.5), ValueError, r"h: expected a step small enough"),
    ],
)
def test_mackey_glass_errors(kwargs, error, match):
    kwargs = {"n": 300, **kwargs}
    with pytest.raises(error, match=match):
        mackey_glass(**kwargs)

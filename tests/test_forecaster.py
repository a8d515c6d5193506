"""carousel.models.Forecaster: API, preprocessing, intervals, backtests, save/load, errors, accuracy."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch

import carousel.nn
from carousel.datasets import load_air_passengers
from carousel.models import Backtest, Forecaster, MetricsTable, NotFittedError, mae, mape, rmse
from carousel.models import _preprocessing as prep
from carousel.models.metrics import naive_forecast, seasonal_naive_forecast

# Small, fast settings for every test where accuracy is not the point.
TINY = dict(hidden_size=4, lookback=6, epochs=4, ensemble=1, batch_size=32, random_state=0)


def seasonal(n: int = 96, season: int = 12, seed: int = 0, noise: float = 0.1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    return 10 + 2 * np.sin(2 * np.pi * t / season) + 0.02 * t + noise * rng.normal(size=n)


def monthly(values: np.ndarray, name: str = "y") -> pd.Series:
    return pd.Series(values, index=pd.date_range("2000-01-01", periods=len(values), freq="MS"), name=name)


# ---------------------------------------------------------------------- estimator conventions
def test_init_stores_parameters_unchanged_and_fit_returns_self():
    f = Forecaster(cell="LSTM", seasonal_difference="auto", cell_options={"peepholes": True}, **TINY)
    assert f.get_params()["cell"] == "LSTM" and f.get_params()["cell_options"] == {"peepholes": True}
    assert not hasattr(f, "members_")
    y = seasonal()
    assert f.fit(y) is f
    for name in ("members_", "season_", "transform_", "seasonal_difference_", "n_targets_", "n_covariates_",
                 "residuals_", "history_", "seeds_", "fit_time_"):  # fmt: skip
        assert hasattr(f, name), name
    assert f.season_ is None and f.seasonal_difference_ == 0 and f.transform_ == "log"
    assert f.get_params()["cell"] == "LSTM"  # fit resolves into attributes, never into parameters
    assert len(f.members_) == 1 and f.members_[0].rnn.cells[0].peepholes


def test_get_params_set_params_and_repr():
    f = Forecaster(**TINY)
    params = f.get_params()
    assert params["hidden_size"] == 4 and params["strategy"] == "recursive" and "random_state" in params
    assert f.set_params(hidden_size=6, strategy="direct") is f
    assert f.hidden_size == 6 and f.strategy == "direct"
    assert "hidden_size=6" in repr(f) and "cell=" not in repr(f)
    with pytest.raises(ValueError, match=r"set_params: expected parameters among .*, got 'hidden'"):
        f.set_params(hidden=3)
    clone = Forecaster(**f.get_params())
    assert clone.get_params() == f.get_params()


def test_random_state_reproducible_and_rng_left_alone():
    y = seasonal()
    torch.manual_seed(123)
    np.random.seed(123)
    before = (torch.rand(1).item(), np.random.rand())
    torch.manual_seed(123)
    np.random.seed(123)
    a = Forecaster(**TINY).fit(y).predict(5)
    after = (torch.rand(1).item(), np.random.rand())
    assert before == after  # fitting does not move the caller's generators
    b = Forecaster(**TINY).fit(y).predict(5)
    c = Forecaster(**{**TINY, "random_state": 1}).fit(y).predict(5)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


def test_fit_passes_extra_callbacks_to_every_member():
    from carousel.train import Callback

    class Count(Callback):
        def __init__(self):
            self.logs = []

        def on_epoch_end(self, trainer, epoch, logs):
            self.logs.append(dict(logs))

    count = Count()
    f = Forecaster(**{**TINY, "ensemble": 2, "early_stopping": None}).fit(seasonal(), callbacks=[count])
    assert len(count.logs) == 2 * 4 and "val_loss" in count.logs[0]
    assert [len(h["loss"]) for h in f.history_] == [4, 4]
    with pytest.raises(TypeError, match=r"callbacks\[0\]: expected a carousel.train.Callback, got str"):
        f.fit(seasonal(), callbacks=["stop"])


def test_cell_by_name_class_and_options():
    y = seasonal()
    assert "lstm" in carousel.models.recurrent_layers()
    assert isinstance(Forecaster(cell="Lstm", **TINY).fit(y).members_[0].rnn, carousel.nn.LSTM)
    gru = Forecaster(cell=torch.nn.GRU, **TINY).fit(y)
    assert isinstance(gru.members_[0].rnn, torch.nn.GRU) and gru.predict(2).shape == (2,)
    with pytest.raises(ValueError, match=r"cell: expected one of \[.*'lstm'.*got 'transformer'"):
        Forecaster(cell="transformer").fit(y)


# ---------------------------------------------------------------------- forecasting
def test_recursive_and_direct_strategies():
    y = monthly(seasonal(120))
    rec = Forecaster(horizon=6, **TINY).fit(y)
    out = rec.predict()
    assert isinstance(out, pd.Series) and len(out) == 6 and out.name == "y"
    assert out.index[0] == pd.Timestamp("2010-01-01") and out.index.freqstr == "MS"
    assert rec.season_ == 12 and rec.seasonal_difference_ == 1
    assert len(rec.predict(20)) == 20  # recursive forecasts go as far as asked
    direct = Forecaster(strategy="direct", horizon=6, **TINY).fit(y)
    assert direct.members_[0].head.out_features == 6
    assert len(direct.predict(4)) == 4
    with pytest.raises(ValueError, match=r"steps: expected at most horizon=6 for strategy='direct', got 7"):
        direct.predict(7)
    assert np.isfinite(direct.predict().to_numpy()).all()
    point, lower, upper = direct.predict(return_interval=True)
    assert len(lower) == 6 and (lower <= point).all() and (point <= upper).all()


def test_learns_a_seasonal_series_better_than_the_baselines():
    y = seasonal(144, noise=0.05)
    f = Forecaster(hidden_size=8, lookback=12, season=12, ensemble=1, epochs=60, random_state=0).fit(y[:120])
    table = f.evaluate(y[120:])
    assert isinstance(table, MetricsTable) and set(table) == {"model", "naive", "seasonal_naive"}
    assert table["model"]["rmse"] < table["naive"]["rmse"] / 3
    assert table["model"]["rmse"] < table["seasonal_naive"]["rmse"]


def test_multivariate_targets_keep_columns():
    n = 96
    frame = pd.DataFrame({"a": seasonal(n, seed=1), "b": 5 + seasonal(n, seed=2)},
                         index=pd.period_range("2000-01", periods=n, freq="M"))  # fmt: skip
    f = Forecaster(**TINY).fit(frame)
    assert f.n_targets_ == 2 and f.target_names_ == ["a", "b"] and f.season_ == 12
    out = f.predict(3)
    assert isinstance(out, pd.DataFrame) and list(out.columns) == ["a", "b"] and out.shape == (3, 2)
    assert str(out.index[0]) == "2008-01"
    arr = Forecaster(**TINY).fit(frame.to_numpy()).predict(3)
    assert isinstance(arr, np.ndarray) and arr.shape == (3, 2)
    bt = f.backtest(frame, start=80, horizon=2)
    assert bt.predictions.shape == (15, 2, 2) and bt.actuals.shape == (15, 2, 2)


def test_exogenous_covariates_are_used():
    rng = np.random.default_rng(0)
    n = 160
    x = rng.normal(size=(n, 1))
    y = 3.0 * x[:, 0] + 0.1 * rng.normal(size=n)  # y depends only on the covariate of its own step
    f = Forecaster(hidden_size=8, lookback=4, ensemble=1, epochs=80, lr=0.02, random_state=0).fit(y[:140], x[:140])
    assert f.n_covariates_ == 1 and f.transform_ is None
    pred = f.predict(20, x[140:])
    assert rmse(y[140:], pred) < 0.3 * rmse(y[140:], np.full(20, y[139]))
    assert not np.allclose(pred, f.predict(20, -x[140:]))
    direct = Forecaster(strategy="direct", horizon=3, **TINY).fit(y[:140], x[:140])
    assert direct.predict(2, x[140:143]).shape == (2,)
    with pytest.raises(ValueError, match=r"X: expected at least 3 rows of future covariates, got 2"):
        direct.predict(2, x[140:142])
    with pytest.raises(ValueError, match=r"X: expected the future covariates, shape \(5, 1\), got None"):
        f.predict(5)
    with pytest.raises(ValueError, match=r"X: expected 1 covariate columns \(as in fit\), got 2"):
        f.predict(5, np.zeros((5, 2)))
    with pytest.raises(ValueError, match=r"X: expected 140 rows \(one per observation of y\), got 139"):
        Forecaster(**TINY).fit(y[:140], x[:139])
    with pytest.raises(ValueError, match=r"X: expected None \(the model was fitted without covariates\)"):
        Forecaster(**TINY).fit(y[:140]).predict(2, x[:2])
    assert direct.backtest(y[:150], start=140, horizon=2, X=x).predictions.shape == (9, 2, 1)  # X runs further
    with pytest.raises(ValueError, match=r"X: expected 151 rows \(the direct strategy reads the covariates of all"):
        direct.backtest(y[:150], start=140, horizon=2, X=x[:150])
    bt = f.backtest(y, start=150, X=x)
    assert bt.predictions.shape == (10, 1, 1) and bt.metrics["model"]["rmse"] < bt.metrics["naive"]["rmse"]


def test_history_forecasts_from_newer_data_without_refitting():
    y = seasonal(120)
    f = Forecaster(**TINY).fit(y[:100])
    np.testing.assert_allclose(f.predict(3, history=y[:100]), f.predict(3))
    newer = f.predict(3, history=y)
    assert not np.allclose(newer, f.predict(3))
    with pytest.raises(ValueError, match=r"history: expected at least 6 observations"):
        f.predict(3, history=y[:5])


# ---------------------------------------------------------------------- intervals
def test_intervals_shapes_order_and_types():
    y = monthly(seasonal(96))
    f = Forecaster(**TINY).fit(y)
    point, lower, upper = f.predict(12, return_interval=True, coverage=0.8)
    assert all(isinstance(s, pd.Series) and len(s) == 12 for s in (point, lower, upper))
    assert (lower <= point).all() and (point <= upper).all()
    _, lo95, up95 = f.predict(12, return_interval=True, coverage=0.95)
    assert ((up95 - lo95) >= (upper - lower) - 1e-9).all()
    again = f.predict(12, return_interval=True, coverage=0.8)  # the paths are seeded
    pd.testing.assert_series_equal(again[1], lower)
    assert f.calibration_ == "held-out"
    with pytest.raises(ValueError, match=r"coverage: expected a probability in \(0, 1\), got 90"):
        f.predict(3, return_interval=True, coverage=90)


def test_interval_coverage_is_sensible_on_a_synthetic_series():
    rng = np.random.default_rng(0)
    n = 500
    z = np.zeros(n)
    for t in range(1, n):
        z[t] = 0.6 * z[t - 1] + rng.normal()
    y = 20 + 3 * np.sin(2 * np.pi * np.arange(n) / 12) + z
    f = Forecaster(season=12, seasonal_difference=0, hidden_size=8, lookback=12, ensemble=2, epochs=40,
                   batch_size=32, random_state=0).fit(y[:300])  # fmt: skip
    bt = f.backtest(y, start=300, horizon=3, coverage=0.9)
    inside = (bt.lower <= bt.actuals) & (bt.actuals <= bt.upper)
    assert 0.78 <= inside.mean() <= 0.98, inside.mean()
    bt50 = f.backtest(y, start=300, horizon=1, coverage=0.5)
    inside50 = (bt50.lower <= bt50.actuals) & (bt50.actuals <= bt50.upper)
    assert 0.35 <= inside50.mean() <= 0.65, inside50.mean()


# ---------------------------------------------------------------------- backtesting
def test_backtest_without_refit_uses_the_actual_history():
    y = monthly(seasonal(120))
    f = Forecaster(**TINY).fit(y[:100])
    bt = f.backtest(y, start=100, horizon=2, stride=3)
    assert isinstance(bt, Backtest)
    np.testing.assert_array_equal(bt.origins, [100, 103, 106, 109, 112, 115, 118])
    for i, origin in enumerate(bt.origins):
        expected = f.predict(2, history=y.iloc[:origin]).to_numpy()
        np.testing.assert_allclose(bt.predictions[i, :, 0], expected, rtol=1e-6)
        np.testing.assert_array_equal(bt.actuals[i, :, 0], y.to_numpy()[origin : origin + 2])
        np.testing.assert_array_equal(bt.naive[i, :, 0], y.to_numpy()[origin - 1])
        np.testing.assert_array_equal(bt.seasonal_naive[i, :, 0], y.to_numpy()[origin - 12 : origin - 10])
    m = bt.metrics
    assert list(m) == ["model", "naive", "seasonal_naive"] and list(m["model"]) == ["rmse", "mae", "mape"]
    assert m["model"]["rmse"] == pytest.approx(rmse(bt.actuals, bt.predictions))
    assert m["seasonal_naive"]["mae"] == pytest.approx(mae(bt.actuals, bt.seasonal_naive))
    assert m["naive"]["mape"] == pytest.approx(mape(bt.actuals, bt.naive))
    frame = bt.to_frame()
    assert len(frame) == 14 and {"time", "actual", "prediction", "naive", "seasonal_naive"} <= set(frame.columns)
    assert frame["time"].iloc[0] == pd.Timestamp("2008-05-01")
    assert list(m.to_frame().index) == ["model", "naive", "seasonal_naive"] and "rmse" in str(m)


def test_backtest_with_refit_fits_copies():
    y = seasonal(80)
    f = Forecaster(**TINY)
    every = f.backtest(y, start=70, refit=True)
    assert not hasattr(f, "members_")  # the estimator itself is not touched
    assert every.predictions.shape == (10, 1, 1) and "seasonal_naive" not in every.metrics
    first = Forecaster(**TINY).fit(y[:70]).predict(1)
    np.testing.assert_allclose(every.predictions[0, :, 0], first)
    blocks = f.backtest(y, start=70, refit=4)
    np.testing.assert_allclose(blocks.predictions[:4], Forecaster(**TINY).fit(y[:70]).backtest(y, 70).predictions[:4])
    fifth = Forecaster(**TINY).fit(y[:74]).predict(1)
    np.testing.assert_allclose(blocks.predictions[4, :, 0], fifth)
    with pytest.raises(NotFittedError, match=r"backtest \(refit=False\): this Forecaster is not fitted yet"):
        f.backtest(y, start=70)
    with pytest.raises(ValueError, match=r"refit: expected an integer >= 1, got 0"):
        f.backtest(y, start=70, refit=0)
    with pytest.raises(ValueError, match=r"start: expected at most len\(y\) - horizon = 79, got 80"):
        f.backtest(y, start=80, refit=True)


# ---------------------------------------------------------------------- save / load
def test_save_load_round_trip(tmp_path):
    y = monthly(seasonal(96))
    x = np.random.default_rng(0).normal(size=(100, 2))
    f = Forecaster(cell_options={"peepholes": True}, **{**TINY, "ensemble": 2}).fit(y, x[:96])
    path = f.save(tmp_path / "model")
    assert sorted(p.name for p in path.iterdir()) == ["config.json", "model.safetensors"]
    config = json.loads((path / "config.json").read_text())
    assert config["params"]["cell"] == "lstm" and config["state"]["season"] == 12
    g = Forecaster.load(path)
    assert g.get_params() == f.get_params()
    a, b = f.predict(4, x[96:]), g.predict(4, x[96:])
    pd.testing.assert_series_equal(a, b)
    ia, ib = f.predict(4, x[96:], return_interval=True), g.predict(4, x[96:], return_interval=True)
    for s, t in zip(ia, ib):
        pd.testing.assert_series_equal(s, t)
    # A weights file that does not belong to the config is refused.
    (path / "model.safetensors").write_bytes((path / "model.safetensors").read_bytes()[:-4] + b"\0\0\0\0")
    with pytest.raises(ValueError, match=r"path: model.safetensors does not match config.json"):
        Forecaster.load(path)
    with pytest.raises(FileNotFoundError, match=r"path: expected a directory written by Forecaster.save"):
        Forecaster.load(tmp_path / "nowhere")


def test_save_load_with_a_custom_class_and_numpy_input(tmp_path):
    y = seasonal(60)
    f = Forecaster(cell=torch.nn.GRU, strategy="direct", horizon=3, **TINY).fit(y)
    g = Forecaster.load(f.save(tmp_path / "gru"))
    assert g.cell is torch.nn.GRU
    np.testing.assert_array_equal(f.predict(), g.predict())

    class MyLSTM(carousel.nn.LSTM):
        pass

    k = Forecaster(cell=carousel.nn.LSTM, **TINY).fit(y)
    assert Forecaster.load(k.save(tmp_path / "class")).cell is carousel.nn.LSTM

    h = Forecaster(cell=MyLSTM, **TINY).fit(y)
    h.save(tmp_path / "mine")
    with pytest.raises(ValueError, match=r"cell: the checkpoint's layer .*MyLSTM' is not a layer of carousel.nn"):
        Forecaster.load(tmp_path / "mine")
    np.testing.assert_array_equal(Forecaster.load(tmp_path / "mine", cell=MyLSTM).predict(2), h.predict(2))

    class TaggedGRU(torch.nn.GRU):
        def __init__(self, *args, tag=None, **kwargs):
            super().__init__(*args, **kwargs)

    tagged = Forecaster(cell=TaggedGRU, cell_options={"tag": object()}, **TINY).fit(y)
    with pytest.raises(ValueError, match=r"cell_options: expected JSON-serialisable values to save"):
        tagged.save(tmp_path / "tagged")
    assert not (tmp_path / "tagged").exists()  # nothing is written when the config cannot be


# ---------------------------------------------------------------------- preprocessing
def test_transforms_and_differences_invert_exactly():
    rng = np.random.default_rng(0)
    w = rng.normal(size=(2, 40, 3))
    c = prep.difference_coefficients(1, 1, 12)
    e = prep.apply_difference(w, c)
    assert e.shape == (2, 27, 3)
    m = len(c) - 1
    tail = w[:, :m].copy()
    for t in range(m, 40):  # w_t = e_t - sum_{j>=1} c_j w_{t-j}
        new = prep.undifference(e[:, t - m], tail, c)
        np.testing.assert_allclose(new, w[:, t])
        tail = np.concatenate([tail[:, 1:], new[:, None]], axis=1)
    y = np.abs(w) + 0.5
    for kind in ("log", "log1p", None):
        np.testing.assert_allclose(prep.inverse_transform(prep.transform(y, kind), kind), y)
    s = prep.Scaler.fit("minmax", e)
    assert s(e).min() == pytest.approx(0.0) and s(e).max() == pytest.approx(1.0)
    np.testing.assert_allclose(s.inverse(s(e)), e)


@pytest.mark.parametrize(
    ("freq", "season"), [("MS", 12), ("ME", 12), ("QS", 4), ("W-SUN", 52), ("D", 7), ("B", 5), ("h", 24), ("YS", None)]
)
def test_season_inferred_from_the_index(freq, season):
    index = pd.date_range("2001-01-01", periods=10, freq=freq)
    assert prep.season_of_index(index) == season
    assert prep.season_of_index(pd.DatetimeIndex(list(index))) == season  # frequency inferred from the dates


def test_options_minmax_log1p_difference_run():
    y = seasonal(100)
    f = Forecaster(scaler="minmax", transform="log1p", difference=1, dropout=0.1, num_layers=2, weight_decay=1e-4,
                   validation_split=0.0, early_stopping=None, **TINY).fit(y)  # fmt: skip
    assert f.calibration_ == "in-sample" and len(f.history_[0]["loss"]) == 4
    assert np.isfinite(f.predict(5)).all()


def test_fill_missing():
    y = seasonal(60)
    y[[10, 11, 30]] = np.nan
    with pytest.raises(ValueError, match=r"y: expected no missing values, got NaN at positions \[10, 11, 30\].*"
                                         r"fill_missing='interpolate'"):  # fmt: skip
        Forecaster(**TINY).fit(y)
    s = monthly(y)
    with pytest.raises(ValueError, match=r"positions \[10, 11, 30\] \(index \['2000-11-01"):
        Forecaster(**TINY).fit(s)
    filled = prep.as_series("y", y, fill_missing="interpolate").values[:, 0]
    assert filled[10] == pytest.approx(y[9] + (y[12] - y[9]) / 3) and filled[30] == pytest.approx((y[29] + y[31]) / 2)
    assert prep.as_series("y", y, fill_missing="ffill").values[11, 0] == y[9]
    assert np.isfinite(Forecaster(fill_missing="interpolate", **TINY).fit(y).predict(2)).all()


# ---------------------------------------------------------------------- errors
def test_data_errors():
    f = Forecaster(**TINY)
    with pytest.raises(TypeError, match=r"y: expected numeric values, got 'a' at position \[2\]"):
        f.fit([1.0, 2.0, "a", 4.0])
    with pytest.raises(TypeError, match=r"y: expected numeric values, got column 'c' of dtype (object|str)"):
        f.fit(pd.DataFrame({"b": np.arange(50.0), "c": ["x"] * 50}))
    with pytest.raises(TypeError, match=r"y: expected numeric values, got dtype bool"):
        f.fit(np.ones(50, dtype=bool))
    with pytest.raises(TypeError, match=r"y: expected numeric values, got dtype <U1"):
        f.fit(np.array(["1", "2"]))
    with pytest.raises(TypeError, match=r"y: expected numeric values, got True at position \[1\]"):
        f.fit([1.0, True, 3.0])
    with pytest.raises(ValueError, match=r"y: expected finite values, got inf at positions \[3\]"):
        f.fit(np.r_[1.0, 2.0, 3.0, np.inf, np.ones(50)])
    with pytest.raises(ValueError, match=r"y: expected a 1-D \(time,\) or 2-D \(time, columns\) array, got shape"):
        f.fit(np.ones((50, 2, 2)))
    with pytest.raises(TypeError, match=r"y: expected a series \(pandas Series/DataFrame or array\), got None"):
        f.fit(None)
    with pytest.raises(ValueError, match=r"y: expected at least 8 observations \(lookback=6 \+ 1 target \+ 1 held"):
        f.fit(np.ones(7))
    with pytest.raises(ValueError, match=r"y: expected at least 20 observations .* \+ 12 consumed by differencing"):
        Forecaster(season=12, **TINY).fit(np.ones(19))
    with pytest.raises(ValueError, match=r"y: transform='log' expects values > 0, got -1 at position 5"):
        Forecaster(transform="log", **TINY).fit(np.r_[np.ones(5), -1.0, np.ones(50)])
    message = r"season: expected the seasonal period .* seasonal_difference=1, got None \(.* without a time index\)"
    with pytest.raises(ValueError, match=message):
        Forecaster(seasonal_difference=1, **TINY).fit(np.ones(60))


def test_predict_errors():
    f = Forecaster(**TINY)
    for call in (lambda: f.predict(3), lambda: f.evaluate([1.0]), lambda: f.save("x")):
        with pytest.raises(NotFittedError, match=r"this Forecaster is not fitted yet; call fit\(y\) first"):
            call()
    f.fit(seasonal(60))
    with pytest.raises(ValueError, match=r"steps: expected an integer >= 1, got 0"):
        f.predict(0)
    with pytest.raises(ValueError, match=r"history: expected 1 target columns \(as in fit\), got 2"):
        f.predict(2, history=np.ones((20, 2)))
    with pytest.raises(ValueError, match=r"history: transform='log' expects values > 0, got 0"):
        f.predict(2, history=np.zeros(20))
    with pytest.raises(ValueError, match=r"history_X: expected None \(the model was fitted without covariates\)"):
        f.predict(2, history=np.ones(20), history_X=np.ones(20))
    f._scaler.shift = f._scaler.shift + 1e4  # a broken model: exp() of the forecast overflows
    with pytest.raises(FloatingPointError, match=r"steps: the forecast overflowed at step 1 of 2"):
        f.predict(2)


@pytest.mark.parametrize(
    ("param", "value", "message"),
    [
        ("lookback", 0, r"lookback: expected an integer >= 1, got 0"),
        ("horizon", 1.5, r"horizon: expected an integer >= 1, got 1.5"),
        ("strategy", "multi", r"strategy: expected one of \['recursive', 'direct'\], got 'multi'"),
        ("transform", "sqrt", r"transform: expected one of \['auto', 'log', 'log1p', None\], got 'sqrt'"),
        ("scaler", "robust", r"scaler: expected one of \['standard', 'minmax', None\], got 'robust'"),
        ("fill_missing", "zero", r"fill_missing: expected one of \['raise', 'interpolate', 'ffill'\], got 'zero'"),
        ("season", 1, r"season: expected an integer >= 2 or None, got 1"),
        ("seasonal_difference", -1, r"seasonal_difference: expected an integer >= 0, got -1"),
        ("ensemble", 0, r"ensemble: expected an integer >= 1, got 0"),
        ("lr", 0.0, r"lr: expected a number > 0, got 0.0"),
        ("validation_split", 1.0, r"validation_split: expected a number in \[0.0, 1.0\), got 1.0"),
        ("dropout", -0.1, r"dropout: expected a number in \[0.0, 1.0\), got -0.1"),
        ("early_stopping", 0, r"early_stopping: expected an integer >= 1 or None, got 0"),
        ("cell_options", ["peepholes"], r"cell_options: expected a dict of keyword arguments or None"),
        ("linear_skip", "yes", r"linear_skip: expected True or False, got 'yes'"),
        ("random_state", "seed", r"random_state: expected an integer >= 0 or None, got 'seed'"),
    ],
)
def test_parameter_errors(param, value, message):
    with pytest.raises(ValueError, match=message):
        Forecaster(**{**TINY, param: value}).fit(seasonal(60))


def test_metrics_and_baselines():
    assert rmse([1, 2, 3], [1, 2, 5]) == pytest.approx(np.sqrt(4 / 3))
    assert mae([1, 2], [2, 4]) == 1.5 and mape([100, 200], [110, 180]) == pytest.approx(10.0)
    with pytest.raises(
        ValueError, match=r"y_true: expected nonzero actual values for MAPE, got 0 at positions \[\[1\]\]"
    ):
        mape([1.0, 0.0], [1.0, 1.0])
    with pytest.raises(ValueError, match=r"y_pred: expected the shape of y_true \(2,\), got \(3,\)"):
        rmse([1, 2], [1, 2, 3])
    with pytest.raises(ValueError, match=r"y_pred: expected finite values, got NaN or inf at positions \[\[0\]\]"):
        mae([1.0], [np.nan])
    np.testing.assert_array_equal(naive_forecast([1, 2, 3], 2), [3, 3])
    np.testing.assert_array_equal(seasonal_naive_forecast([1, 2, 3, 4, 5], 5, season=2), [4, 5, 4, 5, 4])


def test_numpy_input_works_without_importing_pandas():
    code = (
        "import sys, numpy as np\n"
        "from carousel.models import Forecaster\n"
        "y = 10 + np.sin(np.arange(40) / 2)\n"
        "Forecaster(hidden_size=4, lookback=4, epochs=2, ensemble=1, random_state=0).fit(y).predict(2)\n"
        "assert 'pandas' not in sys.modules, 'pandas was imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


# ---------------------------------------------------------------------- accuracy
def test_default_forecaster_beats_seasonal_naive_on_air_passengers():
    """The Keras tutorial split: fit on the first 117 months, one-step forecasts of the last 27
    from the actual history. Seasonal naive RMSE is about 47; Holt-Winters and the airline SARIMA
    reach about 15."""
    y = load_air_passengers()
    f = Forecaster(random_state=0).fit(y.iloc[:117])
    bt = f.backtest(y, start=117)
    assert bt.actuals.shape == (27, 1, 1)
    m = bt.metrics
    assert m["seasonal_naive"]["rmse"] == pytest.approx(47.19, abs=0.01)
    assert m["model"]["rmse"] < 25.0, m
    assert m["model"]["rmse"] < 0.55 * m["seasonal_naive"]["rmse"]
    assert m["model"]["mape"] < m["seasonal_naive"]["mape"] / 2


def test_history_backtest_load_and_data_edge_errors(tmp_path):
    rng = np.random.default_rng(0)
    y, x = seasonal(80), rng.normal(size=(80, 2))
    plain = Forecaster(**TINY).fit(y)
    with pytest.raises(ValueError, match=r"history_X: expected None when history is None, got covariates"):
        plain.predict(2, history_X=x)
    with pytest.raises(ValueError, match=r"start: expected at least 6 \(lookback \+ differencing\) so that every"):
        plain.backtest(y, start=3)
    with pytest.raises(ValueError, match=r"X: expected None \(the model was fitted without covariates\)"):
        plain.backtest(y, start=70, X=x)
    with_x = Forecaster(**TINY).fit(y, x)
    with pytest.raises(ValueError, match=r"history_X: expected the 2 covariates of history, got None"):
        with_x.predict(2, x[:2], history=y)
    with pytest.raises(ValueError, match=r"X: expected the 2 covariates of y, got None"):
        with_x.backtest(y, start=70)
    with pytest.raises(ValueError, match=r"X: expected 2 covariate columns \(as in fit\), got 1"):
        with_x.backtest(y, start=70, X=x[:, :1])
    with pytest.raises(ValueError, match=r"X: expected at least 80 rows \(one per observation of y\), got 79"):
        with_x.backtest(y, start=70, X=x[:79])
    path = plain.save(tmp_path / "m")
    (path / "config.json").write_text(json.dumps({"format": "something else"}))
    with pytest.raises(ValueError, match=r"path: expected a carousel.models.Forecaster checkpoint, got format 'so"):
        Forecaster.load(path)
    with pytest.raises(ValueError, match=r"y: expected a rectangular array, got rows of different lengths"):
        Forecaster(**TINY).fit([[1.0, 2.0], [3.0]])
    with pytest.raises(ValueError, match=r"y: expected at least one observation and one column, got shape \(0,\)"):
        Forecaster(**TINY).fit(np.array([]))
    with pytest.raises(ValueError, match=r"y: expected at least one value in column 1, got only NaN"):
        Forecaster(fill_missing="interpolate", **TINY).fit(np.c_[y, np.full(80, np.nan)])
    with pytest.raises(ValueError, match=r"season: expected an integer >= 1, got 0"):
        seasonal_naive_forecast([1.0, 2.0], 3, season=0)
    with pytest.raises(ValueError, match=r"history: expected at least season=4 observations, got 2"):
        seasonal_naive_forecast([1.0, 2.0], 3, season=4)


def test_every_runner_layer_by_name_or_a_clear_error():
    y = seasonal()
    small = dict(TINY, hidden_size=4)
    for name in ("gru", "elmanrnn", "indrnn", "slstm", "ctrnn", "secondorderrnn"):
        assert Forecaster(cell=name, **small).fit(y).predict(2).shape == (2,)
    assert Forecaster(cell="jordanrnn", cell_options=dict(output_size=3), **small).fit(y).predict(1).shape == (1,)
    with pytest.raises(ValueError, match=r"cell: expected a layer built as MTRNN\(input_size, hidden_size.*fast_size"):
        Forecaster(cell="mtrnn", **small).fit(y)

#!/usr/bin/env python
"""Keras (TensorFlow) against carousel on the airline-passengers LSTM example, in one process.

The setup is the classic Keras example on the monthly airline series (144 values, 1949-1960):

* min-max scaling to [0, 1] with the minimum and maximum of ALL 144 values (test months included,
  as the example does; this leaks the test range into the inputs, and the table says so);
* windows of the last 12 scaled values -> the next one: 132 samples; the first int(0.8 * 132) = 105
  train, the last 27 test (the months with indices 117..143, October 1958 to December 1960);
* LSTM(50, return_sequences) -> LSTM(50) -> Dense(1); Adam (lr 1e-3), MSE, 100 epochs, batch 32,
  ``validation_split=0.2`` (the last 21 of the 105 training windows), reshuffled every epoch;
* test predictions scaled back to passengers (thousands) and scored by RMSE against the actual values.

carousel's model is the same network: ``carousel.nn.LSTM(1, 50)`` -> ``carousel.nn.LSTM(50, 50)`` ->
``torch.nn.Linear(50, 1)`` on the last step, initialised as Keras initialises its layers
(``init="keras"``: Glorot-uniform input weights, orthogonal recurrent weights, zero biases but the
forget gate's at 1; Glorot-uniform weight and zero bias for the linear head), trained with
``carousel.train.fit`` with the same settings (and Keras' Adam epsilon, 1e-7), in float32.

For each seed, Keras then carousel are trained (interleaved, so that load on the machine hits both
alike), after one untimed 1-epoch warm-up fit of each. The time is the wall time of the ``fit`` call
only (for Keras it includes tracing the training step, which every new model pays). The table gives
the median and range over seeds of the fit time and the test RMSE, and the ratio Keras time /
carousel time (of the medians, and the median and range of the per-seed ratios). "others' CPU" is
the CPU time other processes used during the fits, as a fraction of all cores: timings are only
worth comparing when it is near 0%. With two threads on a machine that another process keeps busy,
torch's OpenMP threads wait on each other and carousel's times jump by several times (``--threads 1``
is steadier there); progress and per-seed results go to stderr, the tables to stdout.

On the same 27 test months it also scores one-step-ahead forecasts from the actual history of:
naive (last month), seasonal naive (same month a year before), Holt-Winters (statsmodels
``ExponentialSmoothing``, additive trend and multiplicative seasonality on the series) and the
airline model SARIMA(0,1,1)(0,1,1)12 on log passengers; both statistical models are fitted on
the first 117 months only, then run over the test months with their parameters fixed. Last comes
``carousel.models.Forecaster`` with its default settings, fitted on the first 117 months and
backtested from the actual history without refitting (one fit per seed).

TensorFlow is not a dependency of carousel; ``make bench-keras`` builds a separate environment
(``.venv-keras``: the pinned requirements, ``tensorflow-cpu`` and carousel) and runs::

    python benchmarks/keras_airline.py                 # 5 seeds, 100 epochs
    python benchmarks/keras_airline.py --quick         # 2 seeds, 10 epochs: a smoke run
    python benchmarks/keras_airline.py --seeds 10 --epochs 100

TensorFlow and torch share the process without trouble: torch loads its own OpenMP runtime
(libgomp) and TensorFlow runs its CPU kernels (oneDNN included) on its own thread pool without
OpenMP, so only one OpenMP runtime is loaded, and either import order works. torch is imported
first here. torch gets as many threads as the process has cores (``--threads``); TensorFlow keeps
its defaults (0 = chosen by TensorFlow, one per core); the header prints both. On a machine that
others use, compare timings only from runs made while it was quiet (the header prints the load).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

import carousel
from _machine import OtherLoad, load_average
from carousel.datasets import load_air_passengers
from carousel.nn import LSTM
from carousel.train import fit

LOOKBACK = 12
HIDDEN = 50
TRAIN_FRACTION = 0.8
VALIDATION_SPLIT = 0.2
BATCH_SIZE = 32
LR = 1e-3
KERAS_ADAM_EPSILON = 1e-7
SEASON = 12


# ---------------------------------------------------------------------- data
@dataclass
class Data:
    """The series, the scaled windows of the example and where the test months start."""

    series: Any  # pandas.Series, monthly, float64
    values: np.ndarray  # (144,) float64
    low: float
    high: float
    x_train: np.ndarray  # (105, 12, 1) float32
    y_train: np.ndarray  # (105, 1) float32
    x_test: np.ndarray  # (27, 12, 1) float32
    test_start: int  # 117: index of the first test month in the series

    @property
    def actual(self) -> np.ndarray:
        return self.values[self.test_start:]  # (27,)

    def unscale(self, scaled: np.ndarray) -> np.ndarray:
        return np.asarray(scaled, dtype=np.float64).reshape(-1) * (self.high - self.low) + self.low


def load_data() -> Data:
    series = load_air_passengers()
    values = series.to_numpy(dtype=np.float64)
    data = values.astype(np.float32)
    low, high = data.min(), data.max()  # over all 144 values, as the example does
    scaled = (data - low) / (high - low)  # (144,)
    x = np.stack([scaled[i:i + LOOKBACK] for i in range(len(scaled) - LOOKBACK)])[..., None]  # (132, 12, 1)
    y = scaled[LOOKBACK:, None]  # (132, 1)
    n_train = int(len(x) * TRAIN_FRACTION)  # 105
    return Data(series=series, values=values, low=float(low), high=float(high), x_train=x[:n_train],
                y_train=y[:n_train], x_test=x[n_train:], test_start=LOOKBACK + n_train)


@dataclass
class Result:
    seconds: float  # wall time of the fit call
    rmse: float  # test RMSE in passengers (thousands)
    others: float | None  # CPU used by other processes during the fit, fraction of all cores


def rmse(prediction: np.ndarray, actual: np.ndarray) -> float:
    return float(np.sqrt(np.mean((np.asarray(prediction, dtype=np.float64).reshape(-1) - actual) ** 2)))


# ---------------------------------------------------------------------- the two networks
def import_keras() -> tuple[Any, Any]:
    """``(tensorflow, keras)``, with TensorFlow's C++ info messages silenced."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    import tensorflow as tf

    return tf, keras


def keras_model(keras: Any) -> Any:
    model = keras.Sequential([
        keras.Input((LOOKBACK, 1)),
        keras.layers.LSTM(HIDDEN, return_sequences=True),
        keras.layers.LSTM(HIDDEN),
        keras.layers.Dense(1),
    ])
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=LR), loss="mse")
    return model


class StackedLSTM(nn.Module):
    """Two LSTM layers and a linear head on the last step, initialised as Keras does."""

    def __init__(self, hidden: int = HIDDEN) -> None:
        super().__init__()
        self.lstm1 = LSTM(1, hidden, batch_first=True, init="keras")
        self.lstm2 = LSTM(hidden, hidden, batch_first=True, init="keras")
        self.head = nn.Linear(hidden, 1)
        nn.init.xavier_uniform_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, 12, 1)
        h = self.lstm1(x)[0]  # (B, 12, H)
        h = self.lstm2(h)[0][:, -1]  # (B, H)
        return self.head(h)  # (B, 1)


def run_keras(keras: Any, data: Data, seed: int, epochs: int) -> Result:
    """Fit time and test RMSE of one Keras run."""
    keras.utils.set_random_seed(seed)
    model = keras_model(keras)
    load = OtherLoad()
    start = time.perf_counter()
    model.fit(data.x_train, data.y_train, epochs=epochs, batch_size=BATCH_SIZE,
              validation_split=VALIDATION_SPLIT, verbose=0)
    seconds, others = time.perf_counter() - start, load.read()
    prediction = model.predict(data.x_test, batch_size=BATCH_SIZE, verbose=0)
    return Result(seconds, rmse(data.unscale(prediction), data.actual), others)


def run_carousel(data: Data, seed: int, epochs: int) -> Result:
    """Fit time and test RMSE of one carousel run."""
    torch.manual_seed(seed)
    model = StackedLSTM()
    x, y = torch.from_numpy(data.x_train), torch.from_numpy(data.y_train)
    load = OtherLoad()
    start = time.perf_counter()
    fit(model, (x, y), loss="mse", optimizer="adam", lr=LR, optimizer_options={"eps": KERAS_ADAM_EPSILON},
        epochs=epochs, batch_size=BATCH_SIZE, validation_split=VALIDATION_SPLIT, shuffle=True, seed=seed,
        verbose=0)
    seconds, others = time.perf_counter() - start, load.read()
    model.eval()
    with torch.no_grad():
        prediction = model(torch.from_numpy(data.x_test)).numpy()
    return Result(seconds, rmse(data.unscale(prediction), data.actual), others)


# ---------------------------------------------------------------------- baselines
def baselines(data: Data) -> dict[str, np.ndarray]:
    """One-step-ahead forecasts of the test months from the actual history, by name."""
    from statsmodels.tsa.holtwinters import ExponentialSmoothing
    from statsmodels.tsa.statespace.sarimax import SARIMAX

    y, t, n = data.values, data.test_start, len(data.values)
    out = {"naive (last month)": y[t - 1:n - 1], "seasonal naive (12 months before)": y[t - SEASON:n - SEASON]}

    # Holt-Winters: fit on y[:t]; the same parameters and initial states run over the whole series
    # give, from index t on, the one-step-ahead forecasts from the actual history.
    options = dict(trend="add", seasonal="mul", seasonal_periods=SEASON)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # statsmodels' convergence chatter; the RMSE tells the result
        hw = ExponentialSmoothing(y[:t], initialization_method="estimated", **options).fit()
        p = hw.params
        run = ExponentialSmoothing(
            y, initialization_method="known", initial_level=p["initial_level"], initial_trend=p["initial_trend"],
            initial_seasonal=p["initial_seasons"], **options,
        ).fit(smoothing_level=p["smoothing_level"], smoothing_trend=p["smoothing_trend"],
              smoothing_seasonal=p["smoothing_seasonal"], optimized=False)
    if not np.allclose(run.fittedvalues[:t], hw.fittedvalues):
        raise RuntimeError("Holt-Winters: the fixed-parameter run does not reproduce the fitted training values")
    out["Holt-Winters (add. trend, mult. season)"] = np.asarray(run.fittedvalues[t:])

    # Airline model on log passengers; append() runs the Kalman filter over the test months with the
    # parameters fitted on y[:t]; exp of the one-step log forecast (the median, no bias correction).
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sarima = SARIMAX(np.log(y[:t]), order=(0, 1, 1), seasonal_order=(0, 1, 1, SEASON)).fit(disp=False)
        extended = sarima.append(np.log(y[t:]))
    out["SARIMA(0,1,1)(0,1,1)12 on log"] = np.exp(extended.get_prediction(start=t, end=n - 1).predicted_mean)
    return out


def forecaster_row(data: Data, seed: int, quick: bool) -> Result:
    """Fit time and test RMSE of ``carousel.models.Forecaster`` with its defaults (``quick``: 10
    epochs, one network), fitted on the training months and backtested from the actual history."""
    from carousel.models import Forecaster

    forecaster = Forecaster(epochs=10, ensemble=1, random_state=seed) if quick else Forecaster(random_state=seed)
    train = data.series.iloc[:data.test_start]
    load = OtherLoad()
    start = time.perf_counter()
    forecaster.fit(train)
    seconds, others = time.perf_counter() - start, load.read()
    result = forecaster.backtest(data.series, start=data.test_start, horizon=1, refit=False)
    return Result(seconds, rmse(result.predictions[:, 0, 0], data.actual), others)


# ---------------------------------------------------------------------- report
@dataclass
class Runs:
    results: list[Result] = field(default_factory=list)

    @property
    def seconds(self) -> list[float]:
        return [r.seconds for r in self.results]

    @property
    def rmse(self) -> list[float]:
        return [r.rmse for r in self.results]

    def others(self) -> str:
        values = [r.others for r in self.results if r.others is not None]
        return f"{100 * statistics.median(values):.0f}%" if values else "n/a"


def spread(values: list[float], digits: int) -> str:
    return f"{statistics.median(values):.{digits}f} [{min(values):.{digits}f}, {max(values):.{digits}f}]"


def describe(result: Result) -> str:
    others = "n/a" if result.others is None else f"{100 * result.others:.0f}%"
    return f"fit {result.seconds:7.2f} s, test RMSE {result.rmse:6.1f}, others' CPU {others}"


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5, help="seeds 0..N-1 (default 5)")
    parser.add_argument("--epochs", type=int, default=100, help="epochs of both networks (default 100)")
    parser.add_argument("--quick", action="store_true", help="2 seeds, 10 epochs, a small Forecaster: a smoke run")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: the cores of this process)")
    args = parser.parse_args(argv)
    if args.quick:
        args.seeds, args.epochs = 2, 10
    if args.seeds < 1 or args.epochs < 1:
        parser.error("--seeds and --epochs: expected integers >= 1")
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    torch.set_num_threads(args.threads or cores)

    tf, keras = import_keras()
    data = load_data()
    probe = StackedLSTM()
    print(f"python {platform.python_version()}, {platform.machine()}, {cores} cores, load {load_average()}")
    print(f"torch {torch.__version__}: threads {torch.get_num_threads()}, inter-op {torch.get_num_interop_threads()}; "
          f"carousel {carousel.__version__} (LSTM implementation: {probe.lstm1.implementation})")
    print(f"tensorflow {tf.__version__}, keras {keras.__version__}: intra-op "
          f"{tf.config.threading.get_intra_op_parallelism_threads()}, inter-op "
          f"{tf.config.threading.get_inter_op_parallelism_threads()} (0 = TensorFlow's default, one per core)")
    print(f"numpy {np.__version__}, float32; seeds 0..{args.seeds - 1}, {args.epochs} epochs, batch {BATCH_SIZE}, "
          f"validation_split {VALIDATION_SPLIT}{', --quick' if args.quick else ''}")
    print(f"data: {len(data.values)} months, windows of {LOOKBACK}: {len(data.x_train)} train "
          f"(of which {len(data.x_train) - int(len(data.x_train) * (1 - VALIDATION_SPLIT))} validation), "
          f"{len(data.x_test)} test = months {data.test_start}..{len(data.values) - 1}; min-max scaling fitted on "
          f"all {len(data.values)} months (test included, as in the Keras example)")
    print()

    log("warm-up: one epoch of each")
    run_keras(keras, data, seed=10_000, epochs=1)
    run_carousel(data, seed=10_000, epochs=1)
    runners: dict[str, Callable[[int], Result]] = {
        f"Keras {keras.__version__} (TF {tf.__version__})": lambda seed: run_keras(keras, data, seed, args.epochs),
        f"carousel {carousel.__version__}": lambda seed: run_carousel(data, seed, args.epochs),
    }
    runs = {name: Runs() for name in runners}
    for seed in range(args.seeds):
        for name, runner in runners.items():
            result = runner(seed)
            runs[name].results.append(result)
            log(f"seed {seed}: {name:<26} {describe(result)}")

    width = max(len(name) for name in runs) + 2
    print(f"LSTM(50) -> LSTM(50) -> Dense(1), {args.seeds} seeds, {args.epochs} epochs: median [min, max]")
    print(f"{'':<{width}}{'fit time (s)':<24}{'test RMSE (thousands)':<24}others' CPU (median)")
    for name, r in runs.items():
        print(f"{name:<{width}}{spread(r.seconds, 2):<24}{spread(r.rmse, 1):<24}{r.others()}")
    keras_runs, carousel_runs = runs.values()
    paired = [k / c for k, c in zip(keras_runs.seconds, carousel_runs.seconds, strict=True)]
    ratio = statistics.median(keras_runs.seconds) / statistics.median(carousel_runs.seconds)
    print(f"Keras time / carousel time: {ratio:.2f} (of the medians); per seed {spread(paired, 2)}")
    print()

    print(f"one-step-ahead forecasts of the same {len(data.actual)} test months from the actual history "
          f"(statistical models fitted on months 0..{data.test_start - 1}):")
    table = {name: rmse(prediction, data.actual) for name, prediction in baselines(data).items()}
    width = max(len(name) for name in table) + 2
    for name, error in table.items():
        print(f"{name:<{width}}test RMSE {error:6.1f}")

    forecaster = Runs()
    for seed in range(args.seeds):
        result = forecaster_row(data, seed, args.quick)
        forecaster.results.append(result)
        log(f"seed {seed}: {'Forecaster':<26} {describe(result)}")
    settings = "epochs=10, ensemble=1 (--quick)" if args.quick else "default settings"
    print(f"carousel.models.Forecaster, {settings}, {args.seeds} seeds, fitted on months 0..{data.test_start - 1}, "
          f"backtest(refit=False): test RMSE {spread(forecaster.rmse, 1)}, fit {spread(forecaster.seconds, 2)} s")
    print(f"(load at the end: {load_average()})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

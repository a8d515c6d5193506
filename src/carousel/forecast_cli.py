"""``carousel forecast`` and ``carousel tune``: the forecasting job from the command line."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from carousel.datasets import load_air_passengers, read_csv_series

DEFAULT_OUT = "carousel-forecast"


def add_data_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("data (default: the bundled Air Passengers series, 1949-1960)")
    g.add_argument("--csv", type=Path, default=None, help="a CSV file with a header row")
    g.add_argument("--column", default=None, help="the column to forecast (default: the only numeric one)")
    g.add_argument("--date-column", default="auto",
                   help="the column of dates ('auto': the first column when it holds dates; 'none': no dates)")
    g.add_argument("--season", type=int, default=None, help="seasonal period (default: inferred from the dates)")
    g.add_argument("--fill-missing", choices=("raise", "interpolate", "ffill"), default="raise",
                   help="what to do with missing values (default: stop and name them)")
    g.add_argument("--test-fraction", type=float, default=0.2,
                   help="the last fraction of the lookback windows held out for testing (default 0.2)")


def add_model_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("model")
    g.add_argument("--cell", default="lstm", help="a recurrent layer of carousel.nn (default lstm)")
    g.add_argument("--hidden-size", type=int, default=50)
    g.add_argument("--num-layers", type=int, default=2)
    g.add_argument("--lookback", type=int, default=12)
    g.add_argument("--horizon", type=int, default=1, help="steps ahead of each test forecast (default 1)")
    g.add_argument("--ensemble", type=int, default=None, help="networks averaged (default: the Forecaster's)")
    g.add_argument("--epochs", type=int, default=None, help="(default: the Forecaster's, with early stopping)")
    g.add_argument("--seed", type=int, default=0)


def load_series(args: argparse.Namespace):
    if args.csv is None:
        if args.column is not None:
            raise ValueError(f"--column: expected it only with --csv, got {args.column!r} without a file")
        return load_air_passengers()
    date_column = None if str(args.date_column).lower() == "none" else args.date_column
    return read_csv_series(args.csv, args.column, date_column=date_column)


def split_point(n: int, lookback: int, test_fraction: float) -> int:
    """First test index: the last ``test_fraction`` of the ``n - lookback`` windows are the test
    windows (the tutorial's chronological split of samples, not of raw values)."""
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"--test-fraction: expected a number in (0, 1), got {test_fraction!r}")
    windows = n - lookback
    if windows < 2:
        raise ValueError(f"series: expected more than lookback + 1 = {lookback + 1} values, got {n}")
    start = lookback + int(windows * (1.0 - test_fraction))
    if start >= n:
        raise ValueError(f"--test-fraction: expected a fraction leaving at least one test value of {n}, "
                         f"got {test_fraction!r}")
    return start


def build_forecaster(args: argparse.Namespace, **overrides: Any):
    from carousel.models import Forecaster

    options: dict[str, Any] = dict(cell=args.cell, hidden_size=args.hidden_size, num_layers=args.num_layers,
                                   lookback=args.lookback, season=args.season, fill_missing=args.fill_missing,
                                   random_state=args.seed)
    if args.ensemble is not None:
        options["ensemble"] = args.ensemble
    if args.epochs is not None:
        options["epochs"] = args.epochs
    options.update(overrides)
    return Forecaster(**options)


def plot(series, start: int, backtest, histories: list[dict], out: Path, title: str) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    index = series.index if hasattr(series, "index") else np.arange(len(series))
    values = np.asarray(series, dtype=float)
    times = np.asarray(index)[backtest.origins]
    pred = backtest.predictions[:, 0, 0]
    fig, ax = plt.subplots(figsize=(10, 4.5))
    ax.plot(index, values, color="black", lw=1.2, label="actual")
    label = "forecast (one step ahead)" if backtest.predictions.shape[1] == 1 else "forecast (first step)"
    ax.plot(times, pred, color="tab:blue", lw=1.5, label=label)
    if backtest.lower is not None:
        ax.fill_between(times, backtest.lower[:, 0, 0], backtest.upper[:, 0, 0], color="tab:blue", alpha=0.2,
                        label=f"{backtest.coverage:.0%} interval")
    if backtest.seasonal_naive is not None:
        ax.plot(times, backtest.seasonal_naive[:, 0, 0], color="tab:gray", lw=1, ls="--", label="seasonal naive")
    ax.axvline(np.asarray(index)[start], color="tab:red", lw=0.8, ls=":")
    ax.set_title(title)
    ax.legend(loc="upper left")
    fig.tight_layout()
    paths = [out / "forecast.png"]
    fig.savefig(paths[0], dpi=120)
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(7, 4))
    for i, h in enumerate(histories):
        ax.plot(range(1, len(h["loss"]) + 1), h["loss"], color="tab:blue", alpha=0.6,
                label="training loss" if i == 0 else None)
        if "val_loss" in h:
            ax.plot(range(1, len(h["val_loss"]) + 1), h["val_loss"], color="tab:orange", alpha=0.6,
                    label="validation loss" if i == 0 else None)
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("MSE (scaled)")
    ax.set_title(f"training curves ({len(histories)} ensemble member{'s' if len(histories) > 1 else ''})")
    ax.legend()
    fig.tight_layout()
    paths.append(out / "training.png")
    fig.savefig(paths[1], dpi=120)
    plt.close(fig)
    return paths


def forecast(args: argparse.Namespace) -> int:
    """Fit a forecaster on the first part of a series and test it on the rest, beside baselines."""
    series = load_series(args)
    name = args.csv.name if args.csv is not None else "Air Passengers (monthly, 1949-1960)"
    n = len(series)
    start = split_point(n, args.lookback, args.test_fraction)
    model = build_forecaster(args)
    print(f"{name}: {n} values; training on the first {start}, testing {args.horizon}-step-ahead forecasts "
          f"of the last {n - start} from the actual history")
    began = time.perf_counter()
    model.fit(series.iloc[:start] if hasattr(series, "iloc") else series[:start])
    fitted = time.perf_counter() - began
    layers = f"{args.num_layers} layer{'s' if args.num_layers > 1 else ''} of {args.hidden_size}"
    print(f"fitted {model.ensemble} x {args.cell.upper()} ({layers}), "
          f"lookback {args.lookback}, season {model.season_}, transform {model.transform_}, seasonal "
          f"difference {model.seasonal_difference_}, in {fitted:.1f} s")
    backtest = model.backtest(series, start, horizon=args.horizon, coverage=args.coverage)
    print("\ntest errors (RMSE, MAE in the series' units; MAPE in %):")
    print(backtest.metrics)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    if not args.no_plots:
        written += plot(series, start, backtest, model.history_, out, f"{name}: {args.cell.upper()} forecaster")
    model.save(out / "model")
    written.append(out / "model")
    (out / "metrics.json").write_text(json.dumps({"test_start": start, "metrics": dict(backtest.metrics),
                                                  "fit_seconds": fitted}, indent=1))
    written.append(out / "metrics.json")
    print("\nwrote " + ", ".join(str(p) for p in written))
    return 0


def tune(args: argparse.Namespace) -> int:
    """Search the forecaster's hyperparameters with Optuna on a validation tail of the training part."""
    from carousel.train import OptunaPruning, suggest
    from carousel.train import tune as run_study

    series = load_series(args)
    n = len(series)
    start = split_point(n, args.lookback, args.test_fraction)
    train = series.iloc[:start] if hasattr(series, "iloc") else series[:start]
    val_start = split_point(start, args.lookback, args.test_fraction)  # the same split inside the training part
    space = {"hidden_size": [16, 32, 50, 64], "num_layers": [1, 2], "lr": (1e-3, 3e-2, "log"),
             "batch_size": [8, 16, 32], "dropout": (0.0, 0.3)}
    print(f"tuning on the first {start} values: fit on {val_start}, score one-step forecasts of the next "
          f"{start - val_start}; {args.trials} trials, median pruning")

    def objective(trial) -> float:
        params = suggest(trial, space)
        model = build_forecaster(args, ensemble=1, **params)
        model.fit(train.iloc[:val_start] if hasattr(train, "iloc") else train[:val_start],
                  callbacks=[OptunaPruning(trial)])
        return float(model.backtest(train, val_start).metrics["model"]["rmse"])

    study = run_study(objective, n_trials=args.trials, timeout=args.timeout, seed=args.seed)
    done = [t for t in study.trials if t.value is not None]
    pruned = len(study.trials) - len(done)
    print(f"{len(study.trials)} trials ({pruned} pruned); best validation RMSE {study.best_value:.3f} with")
    print(json.dumps(study.best_params, indent=1))
    best = build_forecaster(args, **study.best_params)
    best.fit(train)
    backtest = best.backtest(series, start)
    print("\ntest errors of the best configuration (ensemble as configured):")
    print(backtest.metrics)
    return 0


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("forecast", help="fit a forecaster and test it against the naive baselines",
                       description="Fit a recurrent forecaster on the first part of a series and test it on the "
                                   "rest, beside the naive and seasonal-naive baselines. With no arguments: the "
                                   "Air Passengers series, lookback 12, two stacked LSTM layers of 50, 80/20 "
                                   "chronological split.")
    add_data_arguments(p)
    add_model_arguments(p)
    p.add_argument("--coverage", type=float, default=0.9, help="prediction interval coverage (default 0.9)")
    p.add_argument("--out", default=DEFAULT_OUT, help=f"output directory (default {DEFAULT_OUT}/)")
    p.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    p.set_defaults(run=forecast)
    p = sub.add_parser("tune", help="search the forecaster's hyperparameters with Optuna (pruning)")
    add_data_arguments(p)
    add_model_arguments(p)
    p.add_argument("--trials", type=int, default=20)
    p.add_argument("--timeout", type=float, default=None, help="stop the search after this many seconds")
    p.set_defaults(run=tune)

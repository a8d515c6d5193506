"""`carousel forecast` / `carousel tune` and the CSV reader: outputs and error messages."""

from __future__ import annotations

import json

import pytest

from carousel.cli import main
from carousel.datasets import read_csv_series

FAST = ["--epochs", "3", "--ensemble", "1", "--hidden-size", "8", "--num-layers", "1"]


def test_forecast_writes_metrics_plots_and_model(tmp_path, capsys):
    assert main(["forecast", *FAST, "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "training on the first 117, testing 1-step-ahead forecasts of the last 27" in out
    for row in ("model", "naive", "seasonal_naive"):
        assert f"\n{row} " in out
    assert (tmp_path / "forecast.png").stat().st_size > 10_000
    assert (tmp_path / "training.png").stat().st_size > 5_000
    assert (tmp_path / "model" / "config.json").exists() and (tmp_path / "model" / "model.safetensors").exists()
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["test_start"] == 117 and set(metrics["metrics"]) == {"model", "naive", "seasonal_naive"}
    assert metrics["metrics"]["seasonal_naive"]["rmse"] == pytest.approx(47.195, abs=1e-3)

    from carousel.models import Forecaster

    assert Forecaster.load(tmp_path / "model").predict(3).shape == (3,)


def write(tmp_path, text, name="data.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_forecast_on_a_csv_column(tmp_path, capsys):
    import numpy as np

    t = np.arange(80)
    dates = [f"{2000 + i // 12}-{1 + i % 12:02d}-01" for i in range(80)]
    rows = "".join(f"{d},{v:.4f},{i}\n" for i, (d, v) in enumerate(zip(dates, 50 + 10 * np.sin(2 * np.pi * t / 12)
                                                                         + t)))
    path = write(tmp_path, "month,sales,other\n" + rows)
    assert main(["forecast", *FAST, "--csv", str(path), "--column", "sales", "--out", str(tmp_path / "o"),
                 "--no-plots"]) == 0
    out = capsys.readouterr().out
    assert "data.csv: 80 values" in out and "season 12" in out
    assert not (tmp_path / "o" / "forecast.png").exists()


@pytest.mark.parametrize(
    ("content", "args", "message"),
    [
        (None, ["--csv", "missing.csv"], "path: expected an existing CSV file, got '.*missing.csv' \\(not found\\)"),
        ("a,b\n1,2\n", ["--column", "c"], r"column: expected one of \['a', 'b'\], got 'c'"),
        ("a,b\n1,2\n", [], r"column: expected the name of the value column \(one of \['a', 'b'\]\)"),
        ("d,v\n2000-01-01,1\n2000-02-01,x\n2000-03-01,3\n", ["--column", "v"],
         r"column 'v': expected numbers, got non-numeric values \['x'\] on lines \[3\]"),
        ("d,v\n" + "".join(f"2000-{m:02d}-01,{m}\n" for m in range(1, 13)), ["--column", "v"],
         r"series: expected more than lookback \+ 1 = 13 values, got 12"),
        ("d,v\n" + "".join(f"{2000 + i // 12}-{1 + i % 12:02d}-01,{i + 1}\n" for i in range(28)), ["--column", "v"],
         r"y: expected at least 26 observations \(lookback=12 \+ 1 target \+ 12 consumed by differencing"),
        ("d,v\n" + "".join(f"{2000 + i // 12}-{1 + i % 12:02d}-01,{'' if i == 40 else i + 1}\n" for i in range(60)),
         ["--column", "v"], "NaN|missing"),
    ],
)
def test_forecast_errors(tmp_path, capsys, content, args, message):
    if content is not None:
        path = write(tmp_path, content)
        args = ["--csv", str(path), *args]
    else:
        args = ["--csv", str(tmp_path / args[1])]
    assert main(["forecast", *FAST, "--out", str(tmp_path / "o"), *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("carousel forecast: error: ")
    import re

    assert re.search(message, err), err


def test_missing_values_can_be_interpolated(tmp_path, capsys):
    rows = "".join(f"{2000 + i // 12}-{1 + i % 12:02d}-01,{'' if i == 40 else 100 + i + 10 * (i % 12 == 6)}\n"
                   for i in range(72))
    path = write(tmp_path, "d,v\n" + rows)
    assert main(["forecast", *FAST, "--csv", str(path), "--column", "v", "--fill-missing", "interpolate",
                 "--out", str(tmp_path / "o"), "--no-plots"]) == 0


def test_read_csv_series_dates_and_plain_index(tmp_path):
    s = read_csv_series(write(tmp_path, "when,x\n2001-01-01,1\n2002-01-01,2\n2003-01-01,3\n"), "x")
    assert s.index.freqstr.startswith("YS") and s.name == "x"
    s = read_csv_series(write(tmp_path, "x,y\n1,2\n3,4\n", "n.csv"), "y", date_column=None)
    assert list(s.index) == [0, 1] and s.tolist() == [2.0, 4.0]
    with pytest.raises(ValueError, match="date_column 'x': expected dates, got"):
        read_csv_series(write(tmp_path, "x,y\nabc,2\n3,4\n", "m.csv"), "y", date_column="x")


def test_tune_runs_trials_with_pruning(capsys):
    optuna = pytest.importorskip("optuna")
    assert optuna
    assert main(["tune", "--trials", "3", "--epochs", "3", "--ensemble", "1", "--lookback", "12"]) == 0
    out = capsys.readouterr().out
    assert "3 trials" in out and "best validation RMSE" in out and "\nseasonal_naive " in out

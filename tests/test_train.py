"""carousel.train: the loop, every callback, clipping, accumulation, TBPTT, precision, checkpoints,
resume exactness across processes, the non-finite stop and a 2-process torchrun run."""

from __future__ import annotations

import csv
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from carousel.nn import LSTM
from carousel.train import (
    Callback,
    CSVLogger,
    EarlyStopping,
    LRScheduler,
    Metric,
    ModelCheckpoint,
    NonFiniteLossError,
    ReduceLROnPlateau,
    TensorBoard,
    Trainer,
    fit,
    load_state,
    load_weights,
    save_weights,
)

SCRIPT = Path(__file__).with_name("train_script.py")


def linear_data(n=64, seed=0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, generator=gen)
    return x, x @ torch.tensor([[1.0], [-2.0], [0.5]]) + 0.3


class Recorder(Callback):
    def __init__(self):
        self.events = []

    def on_train_begin(self, trainer):
        self.events.append("train_begin")

    def on_epoch_begin(self, trainer, epoch):
        self.events.append(f"epoch_begin {epoch}")

    def on_batch_end(self, trainer, batch, logs):
        self.events.append(f"batch {batch}")

    def on_step_end(self, trainer):
        self.events.append("step")

    def on_epoch_end(self, trainer, epoch, logs):
        self.events.append(f"epoch_end {epoch}")

    def on_epoch_finished(self, trainer, epoch, logs):
        self.events.append(f"finished {epoch}")

    def on_train_end(self, trainer):
        self.events.append("train_end")


# ------------------------------------------------------------------------------------ the loop


def test_fit_learns_and_logs_metrics():
    x, y = linear_data()
    history = fit(nn.Linear(3, 1), (x, y), lr=0.05, epochs=60, batch_size=16, validation_split=0.25,
                  metrics=["mae", "rmse"], seed=0, verbose=0)
    assert history["val_loss"][-1] < 1e-3 < history["val_loss"][0]
    assert history.epoch == list(range(1, 61))
    assert math.isclose(history["val_rmse"][-1], math.sqrt(history["val_loss"][-1]), rel_tol=1e-5)


def test_metric_values_are_exact_over_uneven_batches():
    model = nn.Linear(3, 1)
    x, y = linear_data(50)
    trainer = Trainer(model, metrics=["mae", "mse", "mape"], verbose=0)
    logs = trainer.evaluate((x, y), batch_size=7)
    with torch.no_grad():
        pred = model(x)
    assert math.isclose(logs["mae"], float((pred - y).abs().mean()), rel_tol=1e-5)
    assert math.isclose(logs["loss"], float(((pred - y) ** 2).mean()), rel_tol=1e-5)
    assert math.isclose(logs["mape"], float(((pred - y).abs() / y.abs()).mean() * 100), rel_tol=1e-4)


def test_classification_accuracy_and_losses_by_name():
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(200, 2, generator=gen)
    labels = (x[:, 0] > x[:, 1]).long()
    history = fit(nn.Linear(2, 2), (x, labels), loss="cross_entropy", lr=0.1, epochs=30, metrics=["accuracy"],
                  seed=0, verbose=0)
    assert history["accuracy"][-1] > 0.95


def test_seeded_runs_are_identical_and_unseeded_differ_in_order():
    x, y = linear_data()
    weights = []
    for _ in range(2):
        torch.manual_seed(3)
        model = nn.Sequential(nn.Linear(3, 8), nn.Dropout(0.3), nn.Linear(8, 1))
        fit(model, (x, y), epochs=3, batch_size=8, seed=11, verbose=0)
        weights.append(torch.cat([p.flatten() for p in model.parameters()]))
    assert torch.equal(weights[0], weights[1])


def test_callback_order_and_multiple_inputs():
    class Two(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Linear(3, 1), nn.Linear(2, 1)

        def forward(self, u, v):
            return self.a(u) + self.b(v)

    x, y = linear_data(20)
    rec = Recorder()
    fit(Two(), ((x, x[:, :2]), y), epochs=2, batch_size=10, callbacks=[rec], verbose=0)
    assert rec.events == ["train_begin", "epoch_begin 1", "step", "batch 0", "step", "batch 1", "epoch_end 1",
                          "finished 1", "epoch_begin 2", "step", "batch 0", "step", "batch 1", "epoch_end 2",
                          "finished 2", "train_end"]


def test_dataset_and_dataloader_inputs():
    x, y = linear_data(40)
    ds = torch.utils.data.TensorDataset(x, y)
    h1 = fit(nn.Linear(3, 1), ds, epochs=2, batch_size=8, validation_split=0.25, seed=0, verbose=0)

    class Plain(torch.utils.data.Dataset):
        def __len__(self):
            return 40

        def __getitem__(self, i):
            return x[i], y[i]

    h2 = fit(nn.Linear(3, 1), Plain(), epochs=2, batch_size=8, validation_split=0.25, seed=0, verbose=0)
    loader = torch.utils.data.DataLoader(ds, batch_size=8)
    h3 = fit(nn.Linear(3, 1), loader, epochs=2, validation_data=loader, verbose=0)
    assert len(h1["val_loss"]) == len(h2["val_loss"]) == len(h3["val_loss"]) == 2


def test_numpy_and_float64_models():
    import numpy as np

    x, y = linear_data()
    model = nn.Linear(3, 1).double()
    history = fit(model, (x.numpy().astype(np.float64), y.numpy()), epochs=2, verbose=0)
    assert len(history["loss"]) == 2


# ------------------------------------------------------------------------------------ callbacks


def test_early_stopping_stops_and_restores_best_weights():
    x, y = linear_data()

    model = nn.Linear(3, 1)
    stop = EarlyStopping("val_loss", patience=2)
    # a learning rate so high that validation loss diverges after a few epochs
    history = fit(model, (x, y), optimizer="sgd", lr=0.9, epochs=50, batch_size=64, validation_split=0.25,
                  callbacks=[stop], seed=0, verbose=0)
    losses = history["val_loss"]
    best = min(range(len(losses)), key=losses.__getitem__) + 1
    assert stop.best_epoch == best and stop.stopped_epoch == best + 3 == len(losses)
    with torch.no_grad():
        now = float(nn.functional.mse_loss(model(x[48:]), y[48:]))
    assert math.isclose(now, losses[best - 1], rel_tol=1e-5)


def test_early_stopping_names_missing_monitor():
    x, y = linear_data()
    with pytest.raises(KeyError, match="monitor 'val_loss' is not among the epoch's logs.*validation_split"):
        fit(nn.Linear(3, 1), (x, y), epochs=2, callbacks=[EarlyStopping()], verbose=0)


def test_reduce_lr_on_plateau_and_torch_schedulers():
    x, y = linear_data()
    plateau = ReduceLROnPlateau("loss", factor=0.5, patience=0, min_delta=1e9)  # never an improvement
    history = fit(nn.Linear(3, 1), (x, y), lr=0.1, epochs=3, callbacks=[plateau], verbose=0)
    assert history["lr"] == pytest.approx([0.1, 0.1, 0.05])  # the rate used in each epoch; epoch 1 sets the best
    step = LRScheduler(lambda opt: torch.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.1))
    history = fit(nn.Linear(3, 1), (x, y), lr=1.0, epochs=4, callbacks=[step], verbose=0)
    assert history["lr"] == pytest.approx([1.0, 1.0, 0.1, 0.1])
    per_step = LRScheduler(lambda opt: torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 ** s), interval="step")
    trainer = Trainer(nn.Linear(3, 1), lr=1.0, callbacks=[per_step], verbose=0)
    trainer.fit((x, y), epochs=1, batch_size=16)  # 4 steps
    assert trainer.optimizer.param_groups[0]["lr"] == pytest.approx(0.5 ** 4)
    model = nn.Linear(3, 1)
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    history = fit(model, (x, y), optimizer=opt, scheduler=torch.optim.lr_scheduler.ExponentialLR(opt, 0.5),
                  epochs=2, verbose=0)
    assert history["lr"] == pytest.approx([1.0, 0.5])
    assert opt.param_groups[0]["lr"] == pytest.approx(0.25)


def test_scheduler_of_another_optimizer_is_refused():
    x, y = linear_data()
    other = torch.optim.SGD(nn.Linear(1, 1).parameters(), lr=1.0)
    with pytest.raises(ValueError, match="scheduler: expected a scheduler of the trainer's optimizer"):
        fit(nn.Linear(3, 1), (x, y), scheduler=torch.optim.lr_scheduler.StepLR(other, 1), verbose=0)


def test_model_checkpoint_best_only_and_formatting(tmp_path):
    x, y = linear_data()
    every = ModelCheckpoint(tmp_path / "ck-{epoch:02d}.safetensors")
    best = ModelCheckpoint(tmp_path / "best.safetensors", monitor="val_loss", save_best_only=True)
    model = nn.Linear(3, 1)
    history = fit(model, (x, y), lr=0.05, epochs=3, validation_split=0.25, callbacks=[every, best], verbose=0)
    assert sorted(p.name for p in tmp_path.glob("ck-*")) == ["ck-01.safetensors", "ck-02.safetensors",
                                                             "ck-03.safetensors"]
    state = load_state(tmp_path / "best.safetensors")
    assert state["epoch"] == 1 + min(range(3), key=history["val_loss"].__getitem__)
    assert set(state) >= {"model", "optimizer", "callbacks", "rng", "history", "epoch"}
    assert not list(tmp_path.glob(".*.tmp"))  # no temporary file left behind
    final = load_state(tmp_path / "ck-03.safetensors")["model"]
    assert all(torch.equal(final[k], v) for k, v in model.state_dict().items())


def test_csv_logger(tmp_path):
    x, y = linear_data()
    fit(nn.Linear(3, 1), (x, y), epochs=3, validation_split=0.25, metrics=["mae"],
        callbacks=[CSVLogger(tmp_path / "log.csv")], verbose=0)
    rows = list(csv.reader(open(tmp_path / "log.csv")))
    assert rows[0] == ["epoch", "loss", "mae", "val_loss", "val_mae", "lr"]
    assert [r[0] for r in rows[1:]] == ["1", "2", "3"]
    assert all(math.isfinite(float(v)) for r in rows[1:] for v in r)


def test_tensorboard(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    x, y = linear_data()
    fit(nn.Linear(3, 1), (x, y), epochs=2, validation_split=0.25,
        callbacks=[TensorBoard(tmp_path, batch_every=1)], verbose=0)
    acc = EventAccumulator(str(tmp_path))
    acc.Reload()
    assert {"epoch/loss", "epoch/val_loss", "epoch/lr", "batch/loss"} <= set(acc.Tags()["scalars"])
    assert [e.step for e in acc.Scalars("epoch/loss")] == [1, 2]


# ------------------------------------------------------------------------------------ gradients


def grads_after_one_step(**options):
    torch.manual_seed(0)
    model = nn.Linear(3, 1)
    x, y = linear_data(32)
    seen = {}

    class Grab(Callback):
        def on_train_begin(self, trainer):
            def hook(opt, args, kwargs):
                seen["grad"] = [p.grad.clone() for p in model.parameters()]

            trainer.optimizer.register_step_pre_hook(hook)

    fit(model, (x, y), optimizer="sgd", lr=1e-3, epochs=1, shuffle=False, callbacks=[Grab()], verbose=0, **options)
    return seen["grad"], model, x, y


def test_clip_by_norm_and_by_value():
    raw, model, x, y = grads_after_one_step(batch_size=32)
    norm = torch.cat([g.flatten() for g in raw]).norm()
    clipped, *_ = grads_after_one_step(batch_size=32, clip_norm=0.1)
    assert math.isclose(float(torch.cat([g.flatten() for g in clipped]).norm()), 0.1, rel_tol=1e-5)
    assert all(torch.allclose(c, r * 0.1 / norm, atol=1e-7) for c, r in zip(clipped, raw))
    by_value, *_ = grads_after_one_step(batch_size=32, clip_value=0.05)
    assert all(torch.equal(v, r.clamp(-0.05, 0.05)) for v, r in zip(by_value, raw))


def test_gradient_accumulation_equals_the_large_batch():
    full, *_ = grads_after_one_step(batch_size=32)
    accumulated, *_ = grads_after_one_step(batch_size=8, accumulate=4)
    assert all(torch.allclose(a, f, atol=1e-6) for a, f in zip(accumulated, full))
    x, y = linear_data(40)
    rec = Recorder()
    fit(nn.Linear(3, 1), (x, y), epochs=1, batch_size=8, accumulate=2, callbacks=[rec], verbose=0)
    assert rec.events.count("step") == 3  # 5 batches: steps after batches 2, 4 and the last


# ------------------------------------------------------------------------------------ TBPTT


class Seq(nn.Module):
    """A sequence model with state in and out: model(x, state) -> (y, state)."""

    def __init__(self):
        super().__init__()
        self.lstm = LSTM(1, 8, batch_first=True)
        self.head = nn.Linear(8, 1)
        self.states_in = []

    def forward(self, x, state=None):
        self.states_in.append(state)
        out, state = self.lstm(x, state)
        return self.head(out), state


def echo_data(n=16, steps=24):
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(n, steps, 1, generator=gen)
    return x, torch.roll(x, 2, dims=1)  # y_t = x_{t-2}: needs memory across chunk borders


def test_tbptt_carries_detached_state_across_chunks():
    x, y = echo_data()
    model = Seq()
    rec = Recorder()
    fit(model, (x, y), tbptt=8, epochs=1, batch_size=16, callbacks=[rec], verbose=0)
    assert rec.events.count("step") == 3  # one optimizer step per chunk
    states = model.states_in
    assert states[0] is None and all(s is not None for s in states[1:3])
    assert all(not s[0].requires_grad and s[0].grad_fn is None for s in states[1:3])
    assert states[1][0].shape == (1, 16, 8)


def test_tbptt_with_one_chunk_is_plain_bptt():
    x, y = echo_data()
    torch.manual_seed(0)
    a = Seq()
    b = Seq()
    b.load_state_dict(a.state_dict())
    fit(a, (x, y), tbptt=24, epochs=2, batch_size=8, seed=0, verbose=0)
    fit(b, (x, y), stateful=False, tbptt=None, epochs=2, batch_size=8, seed=0, verbose=0,
        loss=lambda out, t: nn.functional.mse_loss(out[0], t))
    assert all(torch.allclose(p, q, atol=1e-6) for p, q in zip(a.parameters(), b.parameters()))


def test_tbptt_learns_across_chunk_borders_with_stateful_batches():
    x, y = echo_data(32, 40)
    model = Seq()
    history = fit(model, (x, y), tbptt=5, stateful=True, shuffle=False, lr=0.02, epochs=40, batch_size=32,
                  seed=0, verbose=0)
    assert history["loss"][-1] < 0.1 * history["loss"][0]


def test_tbptt_errors():
    x, y = echo_data()
    with pytest.raises(ValueError, match=r"tbptt: expected x \(batch, time, ...\) and per-step targets"):
        fit(Seq(), (x, y[:, 0]), tbptt=4, verbose=0)
    with pytest.raises(ValueError, match="shuffle: expected False with stateful=True"):
        fit(Seq(), (x, y), stateful=True, verbose=0)


# ------------------------------------------------------------------------------------ precision


def test_bf16_autocast_trains_an_lstm():
    x, y = echo_data()

    class Last(nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm = LSTM(1, 16, batch_first=True)
            self.head = nn.Linear(16, 1)

        def forward(self, x):
            return self.head(self.lstm(x)[0])

    model = Last()
    history = fit(model, (x, y), precision="bf16", lr=0.02, epochs=30, batch_size=8, seed=0, verbose=0)
    assert history["loss"][-1] < 0.5 * history["loss"][0]
    assert all(p.dtype == torch.float32 for p in model.parameters())


def test_fp16_needs_cuda():
    with pytest.raises(ValueError, match="precision: expected 'bf16' or '32' on cpu, got 'fp16'"):
        Trainer(nn.Linear(1, 1), precision="fp16")


# ------------------------------------------------------------------------------------ errors


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(loss="hinge"), r"loss: expected one of \[.*\] or a callable, got 'hinge'"),
        (dict(optimizer="lbfgsx"), r"optimizer: expected one of \[.*\] or an optimizer instance, got 'lbfgsx'"),
        (dict(lr=-1.0), "lr: expected a positive number, got -1.0"),
        (dict(metrics=["f7"]), "metrics: expected names among"),
        (dict(clip_norm=0), "clip_norm: expected a positive number or None, got 0"),
        (dict(accumulate=0), "accumulate: expected an integer >= 1, got 0"),
        (dict(precision="int8"), "precision: expected one of"),
        (dict(verbose=3), "verbose: expected 0, 1, 2 or 'auto', got 3"),
        (dict(callbacks=[print]), r"callbacks\[0\]: expected a carousel.train.Callback, got builtin_function"),
        (dict(epochs=0), "epochs: expected an integer >= 1, got 0"),
        (dict(batch_size=2.5), "batch_size: expected an integer >= 1, got 2.5"),
        (dict(validation_split=1.0), r"validation_split: expected a number in \[0, 1\), got 1.0"),
        (dict(validation_split=1e-18), "validation_split: expected a fraction leaving at least one sample"),
    ],
)
def test_argument_errors(kwargs, match):
    x, y = linear_data()
    with pytest.raises((ValueError, TypeError), match=match):
        fit(nn.Linear(3, 1), (x, y), **{"verbose": 0, **kwargs})


def test_data_errors():
    x, y = linear_data()
    with pytest.raises(ValueError, match=r"data y: expected as many samples as x \(64\), got 10"):
        fit(nn.Linear(3, 1), (x, y[:10]), verbose=0)
    with pytest.raises(TypeError, match="data: expected \\(x, y\\) arrays/tensors, a Dataset or a DataLoader"):
        fit(nn.Linear(3, 1), x, verbose=0)
    import numpy as np

    with pytest.raises(TypeError, match="data x: expected a numeric array, got dtype object"):
        fit(nn.Linear(3, 1), (np.array([["a", 1, 2]], dtype=object), np.zeros((1, 1))), verbose=0)


# ------------------------------------------------------------------------------------ progress


def test_plain_progress_lines_under_ci(monkeypatch, capsys):
    monkeypatch.setenv("CI", "true")
    x, y = linear_data()
    fit(nn.Linear(3, 1), (x, y), epochs=2, validation_split=0.25, metrics=["mae"], verbose=1)
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2 and lines[0].startswith("epoch 1/2  loss ") and " val_mae " in lines[0]
    assert lines[1].endswith(" s)")


def test_silent_when_verbose_0(capsys):
    x, y = linear_data()
    fit(nn.Linear(3, 1), (x, y), epochs=2, verbose=0)
    assert capsys.readouterr().out == ""


# ------------------------------------------------------------------------------------ non-finite loss


def test_nan_loss_stops_naming_epoch_and_batch_and_keeps_the_checkpoint(tmp_path):
    x, y = linear_data(64)

    class Poison(Callback):  # a NaN target enters the third batch (no shuffling) from epoch 3 on
        def on_epoch_begin(self, trainer, epoch):
            y[40] = float("nan") if epoch >= 3 else 0.0

    model = nn.Linear(3, 1)
    callbacks = [ModelCheckpoint(tmp_path / "last.safetensors"), Poison()]
    with pytest.raises(NonFiniteLossError, match=r"loss is nan at epoch 3, batch 3: training stopped before this "
                                                 r"batch changed the weights; checkpoints written so far are intact"):
        fit(model, (x, y), epochs=5, batch_size=16, shuffle=False, callbacks=callbacks, verbose=0)
    saved = load_state(tmp_path / "last.safetensors")
    assert saved["epoch"] == 2 and all(torch.isfinite(v).all() for v in saved["model"].values())
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert [p.name for p in tmp_path.iterdir()] == ["last.safetensors"]


# ------------------------------------------------------------------------------------ checkpoints


def test_checkpoint_round_trip_in_process(tmp_path):
    x, y = linear_data()
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 1))
    trainer = Trainer(model, optimizer="adam", callbacks=[EarlyStopping("loss"), ReduceLROnPlateau("loss")],
                      verbose=0)
    trainer.fit((x, y), epochs=2)
    path = trainer.save_checkpoint(tmp_path / "t.safetensors")
    other = Trainer(nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 1)), optimizer="adam",
                    callbacks=[EarlyStopping("loss"), ReduceLROnPlateau("loss")], verbose=0)
    other.callbacks[1].on_train_begin(other)
    other.load_state_dict(load_state(path))
    assert other.epoch == 2 and other.history.history == trainer.history.history
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), other.model.parameters()))
    assert other.optimizer.state_dict()["state"][0]["exp_avg"].equal(trainer.optimizer.state_dict()["state"][0][
        "exp_avg"])


def test_checkpoint_is_not_pickle_and_rejects_other_files(tmp_path):
    path = tmp_path / "w.safetensors"
    save_weights(nn.Linear(2, 2), path, {"note": "x"})
    with pytest.raises(ValueError, match="path: expected a carousel checkpoint"):
        load_state(path)
    with pytest.raises(FileNotFoundError, match="path: expected an existing checkpoint file"):
        load_state(tmp_path / "missing.safetensors")
    state, meta = load_weights(path)
    assert meta == {"note": "x"} and set(state) == {"weight", "bias"}
    with open(path, "rb") as handle:
        assert b"\x80\x04" not in handle.read(2)  # not a pickle stream


def test_failed_write_leaves_the_previous_checkpoint(tmp_path, monkeypatch):
    from carousel.train import checkpoint as ck

    path = tmp_path / "c.safetensors"
    ck.save_state(path, {"epoch": 1, "w": torch.ones(3)})
    before = path.read_bytes()

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(ck.os, "replace", crash)
    with pytest.raises(OSError, match="disk full"):
        ck.save_state(path, {"epoch": 2, "w": torch.zeros(3)})
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["c.safetensors"]


def run(*args, env=None):
    full_env = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
    done = subprocess.run([sys.executable, *args], capture_output=True, text=True, env=full_env, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_resume_in_a_new_process_is_bitwise_exact(tmp_path):
    run(str(SCRIPT), "--epochs", "4", "--out", str(tmp_path / "once.safetensors"))
    run(str(SCRIPT), "--epochs", "2", "--out", str(tmp_path / "half.safetensors"),
        "--checkpoint", str(tmp_path / "ck.safetensors"))
    out = run(str(SCRIPT), "--epochs", "4", "--out", str(tmp_path / "resumed.safetensors"),
              "--resume", str(tmp_path / "ck.safetensors"), "--checkpoint", str(tmp_path / "ck.safetensors"))
    assert out.splitlines()[0].startswith("epoch 3/4")
    once, _ = load_weights(tmp_path / "once.safetensors")
    resumed, _ = load_weights(tmp_path / "resumed.safetensors")
    half, _ = load_weights(tmp_path / "half.safetensors")
    assert all(torch.equal(once[k], resumed[k]) for k in once)
    assert not all(torch.equal(once[k], half[k]) for k in once)


def test_two_process_torchrun_matches_one_process(tmp_path):
    one = tmp_path / "one.safetensors"
    two = tmp_path / "two.safetensors"
    run(str(SCRIPT), "--epochs", "3", "--dropout", "0", "--out", str(one))
    out = run("-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", str(SCRIPT), "--epochs", "3",
              "--dropout", "0", "--out", str(two), "--checkpoint", str(tmp_path / "ddp.safetensors"))
    assert out.count("epoch 1/3") == 1  # only rank 0 logs
    a, _ = load_weights(one)
    b, _ = load_weights(two)
    assert all(torch.allclose(a[k], b[k], atol=1e-5) for k in a)
    assert load_state(tmp_path / "ddp.safetensors")["epoch"] == 3


def test_metric_objects():
    worst = Metric("max_error", lambda p, t: ((p - t).abs().max() * len(t), len(t)), lambda s, n: s / n)
    x, y = linear_data()
    logs = Trainer(nn.Linear(3, 1), metrics=[worst], verbose=0).evaluate((x, y), batch_size=64)
    assert "max_error" in logs


# ------------------------------------------------------------------------------------ tuning


def test_optuna_pruning_stops_a_trial_and_tune_finds_a_good_rate():
    optuna = pytest.importorskip("optuna")
    from carousel.train import OptunaPruning, suggest, tune

    x, y = linear_data()
    study = optuna.create_study(pruner=optuna.pruners.ThresholdPruner(upper=1e-9))
    trial = study.ask()
    with pytest.raises(optuna.TrialPruned, match="val_loss .* at epoch 1"):
        fit(nn.Linear(3, 1), (x, y), epochs=5, validation_split=0.25, callbacks=[OptunaPruning(trial)], verbose=0)

    def objective(trial):
        params = suggest(trial, {"lr": (1e-5, 0.3, "log"), "batch_size": [8, 32]})
        torch.manual_seed(0)
        history = fit(nn.Linear(3, 1), (x, y), lr=params["lr"], batch_size=params["batch_size"], epochs=12,
                      validation_split=0.25, callbacks=[OptunaPruning(trial)], seed=0, verbose=0)
        return history["val_loss"][-1]

    study = tune(objective, n_trials=16, pruner="median", seed=0)
    pruned = [t for t in study.trials if t.state == optuna.trial.TrialState.PRUNED]
    assert study.best_params["lr"] > 1e-2 and study.best_value < 0.05
    assert len(pruned) >= 1
    with pytest.raises(ValueError, match=r"space\['h'\]: expected a list of choices, \(low, high\)"):
        suggest(optuna.trial.FixedTrial({}), {"h": {"a": 1}})


def test_progress_bar_on_a_terminal(monkeypatch, capsys):
    from carousel.train import progress

    monkeypatch.setattr(progress, "use_bar", lambda stream=None: True)
    x, y = linear_data()
    fit(nn.Linear(3, 1), (x, y), epochs=2, batch_size=16, validation_split=0.25, verbose=1)
    captured = capsys.readouterr()
    assert captured.out == ""  # the bar replaces the per-epoch lines
    assert "epoch 1/2" in captured.err and "epoch 2/2" in captured.err and "3/3" in captured.err
    assert "val_loss" in captured.err


def test_use_bar_is_false_under_ci(monkeypatch):
    from carousel.train.progress import use_bar

    class Tty:
        def isatty(self):
            return True

    monkeypatch.setenv("CI", "true")
    assert not use_bar(Tty())
    monkeypatch.setenv("CI", "")
    assert use_bar(Tty())

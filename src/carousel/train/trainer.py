"""``Trainer`` and ``fit``: one training loop for any ``torch.nn.Module``.

The loop, per epoch::

    for each batch (x, y):                       # a permutation of the samples, seeded per epoch
        loss = loss_fn(model(x), y)              # under autocast when precision is bf16/fp16
        (loss / accumulate).backward()
        every `accumulate` batches: clip, optimizer.step(), zero_grad()
    validate; log; callbacks (early stopping, schedulers, checkpoints, CSV, TensorBoard)

With ``tbptt=k`` a batch of sequences ``(batch, time, ...)`` is cut into chunks of ``k`` steps; the
model is called as ``model(x_chunk, state) -> (y_chunk, state)``, the optimizer steps after each
chunk, and the state is carried to the next chunk detached from the graph (truncated BPTT,
Williams & Peng 1990). With ``stateful=True`` the state is also carried from one batch to the next
(row ``i`` of a batch continues row ``i`` of the previous one, as in Keras' stateful RNNs).

Under ``torchrun`` the same call trains with ``DistributedDataParallel``: ``batch_size`` is the
global batch, split evenly over the processes; every process sees the same permutation and takes
its share; losses and metrics are summed over processes; only rank 0 prints and writes files.
"""

from __future__ import annotations

import contextlib
import math
import random
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset, Subset

from carousel.train import distributed
from carousel.train.callbacks import Callback, LRScheduler
from carousel.train.checkpoint import load_state, save_state
from carousel.train.objectives import LossLike, Metric, resolve_loss, resolve_metric, resolve_optimizer
from carousel.train.progress import Progress


class NonFiniteLossError(FloatingPointError):
    """Raised when a batch's loss is NaN or infinite; training stops before that batch changes
    any weight, and checkpoints written before it stay as they were."""

    def __init__(self, message: str, *, epoch: int, batch: int, history: History) -> None:
        super().__init__(message)
        self.epoch, self.batch, self.history = epoch, batch, history


@dataclass
class History:
    """Per-epoch logs: ``history["loss"]``, ``history["val_loss"]``, metrics, ``lr``.

    ``epoch`` lists the epoch numbers (from 1) that the values belong to.
    """

    history: dict[str, list[float]] = field(default_factory=dict)
    epoch: list[int] = field(default_factory=list)

    def append(self, epoch: int, logs: Mapping[str, float]) -> None:
        self.epoch.append(epoch)
        for key, value in logs.items():
            self.history.setdefault(key, []).append(float(value))

    def __getitem__(self, key: str) -> list[float]:
        return self.history[key]

    def __repr__(self) -> str:
        last = {k: round(v[-1], 6) for k, v in self.history.items() if v}
        return f"History(epochs={len(self.epoch)}, last={last})"


def seed_everything(seed: int, *, deterministic: bool = False) -> None:
    """Seed Python's, NumPy's and torch's generators (all devices); with ``deterministic`` also ask
    torch for deterministic kernels."""
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed: expected an integer, got {type(seed).__name__}")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        torch.use_deterministic_algorithms(True)


def _rng_state() -> dict[str, Any]:
    np_state = np.random.get_state()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {"keys": torch.from_numpy(np_state[1].astype(np.int64)), "pos": int(np_state[2]),
                  "has_gauss": int(np_state[3]), "cached_gaussian": float(np_state[4])},
        "python": random.getstate(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: Mapping[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                         n["cached_gaussian"]))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(list(state["cuda"]))


# --------------------------------------------------------------------------------------- data


def _as_tensor(value: Any, name: str, float_dtype: torch.dtype) -> Tensor:
    if hasattr(value, "to_numpy") and not isinstance(value, Tensor):  # pandas
        value = value.to_numpy()
    if isinstance(value, np.ndarray):
        if value.dtype == object:
            raise TypeError(f"{name}: expected a numeric array, got dtype object")
        value = torch.from_numpy(np.ascontiguousarray(value))
    elif not isinstance(value, Tensor):
        try:
            value = torch.as_tensor(value)
        except (TypeError, ValueError, RuntimeError) as err:
            raise TypeError(f"{name}: expected an array or tensor, got {type(value).__name__}") from err
    if value.is_floating_point():
        value = value.to(float_dtype)
    if value.dim() == 0:
        raise ValueError(f"{name}: expected at least one dimension (samples first), got a scalar")
    return value


def _split_at(n: int, fraction: float) -> int:
    """Number of training samples left by a validation fraction (the same rounding as Keras)."""
    return math.floor(n * (1.0 - fraction))


class _Tensors:
    """In-memory samples, batched by indexing (no per-sample collation)."""

    def __init__(self, inputs: tuple[Tensor, ...], target: Tensor) -> None:
        self.inputs, self.target = inputs, target

    def __len__(self) -> int:
        return len(self.target)

    def split(self, fraction: float) -> tuple[_Tensors, _Tensors]:
        cut = _split_at(len(self), fraction)
        if cut < 1 or cut >= len(self):
            raise ValueError(f"validation_split: expected a fraction leaving at least one sample on each side of "
                             f"{len(self)} samples, got {fraction!r}")
        return (_Tensors(tuple(x[:cut] for x in self.inputs), self.target[:cut]),
                _Tensors(tuple(x[cut:] for x in self.inputs), self.target[cut:]))

    def batches(self, order: Tensor, size: int, device: torch.device) -> Iterator[tuple[tuple[Tensor, ...], Tensor]]:
        for start in range(0, len(order), size):
            idx = order[start:start + size]
            contiguous = len(idx) > 0 and int(idx[-1]) - int(idx[0]) == len(idx) - 1 and bool(
                (idx[1:] - idx[:-1] == 1).all())
            if contiguous:  # views, no copies
                a, b = int(idx[0]), int(idx[-1]) + 1
                xs, y = tuple(x[a:b] for x in self.inputs), self.target[a:b]
            else:
                xs, y = tuple(x.index_select(0, idx) for x in self.inputs), self.target.index_select(0, idx)
            yield tuple(x.to(device, non_blocking=True) for x in xs), y.to(device, non_blocking=True)


def _prepare(data: Any, y: Any, float_dtype: torch.dtype, name: str) -> _Tensors | Dataset | DataLoader:
    if isinstance(data, DataLoader | Dataset) and not isinstance(data, torch.utils.data.TensorDataset):
        if y is not None:
            raise ValueError(f"y: expected None when {name} is a Dataset or DataLoader, got {type(y).__name__}")
        return data
    if isinstance(data, torch.utils.data.TensorDataset):
        *xs, target = data.tensors
        return _Tensors(tuple(xs), target)
    if y is None:
        if not (isinstance(data, Sequence) and len(data) == 2):
            raise TypeError(f"{name}: expected (x, y) arrays/tensors, a Dataset or a DataLoader, "
                            f"got {type(data).__name__}")
        data, y = data
    xs = tuple(data) if isinstance(data, tuple) else (data,)
    inputs = tuple(_as_tensor(x, f"{name} x" if len(xs) == 1 else f"{name} x[{i}]", float_dtype)
                   for i, x in enumerate(xs))
    target = _as_tensor(y, f"{name} y", float_dtype)
    for i, x in enumerate(inputs):
        if len(x) != len(target):
            label = "x" if len(inputs) == 1 else f"x[{i}]"
            raise ValueError(f"{name} y: expected as many samples as {label} ({len(x)}), got {len(target)}")
    if len(target) == 0:
        raise ValueError(f"{name}: expected at least one sample, got 0")
    return _Tensors(inputs, target)


def _detach(state: Any) -> Any:
    if isinstance(state, Tensor):
        return state.detach()
    if isinstance(state, (tuple, list)):
        return type(state)(_detach(s) for s in state)
    return state


def _split_batch(batch: Any) -> tuple[tuple[Tensor, ...], Tensor]:
    if isinstance(batch, Mapping):
        raise TypeError("data: expected batches of (x, y) or (x1, ..., xk, y), got a mapping")
    if not isinstance(batch, (tuple, list)) or len(batch) < 2:
        raise TypeError(f"data: expected batches of (x, y) or (x1, ..., xk, y), got {type(batch).__name__}")
    return tuple(batch[:-1]), batch[-1]


_PRECISIONS = {"32": None, "fp32": None, "float32": None, "64": None, "bf16": torch.bfloat16,
               "bfloat16": torch.bfloat16, "16": torch.float16, "fp16": torch.float16, "float16": torch.float16}


class Trainer:
    """Training loop for any ``torch.nn.Module`` (see the module docstring for the loop).

    Args:
        model: the module; ``model(*x)`` must return a tensor shaped like ``y`` (with ``tbptt`` or
            ``stateful``: ``model(x, state) -> (y, state)``, ``state`` None at the start).
        loss: a name in ``carousel.train.LOSSES`` or a callable ``(prediction, target) -> scalar``.
        optimizer: a name in ``carousel.train.OPTIMIZERS`` (built with ``lr`` and
            ``optimizer_options``) or a ``torch.optim.Optimizer``.
        metrics: names in ``carousel.train.METRICS`` (``"mae"``, ``"rmse"``, ``"accuracy"``, ...),
            :class:`Metric` objects or callables returning a batch mean.
        callbacks: :class:`Callback` objects (early stopping, checkpoints, loggers, schedulers).
        scheduler: a torch LR scheduler or a factory ``optimizer -> scheduler``, stepped per epoch.
        clip_norm, clip_value: gradient clipping by global norm / by value before each step.
        accumulate: optimizer step every ``accumulate`` batches (gradient accumulation).
        precision: ``"32"``, ``"bf16"`` (autocast on CPU or CUDA) or ``"fp16"`` (CUDA, with a
            gradient scaler).
        tbptt: truncated BPTT chunk length in time steps (inputs ``(batch, time, ...)``).
        stateful: carry the recurrent state across consecutive batches (needs ``shuffle=False``).
        device: where batches go; default the model's device.
        seed: seeds Python, NumPy and torch at the start of ``fit`` and the per-epoch shuffling.
        verbose: 0 silent, 1 a progress bar on a terminal (plain lines otherwise), 2 lines, "auto" = 1.

    Example:
        >>> torch.manual_seed(0)  # doctest: +ELLIPSIS
        <torch._C.Generator object at ...>
        >>> x = torch.randn(64, 3); y = x.sum(1, keepdim=True)
        >>> trainer = Trainer(nn.Linear(3, 1), loss="mse", optimizer="adam", lr=0.1, metrics=["mae"], verbose=0)
        >>> history = trainer.fit((x, y), epochs=30, batch_size=16, validation_split=0.25)
        >>> history["val_loss"][-1] < 0.05, sorted(history.history)
        (True, ['loss', 'lr', 'mae', 'val_loss', 'val_mae'])
    """

    def __init__(self, model: nn.Module, *, loss: LossLike = "mse", optimizer: str | torch.optim.Optimizer = "adam",
                 lr: float | None = None, optimizer_options: dict[str, Any] | None = None,
                 metrics: Sequence[str | Metric | Callable] = (), callbacks: Sequence[Callback] = (),
                 scheduler: Any = None, clip_norm: float | None = None, clip_value: float | None = None,
                 accumulate: int = 1, precision: str = "32", tbptt: int | None = None, stateful: bool = False,
                 device: str | torch.device | None = None, seed: int | None = None, verbose: int | str = "auto"
                 ) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"model: expected a torch.nn.Module, got {type(model).__name__}")
        if isinstance(metrics, (str, Metric)) or callable(metrics):
            metrics = [metrics]
        for name, value in (("clip_norm", clip_norm), ("clip_value", clip_value)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0):
                raise ValueError(f"{name}: expected a positive number or None, got {value!r}")
        for name, value in (("accumulate", accumulate), ("tbptt", tbptt)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ValueError(f"{name}: expected an integer >= 1{' or None' if name == 'tbptt' else ''}, "
                                 f"got {value!r}")
        if str(precision) not in _PRECISIONS:
            raise ValueError(f"precision: expected one of {sorted(_PRECISIONS)}, got {precision!r}")
        if verbose not in (0, 1, 2, "auto", False, True):
            raise ValueError(f"verbose: expected 0, 1, 2 or 'auto', got {verbose!r}")
        callbacks = list(callbacks)
        for i, cb in enumerate(callbacks):
            if not isinstance(cb, Callback):
                raise TypeError(f"callbacks[{i}]: expected a carousel.train.Callback, got {type(cb).__name__}")
        self.model = model
        self.loss_fn = resolve_loss(loss)
        self.optimizer = resolve_optimizer(optimizer, model.parameters(), lr, optimizer_options)
        self.metrics = [resolve_metric(m) for m in metrics]
        names = [m.name for m in self.metrics]
        if len(set(names)) != len(names) or "loss" in names:
            raise ValueError(f"metrics: expected distinct names other than 'loss', got {names}")
        if scheduler is not None:
            callbacks.append(LRScheduler(scheduler))
        self.callbacks = callbacks
        self.callbacks_all: list[Callback] = list(callbacks)  # plus the progress display during fit
        self.clip_norm, self.clip_value, self.accumulate = clip_norm, clip_value, accumulate
        self.precision, self.tbptt, self.stateful = str(precision), tbptt, stateful
        first = next(iter(model.parameters()), None)
        self.device = torch.device(device) if device is not None else (
            first.device if first is not None else torch.device("cpu"))
        self.float_dtype = next((p.dtype for p in model.parameters() if p.is_floating_point()),
                                torch.get_default_dtype())
        self.seed, self.verbose = seed, (1 if verbose in ("auto", True) else int(verbose))
        autocast_dtype = _PRECISIONS[self.precision]
        if autocast_dtype is torch.float16 and self.device.type != "cuda":
            raise ValueError(f"precision: expected 'bf16' or '32' on {self.device.type}, got {precision!r} "
                             "(float16 autocast needs CUDA)")
        self._autocast_dtype = autocast_dtype
        self._scaler = torch.amp.GradScaler("cuda") if autocast_dtype is torch.float16 else None
        self.history = History()
        self.epoch = 0  # completed epochs
        self.global_step = 0
        self.epochs = 0
        self.steps_per_epoch = 0
        self.stop_training = False
        self.resumed = False
        self.data_seed: int | None = None
        self._net: nn.Module = model
        self._state: Any = None

    # ----------------------------------------------------------------------------- properties
    @property
    def is_main(self) -> bool:
        """True on the process that logs and writes files (rank 0)."""
        return distributed.rank() == 0

    def _autocast(self) -> contextlib.AbstractContextManager:
        if self._autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self._autocast_dtype)

    # ----------------------------------------------------------------------------- checkpoints
    def state_dict(self) -> dict[str, Any]:
        """The whole training state: model, optimizer, callbacks (schedulers included), gradient
        scaler, history, epoch, step, shuffling seed and every RNG."""
        return {
            "epoch": self.epoch, "global_step": self.global_step, "data_seed": self.data_seed,
            "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
            "callbacks": [{"type": type(cb).__name__, "state": cb.state_dict()} for cb in self.callbacks],
            "scaler": self._scaler.state_dict() if self._scaler is not None else None,
            "history": {"history": self.history.history, "epoch": self.history.epoch},
            "rng": _rng_state(),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        saved = [c["type"] for c in state["callbacks"]]
        current = [type(cb).__name__ for cb in self.callbacks]
        if saved != current:
            raise ValueError(f"resume: expected the callbacks the checkpoint was written with {saved}, got {current}")
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        for cb, saved_cb in zip(self.callbacks, state["callbacks"]):
            cb.load_state_dict(saved_cb["state"])
        if self._scaler is not None and state["scaler"] is not None:
            self._scaler.load_state_dict(state["scaler"])
        self.history = History({k: list(v) for k, v in state["history"]["history"].items()},
                               list(state["history"]["epoch"]))
        self.epoch, self.global_step, self.data_seed = state["epoch"], state["global_step"], state["data_seed"]
        _set_rng_state(state["rng"])

    def save_checkpoint(self, path: str | Path) -> Path | None:
        """Write :meth:`state_dict` to ``path`` atomically (safetensors + JSON); main process only."""
        written = save_state(path, self.state_dict()) if self.is_main else None
        distributed.barrier()
        return written

    # ----------------------------------------------------------------------------- data plumbing
    def _order(self, n: int, shuffle: bool, epoch: int) -> Tensor:
        if shuffle:
            gen = torch.Generator().manual_seed(self.data_seed * 100_003 + epoch)
            order = torch.randperm(n, generator=gen)
        else:
            order = torch.arange(n)
        world = distributed.world_size() if distributed.active() else 1
        if world > 1:  # as torch's DistributedSampler: pad by wrapping, then every world-th sample
            total = math.ceil(n / world) * world
            if total > n:
                order = torch.cat([order, order[: total - n]])
            order = order[distributed.rank():total:world]
        return order

    def _train_batches(self, data: Any, batch_size: int, shuffle: bool, epoch: int) -> Iterator:
        if isinstance(data, _Tensors):
            yield from data.batches(self._order(len(data), shuffle, epoch), batch_size, self.device)
            return
        if isinstance(data, DataLoader):
            loader = data
            sampler = getattr(loader, "sampler", None)
            if hasattr(sampler, "set_epoch"):
                sampler.set_epoch(epoch)
        else:
            order = self._order(len(data), shuffle, epoch).tolist()
            loader = DataLoader(data, batch_size=batch_size, sampler=order)
        for batch in loader:
            xs, y = _split_batch(batch)
            yield tuple(x.to(self.device) for x in xs), y.to(self.device)

    def _eval_batches(self, data: Any, batch_size: int) -> Iterator:
        if isinstance(data, DataLoader):
            for batch in data:
                xs, y = _split_batch(batch)
                yield tuple(x.to(self.device) for x in xs), y.to(self.device)
            return
        order = torch.arange(len(data))
        if distributed.active():  # every sample exactly once over the processes
            order = order[distributed.rank()::distributed.world_size()]
        if isinstance(data, _Tensors):
            yield from data.batches(order, batch_size, self.device)
            return
        for batch in DataLoader(data, batch_size=batch_size, sampler=order.tolist()):
            xs, y = _split_batch(batch)
            yield tuple(x.to(self.device) for x in xs), y.to(self.device)

    def _n_batches(self, data: Any, batch_size: int) -> int:
        if isinstance(data, DataLoader):
            return len(data)
        n = len(data)
        if distributed.active():
            n = math.ceil(n / distributed.world_size())
        return math.ceil(n / batch_size)

    # ----------------------------------------------------------------------------- one batch
    def _forward(self, xs: tuple[Tensor, ...]) -> Tensor:
        if self.tbptt is None and not self.stateful:
            return self._net(*xs)
        if len(xs) != 1:
            raise ValueError(f"x: expected one input tensor with tbptt/stateful, got {len(xs)}")
        out, self._state = self._net(xs[0], self._state)
        return out

    def _optimizer_step(self) -> None:
        if self._scaler is not None:
            self._scaler.unscale_(self.optimizer)
        params = [p for group in self.optimizer.param_groups for p in group["params"] if p.grad is not None]
        if self.clip_value is not None:
            nn.utils.clip_grad_value_(params, self.clip_value)
        if self.clip_norm is not None:
            nn.utils.clip_grad_norm_(params, self.clip_norm)
        if self._scaler is not None:
            self._scaler.step(self.optimizer)
            self._scaler.update()
        else:
            self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.global_step += 1
        for cb in self.callbacks:
            cb.on_step_end(self)

    def _chunks(self, xs: tuple[Tensor, ...], y: Tensor) -> list[tuple[tuple[Tensor, ...], Tensor]]:
        if self.tbptt is None:
            return [(xs, y)]
        x = xs[0]
        if x.dim() < 2 or y.dim() < 2 or y.shape[1] != x.shape[1]:
            raise ValueError(f"tbptt: expected x (batch, time, ...) and per-step targets y (batch, time, ...) with "
                             f"the same time length, got x {tuple(x.shape)} and y {tuple(y.shape)}")
        k = self.tbptt
        return [((x[:, s:s + k],), y[:, s:s + k]) for s in range(0, x.shape[1], k)]

    def _run_epoch(self, data: Any, batch_size: int, shuffle: bool, epoch: int, sums: Tensor) -> None:
        self.model.train()
        n_batches = self.steps_per_epoch
        ddp = distributed.active()
        for b, (xs, y) in enumerate(self._train_batches(data, batch_size, shuffle, epoch)):
            if not self.stateful:
                self._state = None
            chunks = self._chunks(xs, y)
            for c, (xc, yc) in enumerate(chunks):
                steps_now = self.tbptt is not None or (b + 1) % self.accumulate == 0 or b + 1 == n_batches
                sync = contextlib.nullcontext() if (steps_now or not ddp) else self._net.no_sync()
                with sync:
                    with self._autocast():
                        out = self._forward(xc)
                        loss = self.loss_fn(out, yc)
                    if not torch.isfinite(loss.detach()).all():
                        where = f"epoch {epoch}, batch {b + 1}" + (f" (chunk {c + 1})" if len(chunks) > 1 else "")
                        raise NonFiniteLossError(
                            f"loss is {float(loss.detach())} at {where}: training stopped before this batch changed "
                            f"the weights; checkpoints written so far are intact", epoch=epoch, batch=b + 1,
                            history=self.history)
                    scale = 1.0 if self.tbptt is not None else 1.0 / self.accumulate
                    scaled = loss * scale if scale != 1.0 else loss
                    if self._scaler is not None:
                        scaled = self._scaler.scale(scaled)
                    scaled.backward()
                if steps_now:
                    self._optimizer_step()
                self._state = _detach(self._state)
                n = len(yc)
                sums[0] += loss.detach().double() * n
                sums[1] += n
                for i, metric in enumerate(self.metrics):
                    total, count = metric.update(out.detach(), yc)
                    sums[2 + 2 * i] += total.double()
                    sums[3 + 2 * i] += count
            if self.callbacks_all:
                logs = {"loss": float(loss.detach())}
                for cb in self.callbacks_all:
                    cb.on_batch_end(self, b, logs)

    def _logs(self, sums: Tensor, prefix: str = "") -> dict[str, float]:
        sums = distributed.all_reduce_sum(sums)
        values = sums.tolist()
        logs = {f"{prefix}loss": values[0] / max(values[1], 1)}
        for i, metric in enumerate(self.metrics):
            logs[f"{prefix}{metric.name}"] = float(metric.finish(values[2 + 2 * i], values[3 + 2 * i]))
        return logs

    @torch.no_grad()
    def _evaluate(self, data: Any, batch_size: int) -> dict[str, float]:
        was_training = self.model.training
        self.model.eval()
        sums = torch.zeros(2 + 2 * len(self.metrics), dtype=torch.float64)
        try:
            for xs, y in self._eval_batches(data, batch_size):
                with self._autocast():
                    if self.tbptt is None and not self.stateful:
                        out = self.model(*xs)
                    else:
                        out, _ = self.model(xs[0], None)
                    loss = self.loss_fn(out, y)
                sums[0] += loss.double() * len(y)
                sums[1] += len(y)
                for i, metric in enumerate(self.metrics):
                    total, count = metric.update(out, y)
                    sums[2 + 2 * i] += total.double()
                    sums[3 + 2 * i] += count
        finally:
            self.model.train(was_training)
        return sums

    # ----------------------------------------------------------------------------- public API
    def fit(self, data: Any, y: Any = None, *, epochs: int = 1, batch_size: int = 32,
            validation_split: float = 0.0, validation_data: Any = None, shuffle: bool = True,
            resume: str | Path | None = None) -> History:
        """Train for ``epochs`` epochs (in total, counting those of a resumed checkpoint).

        Args:
            data: ``(x, y)`` arrays/tensors (samples first; ``x`` may be a tuple of inputs), or ``x``
                with ``y`` given separately, a ``Dataset`` of ``(x..., y)`` samples, or a ``DataLoader``.
            epochs: the epoch to train up to (a resumed run continues from the checkpoint's epoch).
            batch_size: samples per optimizer step over all processes (ignored for a DataLoader).
            validation_split: the last fraction of the samples (taken before shuffling) held out.
            validation_data: ``(x, y)``, a Dataset or a DataLoader used for ``val_*`` logs.
            shuffle: a new permutation every epoch, from ``seed`` and the epoch number.
            resume: a checkpoint written by :class:`ModelCheckpoint` or :meth:`save_checkpoint`.

        Returns:
            the :class:`History` of all epochs (those of the checkpoint included).
        """
        if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
            raise ValueError(f"epochs: expected an integer >= 1, got {epochs!r}")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size: expected an integer >= 1, got {batch_size!r}")
        if not isinstance(validation_split, (int, float)) or not 0.0 <= validation_split < 1.0:
            raise ValueError(f"validation_split: expected a number in [0, 1), got {validation_split!r}")
        if validation_split and validation_data is not None:
            raise ValueError("validation_split: expected 0 when validation_data is given, "
                             f"got {validation_split!r}")
        if self.stateful and shuffle:
            raise ValueError("shuffle: expected False with stateful=True (row i of a batch continues row i of "
                             "the previous batch), got True")
        created_group = distributed.setup(self.device)
        try:
            return self._fit(data, y, epochs, batch_size, validation_split, validation_data, shuffle, resume)
        finally:
            if created_group:
                distributed.teardown()

    def _fit(self, data: Any, y: Any, epochs: int, batch_size: int, validation_split: float,
             validation_data: Any, shuffle: bool, resume: str | Path | None) -> History:
        if self.seed is not None:
            seed_everything(self.seed)
        train = _prepare(data, y, self.float_dtype, "data")
        val = None
        if validation_data is not None:
            val = _prepare(validation_data, None, self.float_dtype, "validation_data")
        elif validation_split:
            if not isinstance(train, (_Tensors, Dataset)) or isinstance(train, DataLoader):
                raise ValueError("validation_split: expected arrays, tensors or a Dataset to split, got a "
                                 "DataLoader (pass validation_data instead)")
            if isinstance(train, _Tensors):
                train, val = train.split(validation_split)
            else:
                cut = _split_at(len(train), validation_split)
                train, val = Subset(train, range(cut)), Subset(train, range(cut, len(train)))
        world = distributed.world_size() if distributed.active() else 1
        if batch_size % world:
            raise ValueError(f"batch_size: expected a multiple of the {world} processes (it is the global batch), "
                             f"got {batch_size}")
        local_batch = batch_size // world
        self.data_seed = self.seed if self.seed is not None else int(torch.randint(0, 2**31 - 1, ()).item())
        self.epochs = epochs
        self.steps_per_epoch = self._n_batches(train, local_batch)
        progress = [Progress(bar=None if self.verbose == 1 else False)] if self.verbose else []
        self.callbacks_all = self.callbacks + progress
        self._net = self.model
        if distributed.active():
            from torch.nn.parallel import DistributedDataParallel

            ids = [self.device.index if self.device.index is not None else distributed.local_rank()] \
                if self.device.type == "cuda" else None
            self._net = DistributedDataParallel(self.model, device_ids=ids)
        self.stop_training = False
        for cb in self.callbacks_all:
            cb.on_train_begin(self)
        if resume is not None:
            self.load_state_dict(load_state(resume, map_location=self.device))
            self.resumed = True
        try:
            for epoch in range(self.epoch + 1, epochs + 1):
                for cb in self.callbacks_all:
                    cb.on_epoch_begin(self, epoch)
                sums = torch.zeros(2 + 2 * len(self.metrics), dtype=torch.float64)
                self._state = None
                self._run_epoch(train, local_batch, shuffle, epoch, sums)
                logs = self._logs(sums)
                if val is not None:
                    logs.update(self._logs(self._evaluate(val, local_batch), "val_"))
                logs["lr"] = float(self.optimizer.param_groups[0]["lr"])
                self.history.append(epoch, logs)
                self.epoch = epoch
                for cb in self.callbacks_all:
                    cb.on_epoch_end(self, epoch, logs)
                for cb in self.callbacks_all:
                    cb.on_epoch_finished(self, epoch, logs)
                if self.stop_training:
                    break
        finally:
            for cb in self.callbacks_all:
                cb.on_train_end(self)
            self._net = self.model
        return self.history

    def evaluate(self, data: Any, y: Any = None, *, batch_size: int = 256) -> dict[str, float]:
        """Loss and metrics on ``data`` (the model in eval mode, no gradients)."""
        prepared = _prepare(data, y, self.float_dtype, "data")
        return self._logs(self._evaluate(prepared, batch_size))

    @torch.no_grad()
    def predict(self, x: Any, *, batch_size: int = 256) -> Tensor:
        """The model's outputs on ``x`` (samples first), concatenated over batches, in eval mode."""
        xs = tuple(x) if isinstance(x, (tuple, list)) else (x,)
        inputs = tuple(_as_tensor(v, "x", self.float_dtype) for v in xs)
        was_training = self.model.training
        self.model.eval()
        try:
            outs = []
            for start in range(0, len(inputs[0]), batch_size):
                chunk = tuple(v[start:start + batch_size].to(self.device) for v in inputs)
                with self._autocast():
                    out = self.model(*chunk) if self.tbptt is None and not self.stateful else self.model(chunk[0],
                                                                                                         None)[0]
                outs.append(out.float() if out.dtype in (torch.bfloat16, torch.float16) else out)
            return torch.cat(outs)
        finally:
            self.model.train(was_training)


_TRAINER_ARGS = ("loss", "optimizer", "lr", "optimizer_options", "metrics", "callbacks", "scheduler", "clip_norm",
                 "clip_value", "accumulate", "precision", "tbptt", "stateful", "device", "seed", "verbose")


def fit(model: nn.Module, data: Any, y: Any = None, **options: Any) -> History:
    """Train ``model`` on ``data`` in one call: ``Trainer(model, ...).fit(data, ...)``.

    Takes every argument of :class:`Trainer` and of :meth:`Trainer.fit`.

    Example:
        >>> x = torch.linspace(-1, 1, 128).unsqueeze(1); y = 3 * x + 1
        >>> history = fit(nn.Linear(1, 1), (x, y), optimizer="sgd", lr=0.5, epochs=20, batch_size=32,
        ...               seed=0, verbose=0)
        >>> round(history["loss"][-1], 6)
        0.0
    """
    trainer_options = {k: options.pop(k) for k in list(options) if k in _TRAINER_ARGS}
    return Trainer(model, **trainer_options).fit(data, y, **options)

"""Binding of the fused LSTM engine (``lstm_engine.cpp``): build, load, autograd.

The C++ source is compiled on first use with ``torch.utils.cpp_extension`` (needs a C++ compiler
and the ``ninja`` package) and cached on disk, so later processes load it at once. Installing
carousel needs neither: when the engine cannot be built or loaded, :func:`status` says why, and
the dispatcher falls back to the reference loop. Set ``CAROUSEL_ENGINE=0`` to never build it.

The engine runs one layer and one direction: it takes the hoisted input projection ``xp`` and
returns what the reference loop (:func:`carousel.runner.scan.scan`) returns, with gradients from
its own backward pass through time.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

_SOURCE = Path(__file__).with_name("lstm_engine.cpp")
_lock = threading.Lock()
_status: dict[str, Any] = {"tried": False, "reason": None}

# The states whose every step the engine can return: c.
KEEPABLE_STATES = (1,)
ACTIVATION_CODES = {
    "sigmoid": 0,
    "tanh": 1,
    "identity": 2,
    "relu": 3,
    "hard_sigmoid": 4,
    "softsign": 5,
    "elu": 6,
    "softplus": 7,
}


def _vector_flags() -> list[str]:
    """Compile the elementwise work for the widest vectors the CPU has (ATen's vector math, SLEEF
    from libtorch): AVX-512, AVX2, or ATen's portable vector type."""
    capability = torch.backends.cpu.get_cpu_capability()
    if capability == "AVX512":
        return ["-mavx512f", "-mavx512bw", "-mavx512vl", "-mavx512dq", "-mfma", "-mf16c", "-DCPU_CAPABILITY=AVX512",
                "-DCPU_CAPABILITY_AVX512"]
    if capability in ("AVX2", "AVX512"):
        return ["-mavx2", "-mfma", "-mf16c", "-DCPU_CAPABILITY=AVX2", "-DCPU_CAPABILITY_AVX2"]
    return ["-DCPU_CAPABILITY=DEFAULT"]


def _build() -> str | None:
    if os.environ.get("CAROUSEL_ENGINE", "1") == "0":
        return "the environment sets CAROUSEL_ENGINE=0"
    from torch.utils import cpp_extension

    try:
        cpp_extension.verify_ninja_availability()
    except RuntimeError:
        return "the ninja package is not installed (pip install ninja)"
    source = _SOURCE.read_text(encoding="utf-8")
    flags = ["-O3", *_vector_flags()]
    digest = hashlib.sha256((source + " ".join(flags)).encode()).hexdigest()[:12]
    try:
        cpp_extension.load_inline(
            name=f"carousel_engine_{digest}",
            cpp_sources=[source],
            is_python_module=False,
            extra_cflags=flags,
            verbose=False,
        )
    except (RuntimeError, OSError, ImportError, subprocess.CalledProcessError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        return f"building the C++ engine failed: {first}"
    return None


def status() -> str | None:
    """Build and load the engine once per process. None when it is ready, else the reason."""
    with _lock:
        if not _status["tried"]:
            _status["reason"] = _build()
            _status["tried"] = True
        return _status["reason"]


def tried() -> bool:
    """Whether :func:`status` has run in this process (it may compile on its first call)."""
    return bool(_status["tried"])


def _empty(like: Tensor) -> Tensor:
    return like.new_empty(0)


class _Scan(torch.autograd.Function):
    @staticmethod
    def forward(ctx, config, rates, flags, lengths, drop, zmasks, xp, h0, c0, a0, w_rec, *params):  # type: ignore[override]
        ctx.set_materialize_grads(False)
        w_ci, w_cf, w_co, ln_hh_w, ln_c_w, ln_c_b, w_hr, w_gr = params
        save, keep_c = flags
        out = torch.ops.carousel_engine.lstm_forward(
            xp, h0, c0, a0, w_rec, w_ci, w_cf, w_co, ln_hh_w, ln_c_w, ln_c_b, w_hr, w_gr,
            lengths, drop, *zmasks, *rates, save, keep_c, config,
        )  # fmt: skip
        y, h_t, c_t, a_t, cseq = out[:5]
        ctx.config, ctx.rates = config, rates
        ctx.save_for_backward(w_rec, w_ci, w_cf, w_co, ln_hh_w, ln_c_w, w_hr, w_gr, lengths, drop, *zmasks, *out[5:])
        ctx.state_shapes = (h0.shape, c0.shape, a0.shape)
        return y, h_t, c_t, a_t, cseq

    @staticmethod
    @once_differentiable
    def backward(ctx, gy, gh, gc, ga, gcseq):  # type: ignore[override]
        saved = ctx.saved_tensors
        w_rec, w_ci, w_cf, w_co, ln_hh_w, ln_c_w, w_hr, w_gr, lengths, drop = saved[:10]
        zmasks, rest = saved[10:13], saved[13:]
        h_shape, c_shape, a_shape = ctx.state_shapes
        gates = rest[0]
        gy = gates.new_zeros(gates.shape[0], gates.shape[1], h_shape[-1]) if gy is None else gy
        gh = gates.new_zeros(h_shape) if gh is None else gh.contiguous()
        gc = gates.new_zeros(c_shape) if gc is None else gc.contiguous()
        ga = gates.new_zeros(a_shape) if ga is None else ga.contiguous()
        gcseq = _empty(gates) if gcseq is None else gcseq.contiguous()
        g = torch.ops.carousel_engine.lstm_backward(
            gy.contiguous(), gh, gc, ga, gcseq, w_rec, w_ci, w_cf, w_co, ln_hh_w, ln_c_w, w_hr, w_gr,
            lengths, drop, *zmasks, *ctx.rates, *rest, ctx.config,
        )  # fmt: skip
        gxp, gh0, gc0, ga0, gw_rec, gci, gcf, gco, glnh, glncw, glncb, gw_hr, gw_gr = g

        def opt(t: Tensor) -> Tensor | None:
            return t if t.numel() else None

        return (
            None, None, None, None, None, None,
            gxp, gh0, gc0, opt(ga0), gw_rec,
            opt(gci), opt(gcf), opt(gco), opt(glnh), opt(glncw), opt(glncb), opt(gw_hr), opt(gw_gr),
        )  # fmt: skip


def config_list(cfg: Mapping[str, Any]) -> list[int]:
    """Flatten a cell's engine description (see ``carousel.cells.LSTM.engine_config``)."""
    return [
        cfg["hidden_size"],
        cfg["state_size"],
        *cfg["offsets"],
        *cfg["recurrent_offsets"],
        int(cfg["coupled"]),
        int(cfg["peepholes"]),
        int(cfg["layer_norm"]),
        int(cfg["proj"]),
        int(cfg["fgr"]),
        int(cfg["full_peephole"]),
        ACTIVATION_CODES[cfg["gate_activation"]],
        ACTIVATION_CODES[cfg["cell_activation"]],
        ACTIVATION_CODES[cfg["output_activation"]],
    ]


def scan(
    cfg: Mapping[str, Any],
    params: Mapping[str, Tensor],
    xp: Tensor,
    state: Sequence[Tensor],
    *,
    lengths: Tensor | None = None,
    dropout_masks: Sequence[Tensor | None] | None = None,
    zoneout_masks: Sequence[Tensor | None] | None = None,
    zoneout: Sequence[float] = (),
    keep_states: Sequence[int] = (),
) -> tuple[Tensor, tuple[Tensor, ...], list[Tensor]]:
    """The fused counterpart of the reference loop for one LSTM layer and direction.

    ``zoneout_masks`` (one ``(T, B, size)`` tensor per state, 1 where the unit keeps its previous
    value) are used in training; without them the rates ``zoneout`` give the expected update.
    """
    e = _empty(xp)
    h0, c0 = state[0].contiguous(), state[1].contiguous()
    a0 = state[2].contiguous() if len(state) > 2 else e
    w_rec = params["weight_ch"] if cfg["full_peephole"] else params["weight_hh"]
    names = (
        "weight_ci",
        "weight_cf",
        "weight_co",
        "ln_hh_weight",
        "ln_c_weight",
        "ln_c_bias",
        "weight_hr",
        "weight_gr",
    )
    rest = [params[n] if n in params else e for n in names]
    drop = e
    if dropout_masks is not None:
        fed = 1 if cfg["full_peephole"] else 0
        drop = dropout_masks[fed] if dropout_masks[fed] is not None else e
    zm = [e, e, e]
    rates = [0.0, 0.0, 0.0]
    if zoneout_masks is not None:
        zm = [m.contiguous() if m is not None else e for m in (list(zoneout_masks) + [None] * 3)[:3]]
        zm = [m if m.numel() else e for m in zm]
    else:
        rates = [float(z) for z in (list(zoneout) + [0.0] * 3)[:3]]
    lens = e.new_empty(0, dtype=torch.int64) if lengths is None else lengths.to(torch.int64).contiguous()
    inputs = [xp.contiguous(), h0, c0, a0, w_rec.contiguous(), *[t.contiguous() for t in rest]]
    save = torch.is_grad_enabled() and any(t.requires_grad for t in inputs)
    keep_c = tuple(keep_states) == KEEPABLE_STATES
    y, h_t, c_t, a_t, cseq = _Scan.apply(config_list(cfg), rates, (save, keep_c), lens, drop, zm, *inputs)
    final = (h_t, c_t, a_t) if len(state) > 2 else (h_t, c_t)
    return y, final, [cseq] if keep_c else []

"""The one place where an implementation is chosen for a recurrent layer.

Three implementations compute the same cell with the same parameters:

``"vendor"``
    the vendor fused op (oneDNN on CPU, cuDNN on CUDA, through ``torch.lstm``) when the
    configuration is exactly the one it computes;
``"fused"``
    carousel's own fused engine (``carousel.kernels``), a compiled loop with its own backward pass,
    for every other configuration it covers, on CPU;
``"reference"``
    the reference loop in Python (:func:`carousel.runner.scan.scan`), always available, against
    which the other two are tested.

Every precondition is an early return with a reason. ``fast="auto"`` takes the first that applies,
``fast=True`` raises with the reasons when neither fast path applies, ``fast=False`` always takes
the reference loop.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Literal

import torch

from carousel.cells.base import Cell
from carousel.kernels import lstm_engine, vendor
from carousel.runner.scan import scan

Fast = bool | Literal["auto"]
Implementation = Literal["vendor", "fused", "reference"]
VENDOR_OPS = vendor.MODES
ENGINES: dict[str, ModuleType] = {"lstm": lstm_engine}

_warned: set[str] = set()


def check_fast(fast: object) -> Fast:
    if not (isinstance(fast, bool) or (isinstance(fast, str) and fast == "auto")):
        raise ValueError(f"fast: expected 'auto', True or False, got {fast!r}")
    return fast  # type: ignore[return-value]


def vendor_refusal(
    cells: Sequence[Cell], *, recurrent_dropout: float, zoneout: Sequence[float], keep_states: Sequence[int]
) -> str | None:
    """None when the vendor fused op computes this layer exactly, else the reason it cannot."""
    modes = {cell.vendor_mode for cell in cells}
    if len(modes) != 1 or None in modes:
        return "the cells have no vendor fused op"
    (mode,) = modes
    if mode not in VENDOR_OPS:
        return f"no vendor fused op named {mode!r}"
    for cell in cells:
        reason = cell.vendor_refusal()
        if reason is not None:
            return reason
    if len({getattr(cell, "bias", True) for cell in cells}) != 1:
        return "layers differ in bias"
    if recurrent_dropout > 0.0:
        return "recurrent_dropout > 0 (the vendor op has no recurrent dropout)"
    if any(z > 0.0 for z in zoneout):
        return "zoneout > 0 (the vendor op has no zoneout)"
    if keep_states:
        return "per-step states are requested (the vendor op returns only outputs)"
    return None


def engine_refusal(cells: Sequence[Cell], *, keep_states: Sequence[int]) -> str | None:
    """None when carousel's fused engine can run every cell of this layer, else why not."""
    for cell in cells:
        name = getattr(cell, "engine", None)
        if name not in ENGINES:
            return f"{type(cell).__name__} has no fused engine"
        config = cell.engine_config()  # type: ignore[attr-defined]
        if isinstance(config, str):
            return config
        keepable = ENGINES[name].KEEPABLE_STATES
        if keep_states and tuple(keep_states) != keepable:
            return f"the fused engine returns per-step states {keepable} only, got {tuple(keep_states)}"
    return None


def _engine(cells: Sequence[Cell]) -> ModuleType:
    return ENGINES[cells[0].engine]  # type: ignore[attr-defined]


def plan(fast: Fast, vendor: str | None, engine: str | None, cells: Sequence[Cell] = ()) -> Implementation:
    """The implementation for a configuration, before anything about the input is known."""
    if fast is False:
        return "reference"
    if vendor is None:
        return "vendor"
    if engine is None:
        if fast is True:
            reason = _engine(cells).status()
            if reason is not None:
                raise ValueError(f"fast: True asks for a fast path, but the fused engine is unavailable: {reason}")
        return "fused"
    if fast is True:
        raise ValueError(
            f"fast: True asks for a fast path, but this configuration has none: vendor op: {vendor}; "
            f"fused engine: {engine}"
        )
    return "reference"


def effective(planned: Implementation, cells: Sequence[Cell]) -> Implementation:
    """What a layer planned as ``planned`` runs on CPU now: ``"reference"`` once its engine has
    failed to build in this process. Never builds anything."""
    if planned == "fused":
        engine = _engine(cells)
        if engine.tried() and engine.status() is not None:
            return "reference"
    return planned


def engine_ready(fast: Fast, device: torch.device, cells: Sequence[Cell]) -> bool:
    """At run time: can the fused engine take this input? Builds the engine on first use."""
    if device.type != "cpu":
        if fast is True:
            raise ValueError(f"fast: True, but the fused engine runs on CPU only, got input on {device}")
        return False
    reason = _engine(cells).status()
    if reason is None:
        return True
    if fast is True:  # pragma: no cover - plan() has already raised
        raise ValueError(f"fast: True, but the fused engine is unavailable: {reason}")
    if reason not in _warned:
        _warned.add(reason)
        warnings.warn(f"carousel: the fused engine is unavailable ({reason}); using the reference loop", stacklevel=3)
    return False


def scanner(cell: Cell, fused: bool) -> tuple[Callable, object]:
    """The loop to call and its first argument: the engine with the cell's config, or the reference."""
    if fused:
        return ENGINES[cell.engine].scan, cell.engine_config()  # type: ignore[attr-defined]
    return scan, cell

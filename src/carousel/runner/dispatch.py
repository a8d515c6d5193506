"""The one place where an implementation is chosen for a recurrent layer.

Three implementations compute the same cell with the same parameters: the vendor fused op
(oneDNN/cuDNN through ``torch.lstm``) when the configuration matches it exactly, a fused engine
of our own (not yet available: those configurations use the reference loop), and the reference
loop, always available. Every precondition is an early return with a reason.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from carousel.cells.base import Cell

Fast = bool | Literal["auto"]
VENDOR_OPS = ("lstm",)


def vendor_refusal(
    cells: Sequence[Cell],
    *,
    recurrent_dropout: float,
    zoneout: Sequence[float],
    keep_states: Sequence[int],
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
        return "recurrent_dropout > 0 needs the loop (the fused op has no recurrent dropout)"
    if any(z > 0.0 for z in zoneout):
        return "zoneout > 0 needs the loop (the fused op has no zoneout)"
    if keep_states:
        return "returning every step's state needs the loop (the fused op returns only outputs)"
    return None


def check_fast(fast: object) -> Fast:
    if fast not in ("auto", True, False):
        raise ValueError(f"fast: expected 'auto', True or False, got {fast!r}")
    return fast  # type: ignore[return-value]


def use_vendor(fast: Fast, refusal: str | None) -> bool:
    """Decide: True runs the vendor op. ``fast=True`` with a refusal raises with the reason."""
    if fast is False:
        return False
    if refusal is None:
        return True
    if fast is True:
        raise ValueError(f"fast: True asks for a fast path, but this configuration has none: {refusal}")
    return False

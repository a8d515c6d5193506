"""Variable-length batches: lengths, masks and per-sequence reversal, for every cell alike."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from carousel.cells.base import as_shape


def check_input(name: str, x: Tensor, input_size: int | tuple[int, ...], ref: Tensor) -> None:
    """Feature size (or per-step shape), dtype and device of an input against the parameters ``ref``
    belongs to."""
    if isinstance(input_size, tuple) and len(input_size) > 1:
        got = tuple(x.shape[max(x.dim() - len(input_size), 0) :])
        if got != input_size:
            raise ValueError(f"{name}: expected each step of shape {input_size}, got {got}")
    elif x.shape[-1] != as_shape(input_size)[0]:
        raise ValueError(f"{name}: expected {as_shape(input_size)[0]} features (input_size), got {x.shape[-1]}")
    if x.dtype != ref.dtype:
        raise TypeError(f"{name}: expected dtype {ref.dtype} (the parameters' dtype), got {x.dtype}")
    if x.device != ref.device:
        raise ValueError(f"{name}: expected device {ref.device} (the parameters' device), got {x.device}")


def as_lengths(lengths: Tensor | Sequence[int], batch: int, steps: int, device: torch.device) -> Tensor:
    """Validate ``lengths`` (one positive length per sequence, at most ``steps``) as int64."""
    if not isinstance(lengths, Tensor):
        try:
            lengths = torch.as_tensor(lengths)
        except (TypeError, ValueError, RuntimeError) as err:
            raise TypeError(
                f"lengths: expected a 1-D tensor or sequence of ints, got {type(lengths).__name__}"
            ) from err
    if lengths.dim() != 1 or lengths.shape[0] != batch:
        raise ValueError(f"lengths: expected shape ({batch},) (one length per sequence), got {tuple(lengths.shape)}")
    if lengths.dtype.is_floating_point or lengths.dtype.is_complex or lengths.dtype == torch.bool:
        raise TypeError(f"lengths: expected an integer dtype, got {lengths.dtype}")
    lo, hi = int(lengths.min()), int(lengths.max())
    if lo < 1 or hi > steps:
        raise ValueError(f"lengths: expected values in [1, {steps}] (the padded length), got min {lo} and max {hi}")
    return lengths.to(device=device, dtype=torch.int64)


def lengths_from_mask(mask: Tensor, batch_first: bool, batch: int, steps: int, device: torch.device) -> Tensor:
    """Turn a right-padding mask (True on real steps) into lengths; refuse masks with holes."""
    expected = (batch, steps) if batch_first else (steps, batch)
    if not isinstance(mask, Tensor) or mask.dtype != torch.bool:
        got = mask.dtype if isinstance(mask, Tensor) else type(mask).__name__
        raise TypeError(f"mask: expected a bool tensor of shape {expected}, got {got}")
    if tuple(mask.shape) != expected:
        raise ValueError(
            f"mask: expected shape {expected} ({'batch, time' if batch_first else 'time, batch'}), "
            f"got {tuple(mask.shape)}"
        )
    m = mask if batch_first else mask.t()
    lengths = m.sum(dim=1)
    prefix = torch.arange(steps, device=m.device).unsqueeze(0) < lengths.unsqueeze(1)
    if not torch.equal(prefix, m):
        raise ValueError("mask: expected True on a prefix of each sequence (right padding), got a mask with gaps")
    return as_lengths(lengths, batch, steps, device)


def step_mask(lengths: Tensor | None, steps: int) -> Tensor | None:
    """``(T, B, 1)`` booleans, True on real steps; None when no sequence is padded."""
    if lengths is None or int(lengths.min()) == steps:
        return None
    t = torch.arange(steps, device=lengths.device).unsqueeze(1)
    return (t < lengths.unsqueeze(0)).unsqueeze(-1)


def reverse_padded(x: Tensor, lengths: Tensor | None) -> Tensor:
    """Reverse each sequence of ``x`` (``(T, B, ...)``) within its own length; padding stays put."""
    if lengths is None or int(lengths.min()) == x.shape[0]:
        return x.flip(0)
    steps = x.shape[0]
    t = torch.arange(steps, device=x.device).unsqueeze(1)
    idx = torch.where(t < lengths.unsqueeze(0), lengths.unsqueeze(0) - 1 - t, t)  # (T, B)
    idx = idx.view(steps, -1, *([1] * (x.dim() - 2))).expand_as(x)
    return x.gather(0, idx)

"""The reference loop: any cell over time, with masks, recurrent dropout and zoneout.

This is the one place where time is iterated for the reference path. The input projection is
hoisted out of the loop (one matrix product for all steps); the loop runs only the recurrence.
Fused implementations (``carousel.kernels``) take the same arguments and return the same values.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from carousel.cells.base import Cell, Params, State
from carousel.runner.sequence import step_mask


def variational_masks(cell: Cell, state: State, p: float, training: bool) -> tuple[Tensor | None, ...] | None:
    """Recurrent dropout masks (Gal & Ghahramani 2016): one Bernoulli mask per sequence, shared by
    all steps, scaled by ``1 / (1 - p)``, for the states the cell lists in ``dropout_states``."""
    if p == 0.0 or not training:
        return None
    return tuple(
        torch.empty_like(s).bernoulli_(1.0 - p).div_(1.0 - p) if k in cell.dropout_states else None
        for k, s in enumerate(state)
    )


def zoneout_masks(state: State, rates: Sequence[float], steps: int, training: bool) -> tuple[Tensor | None, ...] | None:
    """Zoneout masks for training (Krueger et al. 2016): for every step and unit, 1 with
    probability ``z`` (the unit keeps its previous value), else 0. None outside training."""
    if not training or not any(z > 0.0 for z in rates):
        return None
    return tuple(
        torch.empty((steps, *s.shape), dtype=s.dtype, device=s.device).bernoulli_(z) if z > 0.0 else None
        for s, z in zip(state, rates)
    )


def _fit(m: Tensor, s: Tensor) -> Tensor:
    """A ``(B, 1)`` step mask viewed to broadcast against ``s`` of shape ``(B, ...)``."""
    return m.view(m.shape[0], *([1] * (s.dim() - 1)))


def scan(
    cell: Cell,
    params: Params,
    xp: Tensor,
    state: State,
    *,
    lengths: Tensor | None = None,
    dropout_masks: Sequence[Tensor | None] | None = None,
    zoneout_masks: Sequence[Tensor | None] | None = None,
    zoneout: Sequence[float] = (),
    keep_states: Sequence[int] = (),
) -> tuple[Tensor, State, list[Tensor]]:
    """Run ``cell`` over the projected input ``xp`` of shape ``(T, B, ...)``.

    Args:
        lengths: ``(B,)`` lengths of right-padded sequences. On padded steps the state is carried
            unchanged and the output is zero.
        dropout_masks: per-state multiplicative masks applied to the state fed back into the step.
        zoneout_masks: per-state ``(T, B, size)`` masks from :func:`zoneout_masks` (training): where
            1, the unit keeps its previous value. Without masks, the rates ``zoneout`` give the
            expected update ``s_t = z s_{t-1} + (1 - z) s'_t`` (evaluation).
        keep_states: indices of states whose value at every step is returned.

    Returns:
        outputs ``(T, B, output_size)``, the final state, and one ``(T, B, size)`` tensor per index
        in ``keep_states`` (zero on padded steps).
    """
    steps = xp.shape[0]
    smask = step_mask(lengths, steps)
    expected = zoneout_masks is None and any(z > 0.0 for z in zoneout)
    outputs: list[Tensor] = []
    kept: list[list[Tensor]] = [[] for _ in keep_states]
    # unbind, not xp[t]: the gradient of each indexing would be a zero tensor of the whole
    # sequence, which makes the backward pass quadratic in the length.
    for t, x_t in enumerate(xp.unbind(0)):
        if dropout_masks is None:
            y, new = cell.step(params, x_t, state)
        else:
            fed = tuple(s if m is None else s * m for s, m in zip(state, dropout_masks))
            y, new = cell.step(params, x_t, state, fed) if cell.dropout_in_step else cell.step(params, x_t, fed)
        if zoneout_masks is not None:
            new = tuple(
                s if m is None else torch.where(m[t].bool(), old, s) for old, s, m in zip(state, new, zoneout_masks)
            )
            y = new[cell.output_state]  # type: ignore[index]
        elif expected:
            new = tuple(s if z == 0.0 else z * old + (1.0 - z) * s for old, s, z in zip(state, new, zoneout))
            y = new[cell.output_state]  # type: ignore[index]
        if smask is not None:
            m = smask[t]  # (B, 1): viewed as (B, 1, ..., 1) against each state
            new = tuple(torch.where(_fit(m, s), s, old) for s, old in zip(new, state))
            y = y * _fit(m, y)
        state = new
        outputs.append(y)
        for j, k in enumerate(keep_states):
            kept[j].append(state[k] if smask is None else state[k] * _fit(smask[t], state[k]))
    return torch.stack(outputs), state, [torch.stack(seq) for seq in kept]

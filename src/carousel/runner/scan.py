"""The reference loop: any cell over time, with masks, recurrent dropout and zoneout.

This is the one place where time is iterated for the reference path. The input projection is
hoisted out of the loop (one matrix product for all steps); the loop runs only the recurrence.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from carousel.cells.base import Cell, Params, State


def variational_masks(cell: Cell, state: State, p: float, training: bool) -> tuple[Tensor | None, ...] | None:
    """Recurrent dropout masks (Gal & Ghahramani 2016): one Bernoulli mask per sequence, shared by
    all steps, scaled by ``1 / (1 - p)``, for the states the cell lists in ``dropout_states``."""
    if p == 0.0 or not training:
        return None
    masks: list[Tensor | None] = []
    for k, s in enumerate(state):
        if k in cell.dropout_states:
            masks.append(torch.empty_like(s).bernoulli_(1.0 - p).div_(1.0 - p))
        else:
            masks.append(None)
    return tuple(masks)


def scan(
    cell: Cell,
    params: Params,
    xp: Tensor,
    state: State,
    *,
    step_mask: Tensor | None = None,
    dropout_masks: Sequence[Tensor | None] | None = None,
    zoneout: Sequence[float] | None = None,
    training: bool = False,
    keep_states: Sequence[int] = (),
) -> tuple[Tensor, State, list[Tensor]]:
    """Run ``cell`` over the projected input ``xp`` of shape ``(T, B, ...)``.

    Args:
        step_mask: ``(T, B, 1)`` booleans, True where step ``t`` of sequence ``b`` is real. On padded
            steps the state is carried unchanged and the output is zero.
        dropout_masks: per-state multiplicative masks applied to the state fed back into the step.
        zoneout: per-state rates ``z`` (Krueger et al. 2016): in training each unit keeps its
            previous value with probability ``z``; in evaluation ``s_t = z s_{t-1} + (1 - z) s'_t``.
        keep_states: indices of states whose value at every step is returned.

    Returns:
        outputs ``(T, B, output_size)``, the final state, and one ``(T, B, size)`` tensor per index
        in ``keep_states``.
    """
    outputs: list[Tensor] = []
    kept: list[list[Tensor]] = [[] for _ in keep_states]
    use_zoneout = zoneout is not None and any(z > 0.0 for z in zoneout)
    for t in range(xp.shape[0]):
        fed = state
        if dropout_masks is not None:
            fed = tuple(s if m is None else s * m for s, m in zip(state, dropout_masks))
        y, new = cell.step(params, xp[t], fed)
        if use_zoneout:
            new = tuple(_zoneout(old, s, z, training) for old, s, z in zip(state, new, zoneout))  # type: ignore[arg-type]
            y = new[cell.output_state]  # type: ignore[index]
        if step_mask is not None:
            m = step_mask[t]
            new = tuple(torch.where(m, s, old) for s, old in zip(new, state))
            y = y * m
        state = new
        outputs.append(y)
        for j, k in enumerate(keep_states):
            kept[j].append(state[k] if step_mask is None else state[k] * step_mask[t])
    return torch.stack(outputs), state, [torch.stack(seq) for seq in kept]


def _zoneout(old: Tensor, new: Tensor, z: float, training: bool) -> Tensor:
    if z == 0.0:
        return new
    if training:
        keep = torch.empty_like(new).bernoulli_(z).bool()
        return torch.where(keep, old, new)
    return z * old + (1.0 - z) * new

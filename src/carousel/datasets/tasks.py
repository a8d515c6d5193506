"""Generators of synthetic sequence tasks used to test what recurrent networks can learn."""

from __future__ import annotations

import torch
from torch import Tensor


def adding_problem(
    n: int, steps: int, *, generator: torch.Generator | None = None, dtype: torch.dtype = torch.float32
) -> tuple[Tensor, Tensor]:
    """The adding problem in its common modern form (Le, Jaitly & Hinton 2015, after Hochreiter &
    Schmidhuber 1997, experiment 4).

    Each sequence has two channels: values drawn uniformly from [0, 1], and a marker channel that
    is 1 at exactly two steps (one in each half of the sequence) and 0 elsewhere. The target is
    the sum of the two marked values. Always answering the mean, 1, gives a mean squared error of
    1/6 (about 0.167), the baseline a model must beat. The 1997 original differs (values in
    [-1, 1], target ``0.5 + (x1 + x2) / 4``, first marker among the first ten steps).

    Returns:
        ``x`` of shape ``(n, steps, 2)`` (batch first) and ``y`` of shape ``(n, 1)``.

    Example:
        >>> x, y = adding_problem(4, 10, generator=torch.Generator().manual_seed(0))
        >>> x.shape, y.shape, int(x[..., 1].sum())
        (torch.Size([4, 10, 2]), torch.Size([4, 1]), 8)
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n: expected an integer >= 1, got {n!r}")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 2:
        raise ValueError(f"steps: expected an integer >= 2, got {steps!r}")
    values = torch.rand(n, steps, generator=generator, dtype=dtype)
    half = steps // 2
    first = torch.randint(0, half, (n,), generator=generator)
    second = torch.randint(half, steps, (n,), generator=generator)
    markers = torch.zeros(n, steps, dtype=dtype)
    rows = torch.arange(n)
    markers[rows, first] = 1.0
    markers[rows, second] = 1.0
    y = (values * markers).sum(dim=1, keepdim=True)
    return torch.stack([values, markers], dim=-1), y

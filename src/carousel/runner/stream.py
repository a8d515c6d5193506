"""Online inference: feed one step at a time, the state is kept between calls."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor

from carousel.cells.base import as_shape
from carousel.runner import dispatch
from carousel.runner.sequence import check_input

if TYPE_CHECKING:
    from carousel.runner.layer import RecurrentLayer


class Stream:
    """Step a unidirectional :class:`RecurrentLayer` through a sequence as it arrives.

    ``step(x_t)`` takes one step of input, ``(B, input_size)`` or ``(input_size,)``, and returns the
    last layer's output for that step; the state of every layer is kept for the next call. The
    layer runs in inference mode (no dropout; zoneout as its expectation) on the same implementation
    it would use for a whole sequence, so a stream reproduces ``layer(x)`` step by step.

    Example:
        >>> import torch
        >>> from carousel.nn import LSTM
        >>> lstm = LSTM(3, 8, num_layers=2, peepholes=True).eval()
        >>> stream = lstm.stream()
        >>> x = torch.randn(5, 3)
        >>> ys = torch.stack([stream.step(x_t) for x_t in x])
        >>> torch.allclose(ys, lstm(x)[0], atol=1e-6)
        True
    """

    def __init__(self, layer: RecurrentLayer, batch: int = 1) -> None:
        if layer.bidirectional:
            raise ValueError("layer: expected a unidirectional layer (a backward direction needs the whole sequence)")
        if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
            raise ValueError(f"batch: expected an integer >= 1, got {batch!r}")
        self.layer = layer
        self.batch = batch
        self.state: tuple[Tensor, ...] = ()
        self.reset()

    def reset(self, state: Tensor | tuple[Tensor, ...] | None = None) -> None:
        """Start a new sequence, from zeros or from ``state`` (the layer's ``hx`` format, batched)."""
        ref = next(iter(self.layer.parameters()))
        if state is None:
            n = self.layer.num_layers
            sizes = self.layer.cells[0].state_sizes
            self.state = tuple(
                torch.zeros(n, self.batch, *as_shape(s), dtype=ref.dtype, device=ref.device) for s in sizes
            )
        else:
            checked = self.layer._check_state(state, self.batch, False, ref)
            assert checked is not None
            self.state = tuple(s.detach().clone() for s in checked)

    @torch.no_grad()
    def step(self, x_t: Tensor) -> Tensor:
        """One step: returns the output for ``x_t``, shaped like ``x_t`` with the output size."""
        layer = self.layer
        shape = layer._input_shape  # (features,), or e.g. (channels, height, width) for a ConvLSTM
        nd = len(shape)
        if not isinstance(x_t, Tensor) or x_t.dim() not in (nd, nd + 1):
            got = f"{x_t.dim()}-D" if isinstance(x_t, Tensor) else type(x_t).__name__
            raise ValueError(f"x_t: expected a (batch, *{shape}) or {shape} tensor, got {got}")
        single = x_t.dim() == nd
        x = x_t.reshape(1, self.batch, *x_t.shape[x_t.dim() - nd :])  # (T=1, B, *step shape)
        check_input("x_t", x, shape, next(iter(layer.parameters())))
        if layer.implementation == "vendor":
            out, state, _ = layer._forward_vendor(
                x.transpose(0, 1) if layer.batch_first else x, self.state, None, None, False
            )
            out = out.transpose(0, 1) if layer.batch_first else out
        else:
            fused = layer.implementation == "fused" and dispatch.engine_ready(layer.fast, x.device, layer.cells)
            finals = []
            out = x
            for k, cell in enumerate(layer.cells):
                loop, spec = dispatch.scanner(cell, fused)
                params = layer.cell_parameters(k)
                out, s_final, _ = loop(spec, params, cell.project(params, out), tuple(s[k] for s in self.state),
                                       zoneout=layer.zoneout)  # fmt: skip
                finals.append(s_final)
            state = tuple(torch.stack([f[j] for f in finals]) for j in range(len(self.state)))
        self.state = tuple(state)
        y = out[0]
        return y[0] if single else y

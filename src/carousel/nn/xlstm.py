r"""xLSTM layers and blocks (Beck et al. 2024, "xLSTM: Extended Long Short-Term Memory", NeurIPS,
arXiv:2405.04517).

``SLSTM`` and ``MLSTM`` are recurrent layers with ``torch.nn.LSTM``'s arguments and returns, run by
:class:`carousel.runner.RecurrentLayer`; the equations are those of :mod:`carousel.cells.xlstm`.
``sLSTMBlock`` and ``mLSTMBlock`` are the paper's two residual blocks, ``xLSTMStack`` a stack of them.

Choices made in the blocks (the paper's figures leave them open, or the simplest faithful form was
taken):

* The causal convolution is depthwise (one kernel per channel) with a Swish activation, as in the
  authors' code. In the paper only some projections read the convolved signal (the sLSTM's ``i``
  and ``f`` gates; the mLSTM's ``q`` and ``k``); here the cell reads the concatenation
  ``[conv, unconvolved]`` and learns a full input matrix over it, which contains the paper's
  wiring as the case where the other blocks of the matrix are zero.
* The input projections are dense, not block-diagonal per head (the paper's "headwise" projections
  are again a special case).
* The sLSTM block has one residual connection around the whole block (as drawn in the paper's
  figure); the authors' code adds a second layer norm and residual around the feed-forward part.
* The blocks run from a zero state on whole sequences; they return no state. Use the layers for
  state passing and streaming.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from carousel.cells.xlstm import MLSTM as MLSTMStep
from carousel.cells.xlstm import SLSTM as SLSTMStep
from carousel.runner import dispatch
from carousel.runner.layer import RecurrentLayer


class SLSTM(RecurrentLayer):
    r"""Multi-layer sLSTM with ``torch.nn.LSTM``'s arguments and returns.

    For each layer and step (stabilised with ``m_t``; see :class:`carousel.cells.xlstm.SLSTM`)::

        c_t = f_t (.) c_{t-1} + i_t (.) z_t,   n_t = f_t (.) n_{t-1} + i_t,   h_t = o_t (.) (c_t / n_t)
        i_t = exp(i~_t),  f_t = sigma(f~_t) or exp(f~_t),  z_t = tanh(z~_t),  o_t = sigma(o~_t)
        m_t = max(log f_t + m_{t-1}, i~_t)

    where every pre-activation is ``W x_t + R h_{t-1} + b`` with ``R`` block-diagonal over heads.
    Beck et al. (2024), "xLSTM: Extended Long Short-Term Memory".

    Args:
        input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional, device,
        dtype: as ``torch.nn.LSTM``.
        num_heads: heads of the block-diagonal recurrent matrices (must divide ``hidden_size``).
        forget_gate: ``"sigmoid"`` or ``"exp"``.
        recurrent_dropout: variational dropout on ``h_{t-1}`` fed back (Gal & Ghahramani 2016).
        zoneout: one rate, or four, one per state ``(h, c, n, m)``.
        init: ``"pytorch"`` (uniform ``1/sqrt(H)``) or ``"keras"`` (Glorot, orthogonal, zero bias).
        fast: as :class:`carousel.nn.LSTM`; the sLSTM runs the reference loop.

    Shapes: input ``(T, B, I)`` (``(B, T, I)`` if ``batch_first``), ``(T, I)`` or a
    ``PackedSequence``. ``hx = (h_0, c_0, n_0, m_0)``, each ``(D * num_layers, B, H)``. Returns
    ``output, (h_n, c_n, n_n, m_n)``. Parameters ``weight_ih_l{k}`` ``(4H, I)``,
    ``weight_hh_l{k}`` ``(heads, 4H/heads, H/heads)``, ``bias_l{k}`` ``(4H,)``.

    Example:
        >>> import torch
        >>> from carousel.nn.xlstm import SLSTM
        >>> layer = SLSTM(3, 8, num_layers=2, num_heads=2, batch_first=True)
        >>> out, (h, c, n, m) = layer(torch.randn(4, 6, 3), lengths=torch.tensor([6, 5, 3, 1]))
        >>> out.shape, h.shape
        (torch.Size([4, 6, 8]), torch.Size([2, 4, 8]))
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        *,
        num_heads: int = 1,
        forget_gate: str = "sigmoid",
        recurrent_dropout: float = 0.0,
        zoneout: float | Sequence[float] = 0.0,
        init: str = "pytorch",
        fast: dispatch.Fast = "auto",
    ) -> None:
        self.hidden_size = hidden_size
        self.bias = bias
        self.num_heads = num_heads
        super().__init__(
            lambda k, n: SLSTMStep(n, hidden_size, num_heads=num_heads, bias=bias, forget_gate=forget_gate),
            input_size,
            num_layers,
            bidirectional=bidirectional,
            batch_first=batch_first,
            dropout=dropout,
            recurrent_dropout=recurrent_dropout,
            zoneout=zoneout,
            init=init,
            fast=fast,
            device=device,
            dtype=dtype,
        )


class MLSTM(RecurrentLayer):
    r"""Multi-layer mLSTM with ``torch.nn.LSTM``'s arguments and returns.

    For each layer, step and head (stabilised with ``m_t``; see :class:`carousel.cells.xlstm.MLSTM`)::

        C_t = f_t C_{t-1} + i_t v_t k_t^T,   n_t = f_t n_{t-1} + i_t k_t
        h~_t = C_t q_t / max(|n_t^T q_t|, 1),   h_t = o_t (.) h~_t

    with ``q_t, k_t, v_t, o_t`` and the scalar gates ``i_t = exp(.)``, ``f_t`` all computed from
    ``x_t`` alone. Beck et al. (2024), "xLSTM: Extended Long Short-Term Memory".

    Args:
        input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional, device,
        dtype: as ``torch.nn.LSTM``; ``hidden_size = num_heads * d``.
        num_heads: heads, each with a ``d x d`` matrix memory.
        forget_gate: ``"sigmoid"`` or ``"exp"``.
        output_gate: False drops ``o_t`` (``h_t = h~_t``).
        init, fast: as :class:`SLSTM`.

    Shapes: input as :class:`SLSTM`. ``hx = (C_0, n_0, m_0)`` of shapes ``(D * num_layers, B,
    heads * d * d)``, ``(D * num_layers, B, H)`` and ``(D * num_layers, B, heads)``; ``C`` is the
    flattened ``(B, heads, d, d)`` memory. Returns ``output, (C_n, n_n, m_n)``. Parameters
    ``weight_ih_l{k}`` and ``bias_l{k}`` (rows ``q, k, v, i, f, o``).

    Example:
        >>> import torch
        >>> from carousel.nn.xlstm import MLSTM
        >>> layer = MLSTM(3, 8, num_heads=2, batch_first=True)
        >>> out, (C, n, m) = layer(torch.randn(4, 6, 3))
        >>> out.shape, C.view(1, 4, 2, 4, 4).shape, m.shape
        (torch.Size([4, 6, 8]), torch.Size([1, 4, 2, 4, 4]), torch.Size([1, 4, 2]))
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        *,
        num_heads: int = 1,
        forget_gate: str = "sigmoid",
        output_gate: bool = True,
        init: str = "pytorch",
        fast: dispatch.Fast = "auto",
    ) -> None:
        self.hidden_size = hidden_size
        self.bias = bias
        self.num_heads = num_heads
        super().__init__(
            lambda k, n: MLSTMStep(
                n, hidden_size, num_heads=num_heads, bias=bias, forget_gate=forget_gate, output_gate=output_gate
            ),
            input_size,
            num_layers,
            bidirectional=bidirectional,
            batch_first=batch_first,
            dropout=dropout,
            init=init,
            fast=fast,
            device=device,
            dtype=dtype,
        )


# ---------------------------------------------------------------------- blocks
def _check_int(name: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name}: expected an integer >= {minimum}, got {value!r}")
    return value


def _check_sequence(x: object, d_model: int) -> Tensor:
    if not isinstance(x, Tensor):
        raise TypeError(f"x: expected a Tensor of shape (batch, time, {d_model}), got {type(x).__name__}")
    if x.dim() != 3 or x.shape[-1] != d_model:
        raise ValueError(f"x: expected shape (batch, time, {d_model}), got {tuple(x.shape)}")
    return x


class CausalConv1d(nn.Module):
    r"""Depthwise causal convolution over time: ``y_t = sum_{j<K} w_j (.) x_{t-j} + b``.

    Input and output ``(B, T, channels)``; step ``t`` sees only steps ``<= t``.
    """

    def __init__(self, channels: int, kernel_size: int) -> None:
        super().__init__()
        self.kernel_size = _check_int("conv_kernel", kernel_size, 1)
        self.conv = nn.Conv1d(channels, channels, kernel_size, groups=channels)

    def forward(self, x: Tensor) -> Tensor:
        x = F.pad(x.transpose(1, 2), (self.kernel_size - 1, 0))  # (B, C, K - 1 + T): left padding only
        return self.conv(x).transpose(1, 2)


def _group_norm(norm: nn.GroupNorm, y: Tensor) -> Tensor:
    """Head-wise normalisation of ``(B, T, H)``: a GroupNorm with one group per head."""
    return norm(y.reshape(-1, y.shape[-1])).view(y.shape)


class sLSTMBlock(nn.Module):
    r"""The residual sLSTM block of Beck et al. (2024) (post up-projection)::

        x^ = LayerNorm(x)
        u  = [Swish(CausalConv(x^)), x^]        (or x^ alone when conv_kernel = 0)
        y  = GroupNorm_heads(sLSTM(u))
        out = x + W_down (GeLU(W_g y) (.) W_u y)  (gated MLP, width proj_factor * d_model)

    Args:
        d_model: features of the residual stream.
        num_heads: sLSTM heads (divide ``d_model``).
        conv_kernel: width of the causal convolution (paper: 4); 0 disables it.
        proj_factor: up-projection factor of the gated MLP (paper: 4/3).
        forget_gate: ``"sigmoid"`` or ``"exp"``.
        dropout: dropout on the block's output before the residual sum.

    Input and output ``(B, T, d_model)``.

    Example:
        >>> import torch
        >>> from carousel.nn.xlstm import sLSTMBlock
        >>> sLSTMBlock(8, num_heads=2)(torch.randn(2, 5, 8)).shape
        torch.Size([2, 5, 8])
    """

    def __init__(
        self,
        d_model: int,
        *,
        num_heads: int = 4,
        conv_kernel: int = 4,
        proj_factor: float = 4.0 / 3.0,
        forget_gate: str = "sigmoid",
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.d_model = _check_int("d_model", d_model, 1)
        if isinstance(proj_factor, bool) or not isinstance(proj_factor, (int, float)) or proj_factor <= 0:
            raise ValueError(f"proj_factor: expected a positive number, got {proj_factor!r}")
        conv_kernel = _check_int("conv_kernel", conv_kernel, 0)
        self.norm = nn.LayerNorm(d_model)
        self.conv = CausalConv1d(d_model, conv_kernel) if conv_kernel else None
        width = 2 * d_model if conv_kernel else d_model
        self.cell = SLSTM(width, d_model, num_heads=num_heads, forget_gate=forget_gate, batch_first=True)
        self.group_norm = nn.GroupNorm(num_heads, d_model)
        inner = max(1, math.ceil(proj_factor * d_model))
        self.up = nn.Linear(d_model, 2 * inner)  # [W_g; W_u]
        self.down = nn.Linear(inner, d_model)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        _check_sequence(x, self.d_model)
        xn = self.norm(x)
        u = xn if self.conv is None else torch.cat([F.silu(self.conv(xn)), xn], dim=-1)
        y, _ = self.cell(u)
        y = _group_norm(self.group_norm, y)
        gate, up = self.up(y).chunk(2, dim=-1)
        return x + self.dropout(self.down(F.gelu(gate) * up))


class mLSTMBlock(nn.Module):
    r"""The residual mLSTM block of Beck et al. (2024) (pre up-projection)::

        x^ = LayerNorm(x)
        a, b = W_up x^                          (two branches of width proj_factor * d_model)
        c  = Swish(CausalConv(a))
        h~ = GroupNorm_heads(mLSTM([c, a])) + s (.) c       (learnable skip s, no cell output gate)
        out = x + W_down (h~ (.) Swish(b))      (output gate)

    Args:
        d_model: features of the residual stream.
        num_heads: mLSTM heads (divide ``proj_factor * d_model``).
        conv_kernel: width of the causal convolution (paper: 4), >= 1.
        proj_factor: up-projection factor (paper: 2).
        forget_gate: ``"sigmoid"`` or ``"exp"``.
        dropout: dropout on the block's output before the residual sum.

    Input and output ``(B, T, d_model)``.

    Example:
        >>> import torch
        >>> from carousel.nn.xlstm import mLSTMBlock
        >>> mLSTMBlock(8, num_heads=2)(torch.randn(2, 5, 8)).shape
        torch.Size([2, 5, 8])
    """

    def __init__(
        self,
        d_model: int,
        *,
        num_heads: int = 4,
        conv_kernel: int = 4,
        proj_factor: int = 2,
        forget_gate: str = "sigmoid",
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.d_model = _check_int("d_model", d_model, 1)
        inner = _check_int("proj_factor", proj_factor, 1) * d_model
        self.norm = nn.LayerNorm(d_model)
        self.up = nn.Linear(d_model, 2 * inner)
        self.conv = CausalConv1d(inner, conv_kernel)
        self.cell = MLSTM(
            2 * inner, inner, num_heads=num_heads, forget_gate=forget_gate, output_gate=False, batch_first=True
        )
        self.group_norm = nn.GroupNorm(num_heads, inner)
        self.skip = nn.Parameter(torch.ones(inner))
        self.down = nn.Linear(inner, d_model)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        _check_sequence(x, self.d_model)
        a, b = self.up(self.norm(x)).chunk(2, dim=-1)
        c = F.silu(self.conv(a))
        h, _ = self.cell(torch.cat([c, a], dim=-1))
        h = _group_norm(self.group_norm, h) + self.skip * c
        return x + self.dropout(self.down(h * F.silu(b)))


class xLSTMStack(nn.Module):
    r"""A residual stack of xLSTM blocks, e.g. ``blocks="msmm"`` (Beck et al. 2024 name stacks by
    their ratio of mLSTM to sLSTM blocks, "xLSTM[7:1]"), followed by a final LayerNorm.

    Args:
        d_model: features of the input and output.
        blocks: one letter per block, ``"m"`` (:class:`mLSTMBlock`) or ``"s"`` (:class:`sLSTMBlock`).
        num_heads: heads of every block.
        conv_kernel: causal convolution width of every block.
        forget_gate: ``"sigmoid"`` or ``"exp"``.
        dropout: dropout of every block.
        final_norm: apply a LayerNorm to the output.

    Input and output ``(B, T, d_model)``.

    Example:
        >>> import torch
        >>> from carousel.nn.xlstm import xLSTMStack
        >>> xLSTMStack(8, blocks="ms", num_heads=2)(torch.randn(2, 5, 8)).shape
        torch.Size([2, 5, 8])
    """

    def __init__(
        self,
        d_model: int,
        blocks: str = "msmm",
        *,
        num_heads: int = 4,
        conv_kernel: int = 4,
        forget_gate: str = "sigmoid",
        dropout: float = 0.0,
        final_norm: bool = True,
    ) -> None:
        super().__init__()
        if not isinstance(blocks, str) or not blocks or set(blocks) - {"m", "s"}:
            raise ValueError(f"blocks: expected a non-empty string of 'm' and 's', got {blocks!r}")
        self.d_model = _check_int("d_model", d_model, 1)
        self.block_types = blocks
        kinds = {"m": mLSTMBlock, "s": sLSTMBlock}
        self.blocks = nn.ModuleList(
            kinds[b](d_model, num_heads=num_heads, conv_kernel=conv_kernel, forget_gate=forget_gate, dropout=dropout)
            for b in blocks
        )
        self.norm = nn.LayerNorm(d_model) if final_norm else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        _check_sequence(x, self.d_model)
        for block in self.blocks:
            x = block(x)
        return self.norm(x)

"""Bindings to the vendor fused recurrent ops (``torch.lstm`` and ``torch.gru`` run oneDNN on CPU,
cuDNN on CUDA).

Weights are passed as a flat list in ``torch.nn.LSTM``'s (and ``torch.nn.GRU``'s) order: for each
layer, for each direction, ``weight_ih, weight_hh[, bias_ih, bias_hh][, weight_hr]``. The state is
always a tuple, one tensor per cell state; ops whose cell has a single state (``torch.gru``) take
and return that tensor bare, and are adapted here.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

_OPS = {"lstm": torch.lstm, "gru": torch.gru, "rnn_tanh": torch.rnn_tanh, "rnn_relu": torch.rnn_relu}
MODES = tuple(_OPS)  # the vendor ops a cell can name as its vendor_mode
# Ops that take ``hx`` as one tensor rather than a tuple.
_SINGLE_STATE = frozenset({"gru", "rnn_tanh", "rnn_relu"})


def _hx(mode: str, hx: tuple[Tensor, ...]) -> Tensor | tuple[Tensor, ...]:
    return hx[0] if mode in _SINGLE_STATE else hx


def run_padded(
    mode: str,
    x: Tensor,
    hx: tuple[Tensor, ...],
    weights: Sequence[Tensor],
    *,
    bias: bool,
    num_layers: int,
    dropout: float,
    training: bool,
    bidirectional: bool,
    batch_first: bool,
) -> tuple[Tensor, tuple[Tensor, ...]]:
    out = _OPS[mode](x, _hx(mode, hx), weights, bias, num_layers, dropout, training, bidirectional, batch_first)
    return out[0], tuple(out[1:])


def run_packed(
    mode: str,
    data: Tensor,
    batch_sizes: Tensor,
    hx: tuple[Tensor, ...],
    weights: Sequence[Tensor],
    *,
    bias: bool,
    num_layers: int,
    dropout: float,
    training: bool,
    bidirectional: bool,
) -> tuple[Tensor, tuple[Tensor, ...]]:
    out = _OPS[mode](data, batch_sizes, _hx(mode, hx), weights, bias, num_layers, dropout, training, bidirectional)
    return out[0], tuple(out[1:])

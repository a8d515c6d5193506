"""Bindings to the vendor fused recurrent ops (``torch.lstm`` runs oneDNN on CPU, cuDNN on CUDA).

Weights are passed as a flat list in ``torch.nn.LSTM``'s order: for each layer, for each direction,
``weight_ih, weight_hh[, bias_ih, bias_hh][, weight_hr]``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

_OPS = {"lstm": torch.lstm}


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
    out = _OPS[mode](x, hx, weights, bias, num_layers, dropout, training, bidirectional, batch_first)
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
    out = _OPS[mode](data, batch_sizes, hx, weights, bias, num_layers, dropout, training, bidirectional)
    return out[0], tuple(out[1:])

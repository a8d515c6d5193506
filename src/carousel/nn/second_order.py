"""``SecondOrderRNN``: the second-order (multiplicative) recurrent network of Giles et al. (1992) as a
layer. The equations are in :mod:`carousel.cells.second_order`."""

from __future__ import annotations

import torch

from carousel.cells.second_order import SecondOrder
from carousel.ops.activations import Activation
from carousel.runner import dispatch
from carousel.runner.layer import RecurrentLayer


class SecondOrderRNN(RecurrentLayer):
    r"""Multi-layer second-order recurrent network, with ``torch.nn.RNN``'s arguments and returns.

    For each layer and step::

        S_i(t+1) = g( sum_{j,k} W_ijk S_j(t) I_k(t) + b_i )

    Giles, Miller, Chen, Chen, Sun & Lee (1992), "Learning and Extracting Finite State Automata with
    Second-Order Recurrent Neural Networks", Neural Computation 4(3); see
    :class:`carousel.cells.second_order.SecondOrder`, which also explains ``precompute``: the
    transition matrices ``A(t) = W . I(t)`` of all steps are computed before the loop when
    ``T * B * H * H <= max_elements`` (memory ``T * B * H * H``), else ``W`` is contracted inside
    each step (memory as an Elman network).

    Args:
        input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional, device,
        dtype: as ``torch.nn.RNN``.
        nonlinearity: ``g`` (default ``"sigmoid"``).
        precompute, max_elements: as the cell.
        recurrent_dropout: variational dropout on ``S(t)`` fed back (Gal & Ghahramani 2016).
        zoneout: zoneout rate for ``S``.
        init, fast: as :class:`carousel.nn.simple.ElmanRNN`; the reference loop runs.

    Parameters: ``weight_l{k} (H, H, I)``, ``bias_l{k} (H,)`` (``_reverse`` for the backward
    direction). Returns ``output`` ``(T, B, D * H)`` and ``S_n`` ``(D * num_layers, B, H)``; the
    paper's response unit is ``S_0``, i.e. ``S_n[-1, :, 0]`` (or ``output[..., 0]`` at every step).

    Example:
        >>> import torch
        >>> from carousel.nn.second_order import SecondOrderRNN
        >>> rnn = SecondOrderRNN(2, 5, batch_first=True)
        >>> x = torch.nn.functional.one_hot(torch.randint(0, 2, (3, 6)), 2).float()
        >>> s0 = torch.zeros(1, 3, 5)
        >>> s0[..., 0] = 1.0                                  # the paper's S_0(0) = 1
        >>> out, s = rnn(x, s0, lengths=torch.tensor([6, 4, 1]))
        >>> out.shape, s.shape
        (torch.Size([3, 6, 5]), torch.Size([1, 3, 5]))
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
        nonlinearity: Activation = "sigmoid",
        precompute: bool | str = "auto",
        max_elements: int = 2**22,
        recurrent_dropout: float = 0.0,
        zoneout: float = 0.0,
        init: str = "pytorch",
        fast: dispatch.Fast = "auto",
    ) -> None:
        self.hidden_size = hidden_size
        self.bias = bias
        options = dict(nonlinearity=nonlinearity, bias=bias, precompute=precompute, max_elements=max_elements)
        super().__init__(
            lambda k, n: SecondOrder(n, hidden_size, **options),  # type: ignore[arg-type]
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

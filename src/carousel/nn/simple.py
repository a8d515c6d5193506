"""Simple recurrent networks as layers: ``ElmanRNN`` (a drop-in for ``torch.nn.RNN``), ``JordanRNN``,
``FullyRecurrentRNN`` and ``RecurrentMLP``. The equations are in :mod:`carousel.cells.simple`."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from carousel.cells.simple import Elman, FullyRecurrent, Jordan
from carousel.cells.simple import RecurrentMLP as RecurrentMLPStep
from carousel.ops.activations import Activation
from carousel.runner import dispatch
from carousel.runner.layer import RecurrentLayer


class ElmanRNN(RecurrentLayer):
    r"""Multi-layer Elman network with ``torch.nn.RNN``'s arguments, returns and parameter names.

    For each layer and step::

        h_t = sigma_h(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)

    Elman (1990), "Finding Structure in Time", Cognitive Science 14(2); see
    :class:`carousel.cells.simple.Elman`.

    Args:
        input_size, hidden_size, num_layers, nonlinearity, bias, batch_first, dropout,
        bidirectional, device, dtype: as ``torch.nn.RNN``; ``nonlinearity`` may also be any
            activation name of :mod:`carousel.ops.activations` or a callable.
        recurrent_dropout: variational dropout on ``h_{t-1}`` (Gal & Ghahramani 2016).
        zoneout: zoneout rate for ``h`` (Krueger et al. 2016).
        init: ``"pytorch"`` (U(-1/sqrt(H), 1/sqrt(H)), as ``torch.nn.RNN``) or ``"keras"``.
        fast: as :class:`carousel.nn.LSTM`: ``"auto"`` runs torch's fused ``rnn_tanh`` /
            ``rnn_relu`` when the configuration is exactly theirs, else the reference loop.

    Shapes: input ``(T, B, I)`` (``(B, T, I)`` if ``batch_first``), ``(T, I)`` unbatched, or a
    ``PackedSequence``; ``h_0`` of shape ``(D * num_layers, B, H)``. Returns ``output, h_n`` as
    ``torch.nn.RNN``. ``forward(x, h_0, lengths=...)`` or ``mask=...`` runs right-padded batches.

    Example:
        >>> import torch
        >>> from carousel.nn.simple import ElmanRNN
        >>> rnn = ElmanRNN(10, 20, num_layers=2, nonlinearity="relu", batch_first=True)
        >>> rnn.load_state_dict(torch.nn.RNN(10, 20, num_layers=2, nonlinearity="relu").state_dict())
        <All keys matched successfully>
        >>> out, h = rnn(torch.randn(3, 7, 10), lengths=torch.tensor([7, 5, 2]))
        >>> out.shape, h.shape
        (torch.Size([3, 7, 20]), torch.Size([2, 3, 20]))
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        nonlinearity: Activation = "tanh",
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        *,
        recurrent_dropout: float = 0.0,
        zoneout: float = 0.0,
        init: str = "pytorch",
        fast: dispatch.Fast = "auto",
    ) -> None:
        self.hidden_size = hidden_size
        self.nonlinearity = nonlinearity
        self.bias = bias
        super().__init__(
            lambda k, n: Elman(n, hidden_size, nonlinearity=nonlinearity, bias=bias),
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


class JordanRNN(RecurrentLayer):
    r"""Jordan network: the state units are fed from the output layer and from themselves.

    For each layer and step (``mu`` = ``decay``, fixed)::

        s_t = mu s_{t-1} + y_{t-1}
        h_t = sigma_h(W_ih x_t + W_sh s_t + b_ih)
        y_t = sigma_y(W_ho h_t + b_ho)

    Jordan (1986), "Serial Order: A Parallel Distributed Processing Approach", ICS Report 8604;
    see :class:`carousel.cells.simple.Jordan`. The state carried between steps is
    ``c_t = mu c_{t-1} + y_t`` (= ``s_{t+1}``), one tensor of ``output_size`` features.

    Args:
        input_size: features of the input.
        hidden_size: hidden units per layer.
        output_size: output (and state) units per layer; layer ``k > 0`` reads ``D * output_size``.
        num_layers, bias, batch_first, dropout, bidirectional, device, dtype: as ``torch.nn.RNN``.
        decay: ``mu`` in ``[0, 1)`` (default 0.5).
        nonlinearity, output_activation: ``sigma_h`` and ``sigma_y`` (default ``"tanh"`` both).
        recurrent_dropout: variational dropout on the fed-back state; only with ``decay=0``.
        init, fast: as :class:`ElmanRNN`.

    Shapes: input as :class:`ElmanRNN`; ``c_0`` of shape ``(D * num_layers, B, output_size)``.
    Returns ``output`` ``(T, B, D * output_size)`` and ``c_n``.

    Example:
        >>> import torch
        >>> from carousel.nn.simple import JordanRNN
        >>> rnn = JordanRNN(3, 16, 2, decay=0.5, batch_first=True)
        >>> out, c = rnn(torch.randn(4, 9, 3))
        >>> out.shape, c.shape
        (torch.Size([4, 9, 2]), torch.Size([1, 4, 2]))
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        output_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        *,
        decay: float = 0.5,
        nonlinearity: Activation = "tanh",
        output_activation: Activation = "tanh",
        recurrent_dropout: float = 0.0,
        init: str = "pytorch",
        fast: dispatch.Fast = "auto",
    ) -> None:
        self.hidden_size = hidden_size
        self.output_size = output_size
        self.bias = bias
        options = dict(decay=decay, nonlinearity=nonlinearity, output_activation=output_activation, bias=bias)
        super().__init__(
            lambda k, n: Jordan(n, hidden_size, output_size, **options),  # type: ignore[arg-type]
            input_size,
            num_layers,
            bidirectional=bidirectional,
            batch_first=batch_first,
            dropout=dropout,
            recurrent_dropout=recurrent_dropout,
            init=init,
            fast=fast,
            device=device,
            dtype=dtype,
        )


class FullyRecurrentRNN(RecurrentLayer):
    r"""Fully recurrent network: all ``N`` units receive all units' previous activations and the
    inputs; the first ``output_size`` units are the outputs.

    For each layer and step::

        a_t = sigma_h(W_ih x_t + W_hh a_{t-1} + b)
        y_t = a_t[:output_size]

    Williams & Zipser (1989), "A Learning Algorithm for Continually Running Fully Recurrent Neural
    Networks", Neural Computation 1(2); see :class:`carousel.cells.simple.FullyRecurrent`.

    Args:
        input_size: features of the input.
        hidden_size: units ``N`` per layer.
        output_size: visible units per layer (None: all ``N``).
        num_layers, nonlinearity, bias, batch_first, dropout, bidirectional, device, dtype:
            as ``torch.nn.RNN``.
        recurrent_dropout, zoneout, init, fast: as :class:`ElmanRNN` (zoneout needs
            ``output_size == hidden_size``).

    Shapes: ``a_0`` of shape ``(D * num_layers, B, N)``. Returns ``output`` ``(T, B, D * output_size)``
    and ``a_n`` ``(D * num_layers, B, N)``.

    Example:
        >>> import torch
        >>> from carousel.nn.simple import FullyRecurrentRNN
        >>> rnn = FullyRecurrentRNN(3, 12, output_size=2)
        >>> out, a = rnn(torch.randn(9, 4, 3))
        >>> out.shape, a.shape
        (torch.Size([9, 4, 2]), torch.Size([1, 4, 12]))
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        output_size: int | None = None,
        num_layers: int = 1,
        nonlinearity: Activation = "tanh",
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        *,
        recurrent_dropout: float = 0.0,
        zoneout: float = 0.0,
        init: str = "pytorch",
        fast: dispatch.Fast = "auto",
    ) -> None:
        self.hidden_size = hidden_size
        self.output_size = hidden_size if output_size is None else output_size
        self.bias = bias
        super().__init__(
            lambda k, n: FullyRecurrent(n, hidden_size, output_size, nonlinearity=nonlinearity, bias=bias),
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


class RecurrentMLP(RecurrentLayer):
    r"""Recurrent multilayer perceptron (RMLP): layers with within-layer recurrence, advanced
    together at every step, and an optional feed-forward output layer.

    For each step (``h^0_t = x_t``)::

        h^l_t = sigma_h(W^l h^{l-1}_t + U^l h^l_{t-1} + b^l)      l = 1..L
        y_t   = sigma_y(W^o h^L_t + b^o)                          (y_t = h^L_t without output_size)

    Puskorius & Feldkamp (1994), "Neurocontrol of Nonlinear Dynamical Systems with Kalman Filter
    Trained Recurrent Networks", IEEE Transactions on Neural Networks 5(2); see
    :class:`carousel.cells.simple.RecurrentMLP`. ``RecurrentMLP(4, (20, 20), output_size=1)`` is
    their ``4-20R-20R-1`` network.

    Args:
        input_size: features of the input.
        hidden_sizes: units of each recurrent layer of the RMLP, bottom to top.
        output_size: size of a feed-forward output layer on top (None: none).
        num_layers, bias, batch_first, dropout, bidirectional, device, dtype: as ``torch.nn.RNN``;
            ``num_layers`` stacks whole RMLPs.
        nonlinearity, output_activation: ``sigma_h`` (default ``"tanh"``) and ``sigma_y`` (default
            ``"identity"``).
        recurrent_dropout, zoneout, init, fast: as :class:`ElmanRNN`.

    State: a tuple ``(h0, h1, ...)`` with one tensor per recurrent layer, each of shape
    ``(D * num_layers, B, hidden_sizes[l])``.

    Example:
        >>> import torch
        >>> from carousel.nn.simple import RecurrentMLP
        >>> rmlp = RecurrentMLP(4, (20, 20), output_size=1)
        >>> out, (h0, h1) = rmlp(torch.randn(9, 2, 4))
        >>> out.shape, h1.shape
        (torch.Size([9, 2, 1]), torch.Size([1, 2, 20]))
    """

    def __init__(
        self,
        input_size: int,
        hidden_sizes: Sequence[int],
        output_size: int | None = None,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        *,
        nonlinearity: Activation = "tanh",
        output_activation: Activation = "identity",
        recurrent_dropout: float = 0.0,
        zoneout: float | Sequence[float] = 0.0,
        init: str = "pytorch",
        fast: dispatch.Fast = "auto",
    ) -> None:
        self.hidden_sizes = hidden_sizes
        self.output_size = output_size
        self.bias = bias
        options = dict(nonlinearity=nonlinearity, output_activation=output_activation, bias=bias)
        super().__init__(
            lambda k, n: RecurrentMLPStep(n, hidden_sizes, output_size, **options),  # type: ignore[arg-type]
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

"""Continuous-time recurrent layers: ``CTRNN`` (Beer 1995, forward Euler) and ``MTRNN`` (Yamashita &
Tani 2008, multiple timescales). The equations are in :mod:`carousel.cells.ctrnn`."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from carousel.cells.ctrnn import CTRNN as CTRNNStep
from carousel.cells.ctrnn import MTRNN as MTRNNStep
from carousel.ops.activations import Activation
from carousel.runner import dispatch
from carousel.runner.layer import RecurrentLayer


class CTRNN(RecurrentLayer):
    r"""Multi-layer continuous-time recurrent network, integrated with forward Euler.

    For each layer and step (``(.)`` the elementwise product)::

        tau_i dy_i/dt = -y_i + sum_j w_ji sigma(y_j + theta_j) + I_i(t)          (Beer 1995)
        y_t = y_{t-1} + (dt / tau) (.) (-y_{t-1} + W sigma(y_{t-1} + theta) + W_in x_t + b)

    Beer (1995), "On the Dynamics of Small Continuous-Time Recurrent Neural Networks", Adaptive
    Behavior 3(4); see :class:`carousel.cells.ctrnn.CTRNN`.

    Args:
        input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional, device,
        dtype: as ``torch.nn.RNN``.
        dt: Euler step (default 1.0).
        tau: time constant(s), one number or one per neuron (default 1.0).
        learn_tau: learn ``tau`` (as ``log_tau_l{k}``; ``tau = max(exp(log_tau), dt)``).
        nonlinearity: ``sigma`` (default ``"sigmoid"``).
        zoneout: zoneout rate for ``y``. ``recurrent_dropout`` is not offered: ``y`` is the memory.
        init, fast: as :class:`carousel.nn.simple.ElmanRNN`; the reference loop runs.

    Parameters: ``weight_ih_l{k} (H, I)``, ``weight_hh_l{k} (H, H)``, ``theta_l{k} (H,)``,
    ``bias_ih_l{k} (H,)``, ``log_tau_l{k} (H,)`` (``_reverse`` for the backward direction).
    Shapes as ``torch.nn.RNN``: returns ``output`` ``(T, B, D * H)`` (the potentials ``y_t``) and
    ``y_n`` ``(D * num_layers, B, H)``.

    Example:
        >>> import torch
        >>> from carousel.nn.ctrnn import CTRNN
        >>> rnn = CTRNN(2, 8, dt=0.1, tau=1.0, learn_tau=True, batch_first=True)
        >>> out, y = rnn(torch.randn(4, 30, 2))
        >>> out.shape, y.shape
        (torch.Size([4, 30, 8]), torch.Size([1, 4, 8]))
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
        dt: float = 1.0,
        tau: float | Sequence[float] = 1.0,
        learn_tau: bool = False,
        nonlinearity: Activation = "sigmoid",
        zoneout: float = 0.0,
        init: str = "pytorch",
        fast: dispatch.Fast = "auto",
    ) -> None:
        self.hidden_size = hidden_size
        self.bias = bias
        options = dict(dt=dt, tau=tau, learn_tau=learn_tau, nonlinearity=nonlinearity, bias=bias)
        super().__init__(
            lambda k, n: CTRNNStep(n, hidden_size, **options),  # type: ignore[arg-type]
            input_size,
            num_layers,
            bidirectional=bidirectional,
            batch_first=batch_first,
            dropout=dropout,
            zoneout=zoneout,
            init=init,
            fast=fast,
            device=device,
            dtype=dtype,
        )


class MTRNN(RecurrentLayer):
    r"""Multiple-timescale recurrent network: output, fast context and slow context units.

    For each layer and step (``sigma`` the context activation, ``sigma_o`` the output one)::

        u^f_t = (1 - 1/tau_f) u^f_{t-1} + (1/tau_f) (W_fi x_t + W_ff sigma(u^f_{t-1}) + W_fs sigma(u^s_{t-1}) + b_f)
        u^s_t = (1 - 1/tau_s) u^s_{t-1} + (1/tau_s) (W_sf sigma(u^f_{t-1}) + W_ss sigma(u^s_{t-1}) + b_s)
        u^o_t = (1 - 1/tau_o) u^o_{t-1} + (1/tau_o) (W_of sigma(u^f_t) + b_o)
        y_t   = sigma_o(u^o_t)

    Yamashita & Tani (2008), "Emergence of Functional Hierarchy in a Multiple Timescale Neural
    Network Model: A Humanoid Robot Experiment", PLoS Computational Biology 4(11): time constants
    2 (input-output), 5 (fast) and 70 (slow); the input-output units and the slow units are not
    connected. See :class:`carousel.cells.ctrnn.MTRNN`.

    Args:
        input_size: features of the input.
        output_size: output units per layer; layer ``k > 0`` reads ``D * output_size``.
        fast_size, slow_size: context units per layer.
        num_layers, batch_first, dropout, bidirectional, device, dtype: as ``torch.nn.RNN``.
        tau_io, tau_fast, tau_slow: time constants (defaults 2, 5, 70).
        output_activation: ``"softmax"`` (default), ``"tanh"``, ``"sigmoid"`` or ``"identity"``.
        nonlinearity: ``sigma`` (default ``"sigmoid"``).
        init, fast: as :class:`carousel.nn.simple.ElmanRNN`; the reference loop runs.

    State: ``(u_o, u_f, u_s)``, of shapes ``(D * num_layers, B, output_size | fast_size | slow_size)``;
    set ``u_s`` of the initial state to give each sequence its own slow context, as the paper does.
    Returns ``output`` ``(T, B, D * output_size)`` and the final state.

    Example:
        >>> import torch
        >>> from carousel.nn.ctrnn import MTRNN
        >>> net = MTRNN(4, 4, fast_size=16, slow_size=4, output_activation="tanh")
        >>> u0 = (torch.zeros(1, 3, 4), torch.zeros(1, 3, 16), torch.randn(1, 3, 4))
        >>> out, (u_o, u_f, u_s) = net(torch.randn(20, 3, 4), u0)
        >>> out.shape, u_s.shape
        (torch.Size([20, 3, 4]), torch.Size([1, 3, 4]))
    """

    def __init__(
        self,
        input_size: int,
        output_size: int,
        fast_size: int,
        slow_size: int,
        num_layers: int = 1,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        *,
        tau_io: float = 2.0,
        tau_fast: float = 5.0,
        tau_slow: float = 70.0,
        output_activation: str = "softmax",
        nonlinearity: Activation = "sigmoid",
        init: str = "pytorch",
        fast: dispatch.Fast = "auto",
    ) -> None:
        self.output_size = output_size
        self.fast_size = fast_size
        self.slow_size = slow_size
        options = dict(
            tau_io=tau_io,
            tau_fast=tau_fast,
            tau_slow=tau_slow,
            output_activation=output_activation,
            nonlinearity=nonlinearity,
        )
        super().__init__(
            lambda k, n: MTRNNStep(n, output_size, fast_size, slow_size, **options),  # type: ignore[arg-type]
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

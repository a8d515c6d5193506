r"""Continuous-time recurrent networks, integrated with a fixed step: CTRNN and MTRNN.

Notation (``sigma`` the unit's activation, ``(.)`` the elementwise product)::

    CTRNN (Beer 1995), continuous time:
        tau_i dy_i/dt = -y_i + sum_j w_ji sigma(y_j + theta_j) + I_i(t)
    forward Euler with step dt, I_t = W_in x_t + b:
        y_t = y_{t-1} + (dt / tau) (.) (-y_{t-1} + W sigma(y_{t-1} + theta) + W_in x_t + b)

    MTRNN (Yamashita & Tani 2008), leaky integrators, unit i with time constant tau_i:
        u_{i,t} = (1 - 1/tau_i) u_{i,t-1} + (1/tau_i) (sum_j w_ij a_{j} + b_i)
    with input -> fast, fast <-> fast, fast <-> slow, slow <-> slow, fast -> output; no
    connection between the input-output units and the slow units.

Beer (1995), "On the Dynamics of Small Continuous-Time Recurrent Neural Networks", Adaptive
Behavior 3(4); Yamashita & Tani (2008), "Emergence of Functional Hierarchy in a Multiple Timescale
Neural Network Model: A Humanoid Robot Experiment", PLoS Computational Biology 4(11).

Neither cell has a vendor fused op nor a fused engine; both run on the reference loop of
:mod:`carousel.runner`. Their states are membrane potentials read both through the activation of
a recurrent product and as leaky memory, so there is no state that variational dropout could mask
without also erasing memory: ``dropout_states`` is empty and the runner refuses
``recurrent_dropout``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from carousel.cells.base import Cell, Params, State
from carousel.cells.simple import _activation_repr, _affine, _check_init, _check_size
from carousel.ops.activations import Activation, resolve_activation


def _check_positive(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 < float(value) < math.inf:
        raise ValueError(f"{name}: expected a finite number > 0, got {value!r}")
    return float(value)


def _check_taus(value: object, hidden_size: int) -> tuple[float, ...]:
    """One time constant for all units, or one per unit."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return (_check_positive("tau", value),) * hidden_size
    if isinstance(value, (tuple, list)) and len(value) == hidden_size:
        return tuple(_check_positive("tau", v) for v in value)
    raise ValueError(f"tau: expected a number > 0 or {hidden_size} numbers > 0 (one per unit), got {value!r}")


class CTRNN(Cell):
    r"""One forward-Euler step of a continuous-time recurrent neural network (CTRNN).

    The network of Beer (1995) is the system of ODEs::

        tau_i dy_i/dt = -y_i + sum_j w_ji sigma(y_j + theta_j) + I_i(t)

    with ``y_i`` the state (mean membrane potential) of neuron ``i``, ``tau_i > 0`` its time
    constant, ``theta_j`` a bias inside the activation, ``w_ji`` the weight from ``j`` to ``i`` and
    ``I_i`` the external input. The input is held constant over a step, ``I_t = W_in x_t + b``, and
    the system is integrated with forward Euler and step ``dt``::

        y_t = y_{t-1} + (dt / tau) (.) (-y_{t-1} + W sigma(y_{t-1} + theta) + W_in x_t + b)

    The step is stable for ``dt / tau_i <= 1`` (at ``dt = tau`` it is an Elman-like update of the
    potentials); with ``learn_tau=True`` the time constants are ``tau = max(exp(log_tau), dt)``.
    Beer (1995), "On the Dynamics of Small Continuous-Time Recurrent Neural Networks", Adaptive
    Behavior 3(4).

    Args:
        input_size: features of ``x_t``.
        hidden_size: neurons ``H``.
        dt: integration step (default 1.0).
        tau: time constant(s): one number, or one per neuron (default 1.0 each).
        learn_tau: learn the time constants (stored as ``log_tau``, initialised from ``tau``);
            False keeps them fixed at ``tau`` (no parameter).
        nonlinearity: ``sigma`` (default ``"sigmoid"``, Beer's logistic function).
        bias: learn ``b`` (``bias_ih``), the constant part of ``I``.

    Parameters: ``weight_ih (H, I)`` (``W_in``), ``weight_hh (H, H)`` (``W``, row ``i`` holds
    ``w_ji``), ``theta (H,)``, ``bias_ih (H,)``, and ``log_tau (H,)`` with ``learn_tau``.
    State: ``(y,)`` of size ``H``; the output ``y_t`` is the state. Firing rates are
    ``sigma(y_t + theta)``; a readout is the model's head.

    Example:
        >>> import torch
        >>> from carousel.cells.ctrnn import CTRNN
        >>> cell = CTRNN(3, 4, dt=0.5, tau=(1.0, 2.0, 4.0, 8.0), learn_tau=True)
        >>> params = {n: torch.empty(s) for n, s in cell.parameter_shapes().items()}
        >>> cell.reset_parameters(params, "pytorch")
        >>> params["log_tau"].exp()
        tensor([1., 2., 4., 8.])
        >>> xp = cell.project(params, torch.randn(5, 2, 3))   # W_in x_t + b for all steps at once
        >>> y, state = cell.step(params, xp[0], cell.init_state(2, dtype=xp.dtype, device=xp.device))
        >>> y.shape
        torch.Size([2, 4])
    """

    state_names = ("y",)
    output_state = 0
    dropout_states = ()
    vendor_mode = None

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        *,
        dt: float = 1.0,
        tau: float | Sequence[float] = 1.0,
        learn_tau: bool = False,
        nonlinearity: Activation = "sigmoid",
        bias: bool = True,
    ) -> None:
        self.input_size = _check_size("input_size", input_size, 1)
        self.hidden_size = _check_size("hidden_size", hidden_size, 1)
        self.dt = _check_positive("dt", dt)
        self.tau = _check_taus(tau, hidden_size)
        self.learn_tau = bool(learn_tau)
        self.nonlinearity = nonlinearity
        self._sigma = resolve_activation(nonlinearity, "nonlinearity")
        self.bias = bool(bias)
        self.output_size = hidden_size
        self.state_sizes = (hidden_size,)

    def parameter_shapes(self) -> dict[str, tuple[int, ...]]:
        H = self.hidden_size
        shapes: dict[str, tuple[int, ...]] = {"weight_ih": (H, self.input_size), "weight_hh": (H, H), "theta": (H,)}
        if self.bias:
            shapes["bias_ih"] = (H,)
        if self.learn_tau:
            shapes["log_tau"] = (H,)
        return shapes

    @torch.no_grad()
    def reset_parameters(self, params: dict[str, Tensor], init: str) -> None:
        """``log_tau = log(tau)`` under both schemes. ``"pytorch"``: the others ~ U(-1/sqrt(H), 1/sqrt(H)).
        ``"keras"``: Glorot-uniform ``W_in``, orthogonal ``W``, ``theta = b = 0``."""
        _check_init(init)
        stdv = 1.0 / math.sqrt(self.hidden_size)
        for name, p in params.items():
            if name == "log_tau":
                p.copy_(torch.tensor(self.tau, dtype=p.dtype).log())
            elif init == "pytorch":
                p.uniform_(-stdv, stdv)
            elif name == "weight_hh":
                torch.nn.init.orthogonal_(p)
            elif name == "weight_ih":
                torch.nn.init.xavier_uniform_(p)
            else:
                p.zero_()

    def vendor_refusal(self) -> str | None:
        return "no vendor fused op integrates a continuous-time network"

    def time_constants(self, params: Params, like: Tensor) -> Tensor:
        """``tau`` as a ``(H,)`` tensor: ``max(exp(log_tau), dt)`` when learned, else the fixed values."""
        if self.learn_tau:
            return params["log_tau"].exp().clamp(min=self.dt)
        return like.new_tensor(self.tau)

    def project(self, params: Params, x: Tensor) -> Tensor:
        """``W_in x_t + b`` for every step at once."""
        return _affine(x, params["weight_ih"], params["bias_ih"] if self.bias else None)

    def step(self, params: Params, x_t: Tensor, state: State) -> tuple[Tensor, State]:
        y = state[0]
        rate = self.dt / self.time_constants(params, x_t)
        drive = torch.matmul(self._sigma(y + params["theta"]), params["weight_hh"].t()) + x_t
        y = y + rate * (drive - y)
        return y, (y,)

    def __repr__(self) -> str:
        opts = [f"{self.input_size}, {self.hidden_size}", f"dt={self.dt:g}"]
        taus = set(self.tau)
        opts.append(f"tau={self.tau[0]:g}" if len(taus) == 1 else "tau=(...)")
        if self.learn_tau:
            opts.append("learn_tau=True")
        if self.nonlinearity != "sigmoid":
            opts.append(f"nonlinearity={_activation_repr(self.nonlinearity)}")
        if not self.bias:
            opts.append("bias=False")
        return f"CTRNN({', '.join(opts)})"


_OUTPUTS = ("softmax", "tanh", "sigmoid", "identity")


class MTRNN(Cell):
    r"""One step of a multiple-timescale recurrent neural network (MTRNN).

    Three groups of leaky-integrator units: output units ``o`` (time constant ``tau_io``, 2 in the
    paper), fast context units ``f`` (``tau_fast``, 5) and slow context units ``s`` (``tau_slow``,
    70). Each unit integrates its synaptic input with its own time constant::

        u_{i,t} = (1 - 1/tau_i) u_{i,t-1} + (1/tau_i) (sum_j w_ij a_j + b_i)

    Yamashita & Tani (2008), "Emergence of Functional Hierarchy in a Multiple Timescale Neural
    Network Model: A Humanoid Robot Experiment", PLoS Computational Biology 4(11). The paper's
    connectivity: the input-output units connect with the fast context units only, the fast units
    with themselves and the slow units, the slow units with themselves and the fast units; there is
    no connection between the input-output and the slow units. Written out, with ``x_t`` the
    external input (the paper's input units), ``sigma`` the context activation::

        u^f_t = (1 - 1/tau_f) u^f_{t-1} + (1/tau_f) (W_fi x_t + W_ff sigma(u^f_{t-1}) + W_fs sigma(u^s_{t-1}) + b_f)
        u^s_t = (1 - 1/tau_s) u^s_{t-1} + (1/tau_s) (W_sf sigma(u^f_{t-1}) + W_ss sigma(u^s_{t-1}) + b_s)
        u^o_t = (1 - 1/tau_o) u^o_{t-1} + (1/tau_o) (W_of sigma(u^f_t) + b_o)
        y_t   = sigma_o(u^o_t)

    The context units update together from the previous step's activations, as in the paper; the
    output units then read the fast units just computed, so ``y_t`` (e.g. the prediction of
    ``x_{t+1}``) depends on ``x_1 .. x_t``. ``sigma_o`` is the paper's softmax (taken over all
    output units, e.g. one sparsely coded group), or ``"tanh"``, ``"sigmoid"``, ``"identity"``.
    The paper learns the initial slow potentials per sequence; pass them as the initial state.

    Args:
        input_size: features of ``x_t``.
        output_size: output units ``O``.
        fast_size: fast context units ``F``.
        slow_size: slow context units ``S``.
        tau_io, tau_fast, tau_slow: time constants, each ``>= 1`` (defaults 2, 5, 70).
        output_activation: ``sigma_o``: ``"softmax"`` (default), ``"tanh"``, ``"sigmoid"`` or ``"identity"``.
        nonlinearity: ``sigma`` of the context units (default ``"sigmoid"``).

    Parameters: ``weight_fi (F, I)``, ``weight_ff (F, F)``, ``weight_fs (F, S)``, ``weight_sf (S, F)``,
    ``weight_ss (S, S)``, ``weight_of (O, F)``, ``bias_f (F,)``, ``bias_s (S,)``, ``bias_o (O,)``.
    State: ``(u_o, u_f, u_s)`` of sizes ``(O, F, S)`` (potentials, before the activations).

    Example:
        >>> import torch
        >>> from carousel.cells.ctrnn import MTRNN
        >>> cell = MTRNN(3, 3, fast_size=8, slow_size=2)
        >>> params = {n: torch.empty(s) for n, s in cell.parameter_shapes().items()}
        >>> cell.reset_parameters(params, "pytorch")
        >>> xp = cell.project(params, torch.randn(5, 2, 3))
        >>> y, state = cell.step(params, xp[0], cell.init_state(2, dtype=xp.dtype, device=xp.device))
        >>> y.shape, [s.shape[-1] for s in state], bool(torch.allclose(y.sum(-1), torch.ones(2)))
        (torch.Size([2, 3]), [3, 8, 2], True)
    """

    state_names = ("u_o", "u_f", "u_s")
    output_state = None
    dropout_states = ()
    vendor_mode = None

    def __init__(
        self,
        input_size: int,
        output_size: int,
        fast_size: int,
        slow_size: int,
        *,
        tau_io: float = 2.0,
        tau_fast: float = 5.0,
        tau_slow: float = 70.0,
        output_activation: str = "softmax",
        nonlinearity: Activation = "sigmoid",
    ) -> None:
        self.input_size = _check_size("input_size", input_size, 1)
        self.output_size = _check_size("output_size", output_size, 1)
        self.fast_size = _check_size("fast_size", fast_size, 1)
        self.slow_size = _check_size("slow_size", slow_size, 1)
        for name, value in (("tau_io", tau_io), ("tau_fast", tau_fast), ("tau_slow", tau_slow)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 1.0 <= float(value) < math.inf:
                raise ValueError(f"{name}: expected a finite number >= 1, got {value!r}")
        self.tau_io, self.tau_fast, self.tau_slow = float(tau_io), float(tau_fast), float(tau_slow)
        if output_activation not in _OUTPUTS:
            raise ValueError(f"output_activation: expected one of {list(_OUTPUTS)}, got {output_activation!r}")
        self.output_activation = output_activation
        self._sigma_o = (
            (lambda u: torch.softmax(u, dim=-1))
            if output_activation == "softmax"
            else resolve_activation(output_activation, "output_activation")
        )
        self.nonlinearity = nonlinearity
        self._sigma = resolve_activation(nonlinearity, "nonlinearity")
        self.state_sizes = (self.output_size, self.fast_size, self.slow_size)

    def parameter_shapes(self) -> dict[str, tuple[int, ...]]:
        n_o, n_f, n_s = self.output_size, self.fast_size, self.slow_size
        return {
            "weight_fi": (n_f, self.input_size),
            "weight_ff": (n_f, n_f),
            "weight_fs": (n_f, n_s),
            "weight_sf": (n_s, n_f),
            "weight_ss": (n_s, n_s),
            "weight_of": (n_o, n_f),
            "bias_f": (n_f,),
            "bias_s": (n_s,),
            "bias_o": (n_o,),
        }

    @torch.no_grad()
    def reset_parameters(self, params: dict[str, Tensor], init: str) -> None:
        """``"pytorch"``: every weight and bias ~ U(-1/sqrt(n), 1/sqrt(n)), ``n`` its fan-in.
        ``"keras"``: Glorot-uniform weights (orthogonal ``weight_ff``, ``weight_ss``), zero biases."""
        _check_init(init)
        fan_in = {"f": self.fast_size + self.slow_size, "s": self.fast_size + self.slow_size, "o": self.fast_size}
        for name, p in params.items():
            if init == "pytorch":
                stdv = 1.0 / math.sqrt(fan_in[name[-1]] if name.startswith("bias") else p.shape[1])
                p.uniform_(-stdv, stdv)
            elif name in ("weight_ff", "weight_ss"):
                torch.nn.init.orthogonal_(p)
            elif name.startswith("weight"):
                torch.nn.init.xavier_uniform_(p)
            else:
                p.zero_()

    def vendor_refusal(self) -> str | None:
        return "no vendor fused op computes a multiple-timescale network"

    def project(self, params: Params, x: Tensor) -> Tensor:
        """``W_fi x_t + b_f`` for every step at once (the input reaches the fast units only)."""
        return _affine(x, params["weight_fi"], params["bias_f"])

    def step(self, params: Params, x_t: Tensor, state: State) -> tuple[Tensor, State]:
        u_o, u_f, u_s = state
        a_f, a_s = self._sigma(u_f), self._sigma(u_s)
        in_f = x_t + torch.matmul(a_f, params["weight_ff"].t()) + torch.matmul(a_s, params["weight_fs"].t())
        in_s = _affine(a_s, params["weight_ss"], params["bias_s"]) + torch.matmul(a_f, params["weight_sf"].t())
        u_f = u_f + (in_f - u_f) / self.tau_fast
        u_s = u_s + (in_s - u_s) / self.tau_slow
        in_o = _affine(self._sigma(u_f), params["weight_of"], params["bias_o"])
        u_o = u_o + (in_o - u_o) / self.tau_io
        return self._sigma_o(u_o), (u_o, u_f, u_s)

    def __repr__(self) -> str:
        opts = [
            f"{self.input_size}, {self.output_size}, fast_size={self.fast_size}, slow_size={self.slow_size}",
            f"tau=({self.tau_io:g}, {self.tau_fast:g}, {self.tau_slow:g})",
        ]
        if self.output_activation != "softmax":
            opts.append(f"output_activation={self.output_activation!r}")
        if self.nonlinearity != "sigmoid":
            opts.append(f"nonlinearity={_activation_repr(self.nonlinearity)}")
        return f"MTRNN({', '.join(opts)})"

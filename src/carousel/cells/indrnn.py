r"""The independently recurrent neural network (IndRNN): each unit sees only its own past.

Notation (per time step :math:`t`, :math:`\odot` the elementwise product)::

    h_t = sigma(W x_t + u (.) h_{t-1} + b)        u: one recurrent weight per unit

Li, Li, Cook, Zhu & Gao (2018), "Independently Recurrent Neural Network (IndRNN): Building A
Longer and Deeper RNN", CVPR, arXiv:1803.04831.

With ``sigma = relu``, the gradient through ``T`` steps of unit ``n`` scales as ``u_n^T`` while the
unit is active. The paper keeps it from exploding by constraining ``|u_n| <= U`` with
``U = gamma^(1/T)`` (``gamma`` the largest growth allowed over ``T`` steps; the adding problem uses
``gamma = 2``): :func:`recurrent_bound` computes ``U``. The cell applies the bound in its step
(``u`` is clamped to ``[-U, U]`` before use); the layer :class:`carousel.nn.IndRNN` also projects
its stored ``u`` onto ``[-U, U]`` before each training forward pass, which is the paper's clipping
after every update.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from carousel.cells.base import Cell, Params, State
from carousel.cells.simple import _activation_repr, _affine, _check_init, _check_size
from carousel.ops.activations import Activation, resolve_activation


def recurrent_bound(steps: int, gamma: float = 2.0) -> float:
    """``U = gamma^(1/T)``: the largest ``|u|`` for which ``|u|^T <= gamma`` over ``T = steps``.

    >>> round(recurrent_bound(1000), 6)
    1.000693
    """
    _check_size("steps", steps, 1)
    if isinstance(gamma, bool) or not isinstance(gamma, (int, float)) or not gamma > 0.0:
        raise ValueError(f"gamma: expected a number > 0, got {gamma!r}")
    return float(gamma) ** (1.0 / steps)


def _check_range(name: str, value: object) -> tuple[float, float]:
    ok = (
        isinstance(value, (tuple, list))
        and len(value) == 2
        and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
        and value[0] <= value[1]
    )
    if not ok:
        raise ValueError(f"{name}: expected a pair (low, high) with low <= high, got {value!r}")
    return float(value[0]), float(value[1])  # type: ignore[index]


class IndRNN(Cell):
    r"""One step of an IndRNN layer::

        h_t = sigma(W x_t + u (.) h_{t-1} + b)

    Li, Li, Cook, Zhu & Gao (2018), "Independently Recurrent Neural Network (IndRNN): Building A
    Longer and Deeper RNN", CVPR. Units interact only through the next layer's ``W``.

    Args:
        input_size: features of ``x_t``.
        hidden_size: units ``H``.
        nonlinearity: ``sigma`` (default ``"relu"``, as in the paper; any activation name or callable).
        bias: learn ``b`` (``bias_ih``).
        recurrent_max: ``U``: ``u`` is used clamped to ``[-U, U]`` (None: unconstrained). Take it
            from :func:`recurrent_bound`, ``U = gamma^(1/T)``.
        recurrent_init: ``(low, high)``: ``u`` starts uniform in this range (default ``(0, 1)``),
            then clipped to ``[-U, U]``. The paper draws ``u`` from ``[0, 1]`` for the adding
            problem; for long memory in the last layer it suggests a range close to 1, e.g.
            ``(0.5 ** (1 / T), U)``.

    Parameters: ``weight_ih (H, I)`` (``W``), ``weight_hh (H,)`` (``u``, a vector), ``bias_ih (H,)``.
    State: ``(h,)`` of size ``H``.

    Example:
        >>> import torch
        >>> from carousel.cells.indrnn import IndRNN, recurrent_bound
        >>> cell = IndRNN(3, 4, recurrent_max=recurrent_bound(100))
        >>> params = {n: torch.empty(s) for n, s in cell.parameter_shapes().items()}
        >>> cell.reset_parameters(params, "pytorch")
        >>> params["weight_hh"].shape
        torch.Size([4])
        >>> xp = cell.project(params, torch.randn(5, 2, 3))
        >>> y, state = cell.step(params, xp[0], cell.init_state(2, dtype=xp.dtype, device=xp.device))
        >>> y.shape
        torch.Size([2, 4])
    """

    state_names = ("h",)
    output_state = 0
    dropout_states = (0,)
    vendor_mode = None

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        *,
        nonlinearity: Activation = "relu",
        bias: bool = True,
        recurrent_max: float | None = None,
        recurrent_init: tuple[float, float] = (0.0, 1.0),
    ) -> None:
        self.input_size = _check_size("input_size", input_size, 1)
        self.hidden_size = _check_size("hidden_size", hidden_size, 1)
        self.nonlinearity = nonlinearity
        self._sigma = resolve_activation(nonlinearity, "nonlinearity")
        self.bias = bool(bias)
        if recurrent_max is not None and (
            isinstance(recurrent_max, bool)
            or not isinstance(recurrent_max, (int, float))
            or not 0.0 < recurrent_max < math.inf
        ):
            raise ValueError(f"recurrent_max: expected a finite number > 0 or None, got {recurrent_max!r}")
        self.recurrent_max = None if recurrent_max is None else float(recurrent_max)
        self.recurrent_init = _check_range("recurrent_init", recurrent_init)
        self.output_size = hidden_size
        self.state_sizes = (hidden_size,)

    def parameter_shapes(self) -> dict[str, tuple[int, ...]]:
        H = self.hidden_size
        shapes: dict[str, tuple[int, ...]] = {"weight_ih": (H, self.input_size), "weight_hh": (H,)}
        if self.bias:
            shapes["bias_ih"] = (H,)
        return shapes

    @torch.no_grad()
    def reset_parameters(self, params: dict[str, Tensor], init: str) -> None:
        """``u`` ~ U(recurrent_init), clipped to ``[-U, U]``, under both schemes. ``W``: ``"pytorch"``
        U(-1/sqrt(H), 1/sqrt(H)) (and the same for ``b``); ``"keras"`` Glorot-uniform, ``b = 0``."""
        _check_init(init)
        stdv = 1.0 / math.sqrt(self.hidden_size)
        for name, p in params.items():
            if name == "weight_hh":
                p.uniform_(*self.recurrent_init)
                self.constrain_(p)
            elif init == "pytorch":
                p.uniform_(-stdv, stdv)
            elif name == "weight_ih":
                torch.nn.init.xavier_uniform_(p)
            else:
                p.zero_()

    @torch.no_grad()
    def constrain_(self, u: Tensor) -> Tensor:
        """Project a stored recurrent weight vector onto ``[-U, U]`` in place (no-op without ``U``)."""
        if self.recurrent_max is not None:
            u.clamp_(-self.recurrent_max, self.recurrent_max)
        return u

    def vendor_refusal(self) -> str | None:
        return "no vendor fused op computes an IndRNN (its recurrent weight is a vector)"

    def project(self, params: Params, x: Tensor) -> Tensor:
        """``W x_t + b`` for every step at once."""
        return _affine(x, params["weight_ih"], params["bias_ih"] if self.bias else None)

    def step(self, params: Params, x_t: Tensor, state: State) -> tuple[Tensor, State]:
        u = params["weight_hh"]
        if self.recurrent_max is not None:
            u = u.clamp(-self.recurrent_max, self.recurrent_max)
        h = self._sigma(x_t + u * state[0])
        return h, (h,)

    def __repr__(self) -> str:
        opts = [f"{self.input_size}, {self.hidden_size}"]
        if self.nonlinearity != "relu":
            opts.append(f"nonlinearity={_activation_repr(self.nonlinearity)}")
        if not self.bias:
            opts.append("bias=False")
        if self.recurrent_max is not None:
            opts.append(f"recurrent_max={self.recurrent_max:.6g}")
        return f"IndRNN({', '.join(opts)})"

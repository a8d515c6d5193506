r"""The second-order recurrent network: multiplicative (state x input) weights.

Notation (per time step :math:`t`; ``g`` the activation, the sigmoid in the paper)::

    S_i(t+1) = g( sum_{j,k} W_ijk S_j(t) I_k(t) + b_i )

Giles, Miller, Chen, Chen, Sun & Lee (1992), "Learning and Extracting Finite State Automata with
Second-Order Recurrent Neural Networks", Neural Computation 4(3).

The weight tensor ``W`` has shape ``(H, H, I)``; with a one-hot input ``I(t)`` selecting symbol
``k``, the step applies the state-transition matrix ``W[:, :, k]``, which is why the network learns
finite automata well. There is no input product ``W x_t`` to hoist apart from the state: the cell
offers two exact implementations, chosen in ``project``:

* contracted: ``A(t) = sum_k W_ijk I_k(t)``, the ``(H, H)`` transition matrix of every step, is one
  matrix product before the loop, and each step is a batched matrix-vector product
  ``S(t+1) = g(A(t) S(t) + b)``. It stores ``T * B * H * H`` numbers (and as many for backward).
* per step: the raw input goes through, and each step contracts ``W`` with ``S(t)`` and ``I(t)``;
  memory ``O(T * B * (H + I))`` as for any RNN, the same multiply-adds.

``precompute="auto"`` contracts when ``T * B * H * H`` is at most ``max_elements`` (default
``2**22``, 16 MiB of float32), else runs per step; ``True`` / ``False`` force one or the other.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from carousel.cells.base import Cell, Params, State
from carousel.cells.simple import _activation_repr, _check_init, _check_size
from carousel.ops.activations import Activation, resolve_activation


class SecondOrder(Cell):
    r"""One step of a second-order recurrent network::

        S_i(t+1) = g( sum_{j,k} W_ijk S_j(t) I_k(t) + b_i )
        y_t      = S(t+1)

    Giles, Miller, Chen, Chen, Sun & Lee (1992), "Learning and Extracting Finite State Automata with
    Second-Order Recurrent Neural Networks", Neural Computation 4(3). In the paper ``I(t)`` is the
    one-hot code of the symbol read at ``t``, the initial state is ``S_0(0) = 1`` and the other units
    0 (pass it as the initial state), and ``S_0`` at the end of the string is the response: accept
    when ``S_0 > 0.5``.

    Args:
        input_size: input units ``I`` (the alphabet size for one-hot symbols).
        hidden_size: state units ``H``.
        nonlinearity: ``g`` (default ``"sigmoid"``, as in the paper).
        bias: learn ``b``.
        precompute: ``"auto"``, ``True`` or ``False``: whether ``project`` contracts ``W`` with every
            input into ``(T, B, H, H)`` transition matrices (see the module docstring).
        max_elements: ``"auto"`` contracts when ``T * B * H * H <= max_elements``.

    Parameters: ``weight (H, H, I)`` (``W_ijk``: ``i`` the next state unit, ``j`` the current one,
    ``k`` the input unit), ``bias (H,)``. State: ``(S,)`` of size ``H``.

    Example:
        >>> import torch
        >>> from carousel.cells.second_order import SecondOrder
        >>> cell = SecondOrder(2, 4)
        >>> params = {n: torch.empty(s) for n, s in cell.parameter_shapes().items()}
        >>> cell.reset_parameters(params, "pytorch")
        >>> x = torch.nn.functional.one_hot(torch.tensor([[0, 1], [1, 1], [0, 0]]), 2).float()
        >>> xp = cell.project(params, x)   # (T, B, H, H): one transition matrix per step
        >>> xp.shape
        torch.Size([3, 2, 4, 4])
        >>> s0 = torch.tensor([[1.0, 0, 0, 0], [1.0, 0, 0, 0]])
        >>> y, state = cell.step(params, xp[0], (s0,))
        >>> y.shape
        torch.Size([2, 4])
    """

    state_names = ("S",)
    output_state = 0
    dropout_states = (0,)
    vendor_mode = None

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        *,
        nonlinearity: Activation = "sigmoid",
        bias: bool = True,
        precompute: bool | str = "auto",
        max_elements: int = 2**22,
    ) -> None:
        self.input_size = _check_size("input_size", input_size, 1)
        self.hidden_size = _check_size("hidden_size", hidden_size, 1)
        self.nonlinearity = nonlinearity
        self._g = resolve_activation(nonlinearity, "nonlinearity")
        self.bias = bool(bias)
        if precompute not in ("auto", True, False):
            raise ValueError(f"precompute: expected 'auto', True or False, got {precompute!r}")
        self.precompute = precompute
        self.max_elements = _check_size("max_elements", max_elements, 1)
        self.output_size = hidden_size
        self.state_sizes = (hidden_size,)

    def parameter_shapes(self) -> dict[str, tuple[int, ...]]:
        H = self.hidden_size
        shapes: dict[str, tuple[int, ...]] = {"weight": (H, H, self.input_size)}
        if self.bias:
            shapes["bias"] = (H,)
        return shapes

    @torch.no_grad()
    def reset_parameters(self, params: dict[str, Tensor], init: str) -> None:
        """``"pytorch"``: everything ~ U(-1/sqrt(H), 1/sqrt(H)). ``"keras"``: ``W`` Glorot-uniform with
        fan-in ``H * I`` and fan-out ``H``, ``b = 0``."""
        _check_init(init)
        H, n_in = self.hidden_size, self.input_size
        for name, p in params.items():
            if init == "pytorch":
                stdv = 1.0 / math.sqrt(H)
                p.uniform_(-stdv, stdv)
            elif name == "weight":
                limit = math.sqrt(6.0 / (H * n_in + H))
                p.uniform_(-limit, limit)
            else:
                p.zero_()

    def vendor_refusal(self) -> str | None:
        return "no vendor fused op computes a second-order (multiplicative) recurrence"

    def contracts(self, steps: int, batch: int) -> bool:
        """Whether ``project`` contracts the inputs into transition matrices for this input size."""
        if self.precompute == "auto":
            return steps * batch * self.hidden_size**2 <= self.max_elements
        return bool(self.precompute)

    def project(self, params: Params, x: Tensor) -> Tensor:
        """``A(t)_ij = sum_k W_ijk I_k(t)`` as ``(T, B, H, H)`` (or ``(B, H, H)``), or ``x`` unchanged."""
        steps, batch = (x.shape[0], x.shape[1]) if x.dim() == 3 else (1, x.shape[0])
        if not self.contracts(steps, batch):
            return x
        H = self.hidden_size
        W = params["weight"].reshape(H * H, self.input_size)
        a = torch.matmul(x, W.t())
        return a.view(*x.shape[:-1], H, H)

    def step(self, params: Params, x_t: Tensor, state: State) -> tuple[Tensor, State]:
        S = state[0]
        if x_t.dim() == 3:  # contracted: x_t is A(t), (B, H, H)
            pre = torch.bmm(x_t, S.unsqueeze(-1)).squeeze(-1)
        else:  # raw input (B, I): contract W with S first, then with I
            H = self.hidden_size
            WS = torch.matmul(S, params["weight"].permute(1, 0, 2).reshape(H, H * self.input_size))
            pre = torch.bmm(WS.view(-1, H, self.input_size), x_t.unsqueeze(-1)).squeeze(-1)
        if self.bias:
            pre = pre + params["bias"]
        S = self._g(pre)
        return S, (S,)

    def __repr__(self) -> str:
        opts = [f"{self.input_size}, {self.hidden_size}"]
        if self.nonlinearity != "sigmoid":
            opts.append(f"nonlinearity={_activation_repr(self.nonlinearity)}")
        if not self.bias:
            opts.append("bias=False")
        if self.precompute != "auto":
            opts.append(f"precompute={self.precompute}")
        return f"SecondOrder({', '.join(opts)})"

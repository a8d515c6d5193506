r"""Simple recurrent networks: Elman, Jordan, the fully recurrent network and the recurrent MLP.

Notation (per time step :math:`t`; ``sigma_h`` the hidden activation, ``sigma_y`` the output one)::

    Elman:           h_t = sigma_h(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)              y_t = h_t
    Jordan:          s_t = mu s_{t-1} + y_{t-1}
                     h_t = sigma_h(W_ih x_t + W_sh s_t + b_ih)
                     y_t = sigma_y(W_ho h_t + b_ho)
    fully recurrent: a_t = sigma_h(W_ih x_t + W_hh a_{t-1} + b)                       y_t = a_t[:n_out]
    recurrent MLP:   h^l_t = sigma_h(W^l h^{l-1}_t + U^l h^l_{t-1} + b^l),  h^0_t = x_t,  y_t = h^L_t

Elman (1990), "Finding Structure in Time", Cognitive Science 14(2); Jordan (1986), "Serial Order:
A Parallel Distributed Processing Approach", ICS Report 8604, UC San Diego; Williams & Zipser
(1989), "A Learning Algorithm for Continually Running Fully Recurrent Neural Networks", Neural
Computation 1(2); Puskorius & Feldkamp (1994), "Neurocontrol of Nonlinear Dynamical Systems with
Kalman Filter Trained Recurrent Networks", IEEE Transactions on Neural Networks 5(2).

None of these cells has a vendor fused op bound in :mod:`carousel.kernels.vendor` nor a fused
engine; they run on the reference loop of :mod:`carousel.runner`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from carousel.cells.base import Cell, Params, State, init_standard
from carousel.cells.base import check_init as _check_init
from carousel.cells.base import check_size as _check_size
from carousel.ops.activations import Activation, resolve_activation


def _affine(x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
    """``x W^T + b`` for ``x`` of shape ``(..., in)``, as one matrix product."""
    x2 = x.reshape(-1, x.shape[-1])
    out = torch.mm(x2, weight.t()) if bias is None else torch.addmm(bias, x2, weight.t())
    return out.view(*x.shape[:-1], out.shape[-1])


def _activation_repr(value: Activation) -> str:
    return repr(value) if isinstance(value, str) else getattr(value, "__name__", type(value).__name__)


class Elman(Cell):
    r"""One step of the Elman network (simple recurrent network), as ``torch.nn.RNN`` computes it::

        h_t = sigma_h(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)
        y_t = h_t

    Elman's context units hold a copy of the previous hidden layer, ``h_{t-1}``, and feed it back
    to the hidden layer through trainable weights ``W_hh``; the output layer of the paper,
    ``sigma_y(W_y h_t + b_y)``, is the model's head (e.g. ``torch.nn.Linear``) on top of ``y_t``.
    Elman (1990), "Finding Structure in Time", Cognitive Science 14(2).

    Args:
        input_size: features of ``x_t``.
        hidden_size: hidden (and context) units ``H``.
        nonlinearity: ``sigma_h``: ``"tanh"`` (default) or ``"relu"`` as ``torch.nn.RNN``, or any
            activation name or callable.
        bias: learn ``bias_ih`` and ``bias_hh``.

    Parameters (``torch.nn.RNN``'s names and shapes): ``weight_ih (H, I)``, ``weight_hh (H, H)``,
    ``bias_ih (H,)``, ``bias_hh (H,)``. State: ``(h,)`` of size ``H``.

    Example:
        >>> import torch
        >>> from carousel.cells.simple import Elman
        >>> cell = Elman(3, 4, nonlinearity="relu")
        >>> params = {n: torch.empty(s) for n, s in cell.parameter_shapes().items()}
        >>> cell.reset_parameters(params, "pytorch")
        >>> xp = cell.project(params, torch.randn(5, 2, 3))   # W_ih x_t + b for all steps at once
        >>> y, state = cell.step(params, xp[0], cell.init_state(2, dtype=xp.dtype, device=xp.device))
        >>> y.shape
        torch.Size([2, 4])
    """

    state_names = ("h",)
    output_state = 0
    dropout_states = (0,)
    vendor_mode = None

    def __init__(self, input_size: int, hidden_size: int, *, nonlinearity: Activation = "tanh", bias: bool = True):
        self.input_size = _check_size("input_size", input_size, 1)
        self.hidden_size = _check_size("hidden_size", hidden_size, 1)
        self.nonlinearity = nonlinearity
        self._sigma_h = resolve_activation(nonlinearity, "nonlinearity")
        self.bias = bool(bias)
        self.output_size = hidden_size
        self.state_sizes = (hidden_size,)
        # torch.rnn_tanh / torch.rnn_relu compute exactly this cell for those two nonlinearities
        self.vendor_mode = {"tanh": "rnn_tanh", "relu": "rnn_relu"}.get(nonlinearity) if isinstance(
            nonlinearity, str) else None

    def parameter_shapes(self) -> dict[str, tuple[int, ...]]:
        H = self.hidden_size
        shapes: dict[str, tuple[int, ...]] = {"weight_ih": (H, self.input_size), "weight_hh": (H, H)}
        if self.bias:
            shapes["bias_ih"] = (H,)
            shapes["bias_hh"] = (H,)
        return shapes

    @torch.no_grad()
    def reset_parameters(self, params: dict[str, Tensor], init: str) -> None:
        """``"pytorch"``: everything ~ U(-1/sqrt(H), 1/sqrt(H)), as ``torch.nn.RNN``. ``"keras"``:
        Glorot-uniform ``weight_ih``, orthogonal ``weight_hh``, zero biases, as Keras's SimpleRNN."""
        init_standard(params, init, self.hidden_size)

    def vendor_refusal(self) -> str | None:
        if self.vendor_mode is None:
            return f"nonlinearity={_activation_repr(self.nonlinearity)} (the vendor ops take 'tanh' or 'relu' only)"
        return None

    def project(self, params: Params, x: Tensor) -> Tensor:
        """``W_ih x_t + b_ih + b_hh`` for every step at once."""
        bias = params["bias_ih"] + params["bias_hh"] if self.bias else None
        return _affine(x, params["weight_ih"], bias)

    def step(self, params: Params, x_t: Tensor, state: State) -> tuple[Tensor, State]:
        h = self._sigma_h(x_t + torch.matmul(state[0], params["weight_hh"].t()))
        return h, (h,)

    def __repr__(self) -> str:
        opts = [f"{self.input_size}, {self.hidden_size}"]
        if self.nonlinearity != "tanh":
            opts.append(f"nonlinearity={_activation_repr(self.nonlinearity)}")
        if not self.bias:
            opts.append("bias=False")
        return f"Elman({', '.join(opts)})"


class Jordan(Cell):
    r"""One step of the Jordan network: the state units are fed from the output layer and from
    themselves::

        s_t = mu s_{t-1} + y_{t-1}                         state layer (s_1 = 0, y_0 = 0)
        h_t = sigma_h(W_ih x_t + W_sh s_t + b_ih)          hidden layer
        y_t = sigma_y(W_ho h_t + b_ho)                     output layer

    Jordan (1986), "Serial Order: A Parallel Distributed Processing Approach", ICS Report 8604,
    UC San Diego. In the paper the self-connection weight ``mu`` of the state units is a fixed
    constant, not learned, so it is a constructor option (``decay``, default 0.5); ``decay=0``
    gives the form ``h_t = sigma_h(W x_t + U y_{t-1} + b)`` found in encyclopedic summaries.

    The cell carries a single state ``c_t = mu c_{t-1} + y_t`` (size ``output_size``), which is the
    state layer of the *next* step, ``c_t = s_{t+1}``: the step reads ``s_t = c_{t-1}``, computes
    ``y_t`` and stores ``c_t``. This is the paper's recursion with one tensor instead of two.

    Args:
        input_size: features of ``x_t``.
        hidden_size: hidden units ``H``.
        output_size: output (and state) units ``O``.
        decay: ``mu`` in ``[0, 1)``.
        nonlinearity: ``sigma_h`` (default ``"tanh"``).
        output_activation: ``sigma_y`` (default ``"tanh"``; the paper's units are logistic,
            ``"sigmoid"``).
        bias: learn ``bias_ih`` and ``bias_ho``.

    Parameters: ``weight_ih (H, I)``, ``weight_sh (H, O)``, ``weight_ho (O, H)``, ``bias_ih (H,)``,
    ``bias_ho (O,)``. State: ``(c,)`` of size ``O``.

    Example:
        >>> import torch
        >>> from carousel.cells.simple import Jordan
        >>> cell = Jordan(3, 8, 2, decay=0.5)
        >>> params = {n: torch.empty(s) for n, s in cell.parameter_shapes().items()}
        >>> cell.reset_parameters(params, "pytorch")
        >>> xp = cell.project(params, torch.randn(5, 2, 3))
        >>> y, (c,) = cell.step(params, xp[0], cell.init_state(2, dtype=xp.dtype, device=xp.device))
        >>> y.shape, c.shape
        (torch.Size([2, 2]), torch.Size([2, 2]))
    """

    state_names = ("c",)
    vendor_mode = None

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        output_size: int,
        *,
        decay: float = 0.5,
        nonlinearity: Activation = "tanh",
        output_activation: Activation = "tanh",
        bias: bool = True,
    ) -> None:
        self.input_size = _check_size("input_size", input_size, 1)
        self.hidden_size = _check_size("hidden_size", hidden_size, 1)
        self.output_size = _check_size("output_size", output_size, 1)
        if isinstance(decay, bool) or not isinstance(decay, (int, float)) or not 0.0 <= float(decay) < 1.0:
            raise ValueError(f"decay: expected a number in [0, 1), got {decay!r}")
        self.decay = float(decay)
        self.nonlinearity = nonlinearity
        self.output_activation = output_activation
        self._sigma_h = resolve_activation(nonlinearity, "nonlinearity")
        self._sigma_y = resolve_activation(output_activation, "output_activation")
        self.bias = bool(bias)
        self.state_sizes = (output_size,)
        # c_t equals y_t only when mu = 0; dropping c_{t-1} otherwise erases the accumulated trace.
        self.output_state = 0 if self.decay == 0.0 else None
        self.dropout_states = (0,) if self.decay == 0.0 else ()

    def parameter_shapes(self) -> dict[str, tuple[int, ...]]:
        H, n_out = self.hidden_size, self.output_size
        shapes: dict[str, tuple[int, ...]] = {"weight_ih": (H, self.input_size), "weight_sh": (H, n_out)}
        shapes["weight_ho"] = (n_out, H)
        if self.bias:
            shapes["bias_ih"] = (H,)
            shapes["bias_ho"] = (n_out,)
        return shapes

    @torch.no_grad()
    def reset_parameters(self, params: dict[str, Tensor], init: str) -> None:
        """``"pytorch"``: every parameter ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)) of the layer it
        feeds (``H`` for the hidden layer, ``H`` for the output layer). ``"keras"``: Glorot-uniform
        ``weight_ih`` and ``weight_ho``, orthogonal ``weight_sh``, zero biases."""
        _check_init(init)
        stdv = 1.0 / math.sqrt(self.hidden_size)
        for name, p in params.items():
            if init == "pytorch":
                p.uniform_(-stdv, stdv)
            elif name == "weight_sh":
                torch.nn.init.orthogonal_(p)
            elif name.startswith("weight"):
                torch.nn.init.xavier_uniform_(p)
            else:
                p.zero_()

    def vendor_refusal(self) -> str | None:
        return "no vendor fused op computes the Jordan network"

    def project(self, params: Params, x: Tensor) -> Tensor:
        """``W_ih x_t + b_ih`` for every step at once."""
        return _affine(x, params["weight_ih"], params["bias_ih"] if self.bias else None)

    def step(self, params: Params, x_t: Tensor, state: State) -> tuple[Tensor, State]:
        s = state[0]  # s_t = c_{t-1}
        h = self._sigma_h(x_t + torch.matmul(s, params["weight_sh"].t()))
        y = self._sigma_y(_affine(h, params["weight_ho"], params["bias_ho"] if self.bias else None))
        c = y if self.decay == 0.0 else self.decay * s + y
        return y, (c,)

    def __repr__(self) -> str:
        opts = [f"{self.input_size}, {self.hidden_size}, {self.output_size}", f"decay={self.decay}"]
        if self.nonlinearity != "tanh":
            opts.append(f"nonlinearity={_activation_repr(self.nonlinearity)}")
        if self.output_activation != "tanh":
            opts.append(f"output_activation={_activation_repr(self.output_activation)}")
        if not self.bias:
            opts.append("bias=False")
        return f"Jordan({', '.join(opts)})"


class FullyRecurrent(Cell):
    r"""One step of a fully recurrent network: every unit receives the previous activations of
    all ``N`` units and all inputs; the first ``n_out`` units are the visible outputs::

        a_t = sigma_h(W_ih x_t + W_hh a_{t-1} + b)        all N units, a_0 = 0
        y_t = a_t[:n_out]

    Williams & Zipser (1989), "A Learning Algorithm for Continually Running Fully Recurrent Neural
    Networks", Neural Computation 1(2). The paper writes ``y_k(t+1) = f(sum_l w_kl z_l(t))`` with
    ``z(t) = [x(t); y(t)]``: the activation caused by ``x(t)`` is read one tick later. Here it is
    the output of step ``t``, the convention of every cell of this library; the network is the
    same. The paper's bias is a constant input unit; here it is the vector ``b`` (``bias``).

    Args:
        input_size: features of ``x_t``.
        hidden_size: number of units ``N``.
        output_size: visible units ``n_out <= N`` (None: all units).
        nonlinearity: ``f`` (default ``"tanh"``; the paper uses the logistic ``"sigmoid"``).
        bias: learn ``b``.

    Parameters: ``weight_ih (N, I)``, ``weight_hh (N, N)``, ``bias (N,)``. State: ``(a,)`` of size
    ``N``; the output has ``n_out`` features.

    Example:
        >>> import torch
        >>> from carousel.cells.simple import FullyRecurrent
        >>> cell = FullyRecurrent(3, 6, output_size=2)
        >>> params = {n: torch.empty(s) for n, s in cell.parameter_shapes().items()}
        >>> cell.reset_parameters(params, "pytorch")
        >>> xp = cell.project(params, torch.randn(5, 2, 3))
        >>> y, (a,) = cell.step(params, xp[0], cell.init_state(2, dtype=xp.dtype, device=xp.device))
        >>> y.shape, a.shape
        (torch.Size([2, 2]), torch.Size([2, 6]))
    """

    state_names = ("a",)
    dropout_states = (0,)
    vendor_mode = None

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        output_size: int | None = None,
        *,
        nonlinearity: Activation = "tanh",
        bias: bool = True,
    ) -> None:
        self.input_size = _check_size("input_size", input_size, 1)
        self.hidden_size = _check_size("hidden_size", hidden_size, 1)
        if output_size is None:
            output_size = hidden_size
        _check_size("output_size", output_size, 1)
        if output_size > hidden_size:
            raise ValueError(
                f"output_size: expected at most hidden_size={hidden_size} (the outputs are units), got {output_size}"
            )
        self.output_size = output_size
        self.nonlinearity = nonlinearity
        self._sigma_h = resolve_activation(nonlinearity, "nonlinearity")
        self.bias = bool(bias)
        self.state_sizes = (hidden_size,)
        self.output_state = 0 if output_size == hidden_size else None

    def parameter_shapes(self) -> dict[str, tuple[int, ...]]:
        N = self.hidden_size
        shapes: dict[str, tuple[int, ...]] = {"weight_ih": (N, self.input_size), "weight_hh": (N, N)}
        if self.bias:
            shapes["bias"] = (N,)
        return shapes

    @torch.no_grad()
    def reset_parameters(self, params: dict[str, Tensor], init: str) -> None:
        """``"pytorch"``: everything ~ U(-1/sqrt(N), 1/sqrt(N)). ``"keras"``: Glorot-uniform
        ``weight_ih``, orthogonal ``weight_hh``, zero bias."""
        init_standard(params, init, self.hidden_size)

    def vendor_refusal(self) -> str | None:
        return "no vendor fused op returns a subset of the units as output"

    def project(self, params: Params, x: Tensor) -> Tensor:
        """``W_ih x_t + b`` for every step at once."""
        return _affine(x, params["weight_ih"], params["bias"] if self.bias else None)

    def step(self, params: Params, x_t: Tensor, state: State) -> tuple[Tensor, State]:
        a = self._sigma_h(x_t + torch.matmul(state[0], params["weight_hh"].t()))
        return a[..., : self.output_size], (a,)

    def __repr__(self) -> str:
        opts = [f"{self.input_size}, {self.hidden_size}"]
        if self.output_size != self.hidden_size:
            opts.append(f"output_size={self.output_size}")
        if self.nonlinearity != "tanh":
            opts.append(f"nonlinearity={_activation_repr(self.nonlinearity)}")
        if not self.bias:
            opts.append("bias=False")
        return f"FullyRecurrent({', '.join(opts)})"


class RecurrentMLP(Cell):
    r"""One step of a recurrent multilayer perceptron (RMLP): a feed-forward stack of layers, each
    with recurrent connections within itself, computed bottom-up at every step::

        h^0_t = x_t
        h^l_t = sigma_h(W^l h^{l-1}_t + U^l h^l_{t-1} + b^l)     l = 1..L
        y_t   = h^L_t                        (y_t = sigma_y(W^o h^L_t + b^o) with ``output_size``)

    Puskorius & Feldkamp (1994), "Neurocontrol of Nonlinear Dynamical Systems with Kalman Filter
    Trained Recurrent Networks", IEEE Transactions on Neural Networks 5(2). Their architectures are
    written like ``4-20R-20R-1``: two recurrent hidden layers and a feed-forward output layer;
    ``RecurrentMLP(4, (20, 20), output_size=1)`` is that network. Unlike a stack of Elman layers
    run one after the other over the whole sequence, the layers advance together, one step at a
    time, so the stack is one cell with one state per layer.

    Args:
        input_size: features of ``x_t``.
        hidden_sizes: units of each recurrent layer, bottom to top.
        output_size: if given, a non-recurrent output layer of this size on top.
        nonlinearity: ``sigma_h`` of the recurrent layers (default ``"tanh"``).
        output_activation: ``sigma_y`` of the output layer (default ``"identity"``, the paper's
            linear output node).
        bias: learn the biases.

    Parameters (``l`` counts from 0): ``weight_ih{l}``, ``weight_hh{l}``, ``bias{l}`` per layer, and
    ``weight_ho``, ``bias_ho`` for the output layer. State: ``(h0, h1, ...)``, one per layer.

    Example:
        >>> import torch
        >>> from carousel.cells.simple import RecurrentMLP
        >>> cell = RecurrentMLP(4, (20, 10), output_size=1)
        >>> params = {n: torch.empty(s) for n, s in cell.parameter_shapes().items()}
        >>> cell.reset_parameters(params, "pytorch")
        >>> xp = cell.project(params, torch.randn(5, 2, 4))
        >>> y, state = cell.step(params, xp[0], cell.init_state(2, dtype=xp.dtype, device=xp.device))
        >>> y.shape, [s.shape[-1] for s in state]
        (torch.Size([2, 1]), [20, 10])
    """

    vendor_mode = None

    def __init__(
        self,
        input_size: int,
        hidden_sizes: Sequence[int],
        output_size: int | None = None,
        *,
        nonlinearity: Activation = "tanh",
        output_activation: Activation = "identity",
        bias: bool = True,
    ) -> None:
        self.input_size = _check_size("input_size", input_size, 1)
        if isinstance(hidden_sizes, int) and not isinstance(hidden_sizes, bool):
            hidden_sizes = (hidden_sizes,)
        if not isinstance(hidden_sizes, (tuple, list)) or not hidden_sizes:
            raise ValueError(f"hidden_sizes: expected a non-empty sequence of integers >= 1, got {hidden_sizes!r}")
        self.hidden_sizes = tuple(_check_size("hidden_sizes", n, 1) for n in hidden_sizes)
        if output_size is not None:
            _check_size("output_size", output_size, 1)
        self.has_output_layer = output_size is not None
        self.output_size = self.hidden_sizes[-1] if output_size is None else output_size
        self.nonlinearity = nonlinearity
        self.output_activation = output_activation
        self._sigma_h = resolve_activation(nonlinearity, "nonlinearity")
        self._sigma_y = resolve_activation(output_activation, "output_activation")
        self.bias = bool(bias)
        L = len(self.hidden_sizes)
        self.state_sizes = self.hidden_sizes
        self.state_names = tuple(f"h{layer}" for layer in range(L))
        self.output_state = None if self.has_output_layer else L - 1
        self.dropout_states = tuple(range(L))

    def parameter_shapes(self) -> dict[str, tuple[int, ...]]:
        shapes: dict[str, tuple[int, ...]] = {}
        below = self.input_size
        for layer, n in enumerate(self.hidden_sizes):
            shapes[f"weight_ih{layer}"] = (n, below)
            shapes[f"weight_hh{layer}"] = (n, n)
            if self.bias:
                shapes[f"bias{layer}"] = (n,)
            below = n
        if self.has_output_layer:
            shapes["weight_ho"] = (self.output_size, below)
            if self.bias:
                shapes["bias_ho"] = (self.output_size,)
        return shapes

    @torch.no_grad()
    def reset_parameters(self, params: dict[str, Tensor], init: str) -> None:
        """``"pytorch"``: each layer's parameters ~ U(-1/sqrt(n), 1/sqrt(n)), ``n`` its own size
        (the output layer: ``1/sqrt(fan_in)``). ``"keras"``: Glorot-uniform feed-forward weights,
        orthogonal recurrent weights, zero biases."""
        _check_init(init)
        for name, p in params.items():
            if init == "pytorch":
                fan = self.hidden_sizes[-1] if name in ("weight_ho", "bias_ho") else p.shape[0]
                stdv = 1.0 / math.sqrt(fan)
                p.uniform_(-stdv, stdv)
            elif name.startswith("weight_hh"):
                torch.nn.init.orthogonal_(p)
            elif name.startswith("weight"):
                torch.nn.init.xavier_uniform_(p)
            else:
                p.zero_()

    def vendor_refusal(self) -> str | None:
        return "no vendor fused op advances several layers together within one step"

    def project(self, params: Params, x: Tensor) -> Tensor:
        """``W^1 x_t + b^1`` for every step at once: only the first layer's input does not recur."""
        return _affine(x, params["weight_ih0"], params["bias0"] if self.bias else None)

    def step(self, params: Params, x_t: Tensor, state: State) -> tuple[Tensor, State]:
        new = []
        below = x_t  # layer 0 gets its input already projected
        for layer, h in enumerate(state):
            pre = below if layer == 0 else _affine(below, params[f"weight_ih{layer}"], params.get(f"bias{layer}"))
            below = self._sigma_h(pre + torch.matmul(h, params[f"weight_hh{layer}"].t()))
            new.append(below)
        if self.has_output_layer:
            y = self._sigma_y(_affine(below, params["weight_ho"], params.get("bias_ho")))
        else:
            y = below
        return y, tuple(new)

    def __repr__(self) -> str:
        opts = [f"{self.input_size}, {self.hidden_sizes}"]
        if self.has_output_layer:
            opts.append(f"output_size={self.output_size}")
        if self.nonlinearity != "tanh":
            opts.append(f"nonlinearity={_activation_repr(self.nonlinearity)}")
        if not self.bias:
            opts.append("bias=False")
        return f"RecurrentMLP({', '.join(opts)})"

r"""Convolutional recurrent cells: ConvLSTM with peepholes and ConvGRU, in 1-D, 2-D and 3-D.

Every matrix product of the vector cells becomes a convolution (``*``) over the frame, so the
input ``X_t``, the hidden state ``H_t`` and the memory ``C_t`` are stacks of feature maps of shape
``(B, channels, *spatial)``. The convolutions use ``"same"`` padding and stride 1, so the state keeps
the frame size of the input.

ConvLSTM (Shi et al. 2015, "Convolutional LSTM Network: A Machine Learning Approach for
Precipitation Nowcasting", NeurIPS), ``∘`` the Hadamard product::

    i_t = sigma(W_xi * X_t + W_hi * H_{t-1} + W_ci ∘ C_{t-1} + b_i)
    f_t = sigma(W_xf * X_t + W_hf * H_{t-1} + W_cf ∘ C_{t-1} + b_f)
    C_t = f_t ∘ C_{t-1} + i_t ∘ tanh(W_xc * X_t + W_hc * H_{t-1} + b_c)
    o_t = sigma(W_xo * X_t + W_ho * H_{t-1} + W_co ∘ C_t + b_o)
    H_t = o_t ∘ tanh(C_t)

ConvGRU (Ballas, Yao, Pal & Courville 2016, "Delving Deeper into Convolutional Networks for
Learning Video Representations", ICLR)::

    z_t = sigma(W_z * x_t + U_z * h_{t-1})
    r_t = sigma(W_r * x_t + U_r * h_{t-1})
    h~_t = tanh(W * x_t + U * (r_t ⊙ h_{t-1}))
    h_t = (1 - z_t) h_{t-1} + z_t h~_t

(with a bias per gate as an option, on by default).

Parameter layout: ``weight_ih`` stacks the input kernels of the blocks along the output channels
(ConvLSTM ``i, f, c, o``; ConvGRU ``z, r, h~``), shape ``(blocks * C_h, C_in, *kernel_size)``;
``weight_hh`` the recurrent kernels in the same order, ``(blocks * C_h, C_h, *kernel_size)``;
``bias`` one vector ``(blocks * C_h,)``; ConvLSTM's peepholes ``weight_ci``, ``weight_cf``,
``weight_co`` have the shape of the memory, ``(C_h, *spatial_size)`` (``peepholes="channel"``:
``(C_h, 1, ..., 1)``, one weight per channel).

Input projections ``W_x * X_t`` are hoisted: :meth:`project` runs one convolution over all
``T * B`` frames; :meth:`step` runs only the recurrent convolution ``W_h * H_{t-1}``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from carousel.cells.base import INITS, Cell, Params, State

PEEPHOLES = (True, False, "hadamard", "channel")
_CONV: dict[int, Callable[..., Tensor]] = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}


def check_positive(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name}: expected an integer >= 1, got {value!r}")
    return value


def check_dims(dims: object) -> int:
    if isinstance(dims, bool) or dims not in (1, 2, 3):
        raise ValueError(f"dims: expected 1, 2 or 3, got {dims!r}")
    return dims  # type: ignore[return-value]


def as_tuple(name: str, value: object, dims: int) -> tuple[int, ...]:
    """An int or ``dims`` ints (each >= 1) as a tuple of ``dims`` ints."""
    items = (value,) * dims if isinstance(value, int) and not isinstance(value, bool) else value
    if (
        not isinstance(items, (tuple, list, torch.Size))
        or len(items) != dims
        or any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in items)
    ):
        raise ValueError(f"{name}: expected a positive integer or {dims} positive integers, got {value!r}")
    return tuple(items)


class _ConvCell(Cell):
    """What ConvLSTM and ConvGRU share: kernels, frame, hoisted input convolution, zero state."""

    blocks: tuple[str, ...]

    def __init__(
        self,
        in_channels: int,
        hidden_channels: int,
        kernel_size: int | Sequence[int],
        *,
        dims: int,
        spatial_size: int | Sequence[int],
        bias: bool,
        padding: str,
    ) -> None:
        self.dims = check_dims(dims)
        self.in_channels = check_positive("in_channels", in_channels)
        self.hidden_channels = check_positive("hidden_channels", hidden_channels)
        self.kernel_size = as_tuple("kernel_size", kernel_size, self.dims)
        self.spatial_size = as_tuple("spatial_size", spatial_size, self.dims)
        if padding != "same":
            raise ValueError(f"padding: expected 'same' (the state keeps the frame size), got {padding!r}")
        self.padding = padding
        self.bias = bool(bias)
        self._conv = _CONV[self.dims]
        self.input_size = self.in_channels
        self.output_size = self.hidden_channels

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one step of input without the batch: ``(C_in, *spatial_size)``."""
        return (self.in_channels, *self.spatial_size)

    @property
    def state_shape(self) -> tuple[int, ...]:
        """Shape of every state tensor without the batch: ``(C_h, *spatial_size)``."""
        return (self.hidden_channels, *self.spatial_size)

    def init_state(self, batch: int, *, dtype: torch.dtype, device: torch.device) -> State:
        """Zero feature maps ``(batch, C_h, *spatial_size)`` for every state."""
        return tuple(torch.zeros(batch, *self.state_shape, dtype=dtype, device=device) for _ in self.state_names)

    def _kernel_shapes(self) -> dict[str, tuple[int, ...]]:
        n, C = len(self.blocks), self.hidden_channels
        shapes = {
            "weight_ih": (n * C, self.in_channels, *self.kernel_size),
            "weight_hh": (n * C, C, *self.kernel_size),
        }
        if self.bias:
            shapes["bias"] = (n * C,)
        return shapes

    def project(self, params: Params, x: Tensor) -> Tensor:
        """``W_x * X_t + b`` for every step at once: one convolution over the ``T * B`` frames of
        ``x`` (``(T, B, C_in, *spatial)`` or ``(B, C_in, *spatial)``)."""
        frame = (self.in_channels, *self.spatial_size)
        if x.dim() < self.dims + 2 or tuple(x.shape[-self.dims - 1 :]) != frame:
            raise ValueError(
                f"x: expected shape (..., batch, {', '.join(map(str, frame))}) (in_channels, *spatial_size), "
                f"got {tuple(x.shape)}"
            )
        lead = x.shape[: -self.dims - 1]
        w = params["weight_ih"]
        xp = self._conv(x.reshape(-1, *frame), w, params.get("bias"), padding=self.padding)
        return xp.view(*lead, w.shape[0], *self.spatial_size)

    def _recurrent(self, h: Tensor, w: Tensor) -> Tensor:
        return self._conv(h, w, None, padding=self.padding)

    @torch.no_grad()
    def _reset_kernels(self, params: dict[str, Tensor], init: str) -> None:
        if init not in INITS:
            raise ValueError(f"init: expected one of {list(INITS)}, got {init!r}")
        stdv = 1.0 / math.sqrt(self.hidden_channels * math.prod(self.kernel_size))
        for name, p in params.items():
            if init == "pytorch":
                p.uniform_(-stdv, stdv)
            elif name == "weight_hh":
                torch.nn.init.orthogonal_(p)
            elif name == "weight_ih":
                torch.nn.init.xavier_uniform_(p)
            else:  # biases and peepholes
                p.zero_()

    def _repr(self, extra: Sequence[str] = ()) -> str:
        opts = [
            f"{self.in_channels}, {self.hidden_channels}",
            f"kernel_size={self.kernel_size}",
            f"dims={self.dims}",
            f"spatial_size={self.spatial_size}",
            *extra,
        ]
        if not self.bias:
            opts.append("bias=False")
        return f"{type(self).__name__}({', '.join(opts)})"


class ConvLSTM(_ConvCell):
    r"""One step of the convolutional LSTM of Shi et al. (2015), with peepholes.

    Equations (``*`` convolution, ``∘`` Hadamard product, ``sigma`` the logistic sigmoid)::

        i_t = sigma(W_xi * X_t + W_hi * H_{t-1} + W_ci ∘ C_{t-1} + b_i)
        f_t = sigma(W_xf * X_t + W_hf * H_{t-1} + W_cf ∘ C_{t-1} + b_f)
        C_t = f_t ∘ C_{t-1} + i_t ∘ tanh(W_xc * X_t + W_hc * H_{t-1} + b_c)
        o_t = sigma(W_xo * X_t + W_ho * H_{t-1} + W_co ∘ C_t + b_o)
        H_t = o_t ∘ tanh(C_t)

    Shi, Chen, Wang, Yeung, Wong & Woo (2015), "Convolutional LSTM Network: A Machine Learning
    Approach for Precipitation Nowcasting", NeurIPS.

    Args:
        in_channels: channels of ``X_t``.
        hidden_channels: channels of ``H_t`` and ``C_t``.
        kernel_size: kernel of both convolutions (an int or ``dims`` ints).
        dims: 1, 2 or 3 spatial dimensions.
        spatial_size: the frame, ``dims`` ints (or one int for all); the state is
            ``(B, hidden_channels, *spatial_size)``.
        peepholes: True or ``"hadamard"`` (the paper's): ``W_ci, W_cf, W_co`` have the shape of the
            memory, ``(C_h, *spatial_size)``, one weight per channel and position; ``"channel"``: one
            weight per channel, ``(C_h, 1, ..., 1)``, shared over the frame (as the vector LSTM's
            diagonal peepholes); False: none.
        bias: learn ``bias`` (``b_i, b_f, b_c, b_o``).
        padding: ``"same"`` (the only choice: the state keeps the frame size).

    State: ``(H, C)``, each ``(B, C_h, *spatial_size)``.

    Example:
        >>> import torch
        >>> from carousel.cells.conv import ConvLSTM
        >>> cell = ConvLSTM(2, 4, 3, dims=2, spatial_size=(8, 8))
        >>> params = {n: torch.empty(s) for n, s in cell.parameter_shapes().items()}
        >>> cell.reset_parameters(params, "pytorch")
        >>> xp = cell.project(params, torch.randn(5, 3, 2, 8, 8))   # (T, B, C_in, *spatial), hoisted
        >>> y, (h, c) = cell.step(params, xp[0], cell.init_state(3, dtype=xp.dtype, device=xp.device))
        >>> y.shape, params["weight_ci"].shape
        (torch.Size([3, 4, 8, 8]), torch.Size([4, 8, 8]))
    """

    blocks = ("i", "f", "c", "o")
    output_state = 0
    dropout_states: tuple[int, ...] = (0,)

    def __init__(
        self,
        in_channels: int,
        hidden_channels: int,
        kernel_size: int | Sequence[int],
        *,
        dims: int = 2,
        spatial_size: int | Sequence[int],
        peepholes: bool | str = True,
        bias: bool = True,
        padding: str = "same",
    ) -> None:
        super().__init__(
            in_channels, hidden_channels, kernel_size, dims=dims, spatial_size=spatial_size, bias=bias, padding=padding
        )
        if not any(peepholes is p or (isinstance(p, str) and peepholes == p) for p in PEEPHOLES):
            raise ValueError(f"peepholes: expected True, False, 'hadamard' or 'channel', got {peepholes!r}")
        self.peepholes: str | None = "hadamard" if peepholes is True else (peepholes or None)  # type: ignore[assignment]
        self.state_names = ("h", "c")
        self.state_sizes = (self.state_shape, self.state_shape)  # type: ignore[assignment]

    def parameter_shapes(self) -> dict[str, tuple[int, ...]]:
        shapes = self._kernel_shapes()
        if self.peepholes is not None:
            frame = self.spatial_size if self.peepholes == "hadamard" else (1,) * self.dims
            for gate in ("i", "f", "o"):
                shapes[f"weight_c{gate}"] = (self.hidden_channels, *frame)
        return shapes

    def reset_parameters(self, params: dict[str, Tensor], init: str) -> None:
        """Initialise in place. ``"pytorch"``: everything ~ U(-1/sqrt(k), 1/sqrt(k)) with
        ``k = C_h * prod(kernel_size)`` (the fan-in of the recurrent convolution). ``"keras"``
        (as Keras's ConvLSTM): Glorot-uniform ``weight_ih``, orthogonal ``weight_hh``, zero biases
        with the forget-gate bias at 1, zero peepholes."""
        self._reset_kernels(params, init)
        if init == "keras" and "bias" in params:
            C = self.hidden_channels
            with torch.no_grad():
                params["bias"][C : 2 * C] = 1.0

    def step(self, params: Params, x_t: Tensor, state: State) -> tuple[Tensor, State]:
        h, c = state
        C = self.hidden_channels
        gates = x_t + self._recurrent(h, params["weight_hh"])  # (B, 4 C_h, *spatial)
        i, f, g, o = gates.split(C, dim=1)
        if self.peepholes is not None:
            i = i + params["weight_ci"] * c
            f = f + params["weight_cf"] * c
        c_new = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        if self.peepholes is not None:
            o = o + params["weight_co"] * c_new
        h_new = torch.sigmoid(o) * torch.tanh(c_new)
        return h_new, (h_new, c_new)

    def vendor_refusal(self) -> str | None:
        return "ConvLSTM has no vendor fused op"

    def __repr__(self) -> str:
        peep = {"hadamard": (), "channel": ("peepholes='channel'",), None: ("peepholes=False",)}[self.peepholes]
        return self._repr(peep)


class ConvGRU(_ConvCell):
    r"""One step of the convolutional GRU of Ballas et al. (2016).

    Equations (``*`` convolution, ``⊙`` elementwise product; the biases, one per block, are an
    option that the paper leaves out)::

        z_t = sigma(W_z * x_t + U_z * h_{t-1} + b_z)
        r_t = sigma(W_r * x_t + U_r * h_{t-1} + b_r)
        h~_t = tanh(W * x_t + U * (r_t ⊙ h_{t-1}) + b)
        h_t = (1 - z_t) h_{t-1} + z_t h~_t

    Ballas, Yao, Pal & Courville (2016), "Delving Deeper into Convolutional Networks for Learning
    Video Representations", ICLR.

    Args:
        in_channels, hidden_channels, kernel_size, dims, spatial_size, bias, padding: as
            :class:`ConvLSTM`.

    State: ``(h,)`` of shape ``(B, C_h, *spatial_size)``. Recurrent dropout masks ``h_{t-1}`` in the
    convolutions only, never in the carried term ``(1 - z_t) h_{t-1}``.

    Example:
        >>> import torch
        >>> from carousel.cells.conv import ConvGRU
        >>> cell = ConvGRU(1, 3, 5, dims=1, spatial_size=16)
        >>> params = {n: torch.empty(s) for n, s in cell.parameter_shapes().items()}
        >>> cell.reset_parameters(params, "keras")
        >>> xp = cell.project(params, torch.randn(4, 2, 1, 16))
        >>> y, (h,) = cell.step(params, xp[0], cell.init_state(2, dtype=xp.dtype, device=xp.device))
        >>> y.shape
        torch.Size([2, 3, 16])
    """

    blocks = ("z", "r", "h")
    output_state = 0
    dropout_states: tuple[int, ...] = (0,)
    dropout_in_step = True

    def __init__(
        self,
        in_channels: int,
        hidden_channels: int,
        kernel_size: int | Sequence[int],
        *,
        dims: int = 2,
        spatial_size: int | Sequence[int],
        bias: bool = True,
        padding: str = "same",
    ) -> None:
        super().__init__(
            in_channels, hidden_channels, kernel_size, dims=dims, spatial_size=spatial_size, bias=bias, padding=padding
        )
        self.state_names = ("h",)
        self.state_sizes = (self.state_shape,)  # type: ignore[assignment]

    def parameter_shapes(self) -> dict[str, tuple[int, ...]]:
        return self._kernel_shapes()

    def reset_parameters(self, params: dict[str, Tensor], init: str) -> None:
        """Initialise in place: ``"pytorch"`` (everything ~ U(-1/sqrt(k), 1/sqrt(k)),
        ``k = C_h * prod(kernel_size)``) or ``"keras"`` (Glorot-uniform ``weight_ih``, orthogonal
        ``weight_hh``, zero bias)."""
        self._reset_kernels(params, init)

    def step(self, params: Params, x_t: Tensor, state: State, fed: State | None = None) -> tuple[Tensor, State]:
        h = state[0]
        hf = h if fed is None else fed[0]  # h_{t-1} as the convolutions read it (masked in training)
        C = self.hidden_channels
        w_hh = params["weight_hh"]
        x_z, x_r, x_h = x_t.split(C, dim=1)
        zr = self._recurrent(hf, w_hh[: 2 * C])
        z = torch.sigmoid(x_z + zr[:, :C])
        r = torch.sigmoid(x_r + zr[:, C:])
        cand = torch.tanh(x_h + self._recurrent(r * hf, w_hh[2 * C :]))
        h_new = h + z * (cand - h)  # (1 - z) h + z h~
        return h_new, (h_new,)

    def vendor_refusal(self) -> str | None:
        return "ConvGRU has no vendor fused op"

    def __repr__(self) -> str:
        return self._repr()

r"""Convolutional recurrent layers: ``ConvLSTM1d/2d/3d`` (Shi et al. 2015) and ``ConvGRU1d/2d/3d``
(Ballas et al. 2016), stacked, bidirectional, with variable lengths, on the common runner.

The cells declare their states as feature maps (``state_sizes`` entries ``(C_h, *spatial)``) and
their input step as ``(C_in, *spatial)`` (``input_shape``); the runner takes it from there: lengths
masks broadcast over the maps, the two directions join along the channels, streaming steps one
frame at a time.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from carousel.cells.base import Cell
from carousel.cells.conv import ConvGRU as ConvGRUStep
from carousel.cells.conv import ConvLSTM as ConvLSTMStep
from carousel.cells.conv import _ConvCell, as_tuple, check_positive
from carousel.runner import dispatch
from carousel.runner.layer import RecurrentLayer


class _ConvLayer(RecurrentLayer):
    """Shared constructor of the convolutional layers; see :class:`ConvLSTM2d`."""

    dims: int

    def _setup(
        self,
        make: type[_ConvCell],
        in_channels: int,
        hidden_channels: int,
        kernel_size: int | Sequence[int],
        num_layers: int,
        bidirectional: bool,
        spatial_size: int | Sequence[int],
        cell_options: dict[str, object],
        layer_options: dict[str, object],
    ) -> None:
        check_positive("in_channels", in_channels)
        check_positive("hidden_channels", hidden_channels)
        self.in_channels = in_channels
        self.hidden_channels = hidden_channels
        self.kernel_size = as_tuple("kernel_size", kernel_size, self.dims)
        self.spatial_size = as_tuple("spatial_size", spatial_size, self.dims)
        num_dirs = 2 if bidirectional else 1
        dims, frame = self.dims, self.spatial_size

        def make_cell(k: int, _flat_size: int) -> Cell:
            channels = in_channels if k == 0 else num_dirs * hidden_channels
            cell = make(channels, hidden_channels, kernel_size, dims=dims, spatial_size=frame, **cell_options)
            return cell

        RecurrentLayer.__init__(
            self,
            make_cell,
            in_channels,
            num_layers,
            bidirectional=bidirectional,
            **layer_options,  # type: ignore[arg-type]
        )

    def _layout(self) -> str:
        names = ", ".join(("d", "h", "w")[-self.dims :]) if self.dims > 1 else "length"
        return f"(batch, time, channels, {names})" if self.batch_first else f"(time, batch, channels, {names})"


class _ConvLSTMNd(_ConvLayer):
    def __init__(
        self,
        in_channels: int,
        hidden_channels: int,
        kernel_size: int | Sequence[int],
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        *,
        spatial_size: int | Sequence[int],
        peepholes: bool | str = True,
        padding: str = "same",
        recurrent_dropout: float = 0.0,
        zoneout: float | Sequence[float] = 0.0,
        init: str = "pytorch",
        fast: dispatch.Fast = "auto",
        return_states: Sequence[str] = (),
    ) -> None:
        self.bias = bias
        self._setup(
            ConvLSTMStep,
            in_channels,
            hidden_channels,
            kernel_size,
            num_layers,
            bidirectional,
            spatial_size,
            dict(peepholes=peepholes, bias=bias, padding=padding),
            dict(
                batch_first=batch_first,
                dropout=dropout,
                recurrent_dropout=recurrent_dropout,
                zoneout=zoneout,
                init=init,
                fast=fast,
                return_states=return_states,
                device=device,
                dtype=dtype,
            ),
        )


class _ConvGRUNd(_ConvLayer):
    def __init__(
        self,
        in_channels: int,
        hidden_channels: int,
        kernel_size: int | Sequence[int],
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        *,
        spatial_size: int | Sequence[int],
        padding: str = "same",
        recurrent_dropout: float = 0.0,
        zoneout: float | Sequence[float] = 0.0,
        init: str = "pytorch",
        fast: dispatch.Fast = "auto",
        return_states: Sequence[str] = (),
    ) -> None:
        self.bias = bias
        self._setup(
            ConvGRUStep,
            in_channels,
            hidden_channels,
            kernel_size,
            num_layers,
            bidirectional,
            spatial_size,
            dict(bias=bias, padding=padding),
            dict(
                batch_first=batch_first,
                dropout=dropout,
                recurrent_dropout=recurrent_dropout,
                zoneout=zoneout,
                init=init,
                fast=fast,
                return_states=return_states,
                device=device,
                dtype=dtype,
            ),
        )


_LSTM_DOC = r"""Multi-layer convolutional LSTM with peepholes over {dims}-D frames (Shi et al. 2015).

    For each layer and step (``*`` convolution with ``"same"`` padding, ``∘`` Hadamard product)::

        i_t = sigma(W_xi * X_t + W_hi * H_{{t-1}} + W_ci ∘ C_{{t-1}} + b_i)
        f_t = sigma(W_xf * X_t + W_hf * H_{{t-1}} + W_cf ∘ C_{{t-1}} + b_f)
        C_t = f_t ∘ C_{{t-1}} + i_t ∘ tanh(W_xc * X_t + W_hc * H_{{t-1}} + b_c)
        o_t = sigma(W_xo * X_t + W_ho * H_{{t-1}} + W_co ∘ C_t + b_o)
        H_t = o_t ∘ tanh(C_t)

    Shi, Chen, Wang, Yeung, Wong & Woo (2015), "Convolutional LSTM Network: A Machine Learning
    Approach for Precipitation Nowcasting", NeurIPS. See :class:`carousel.cells.conv.ConvLSTM`.

    Args:
        in_channels, hidden_channels: channels of ``X_t`` and of ``H_t``, ``C_t``.
        kernel_size: of both convolutions, an int or {dims} ints.
        num_layers, bias, batch_first, dropout, bidirectional, device, dtype: as ``torch.nn.LSTM``;
            layer ``k > 0`` reads the outputs of layer ``k - 1`` (both directions concatenated along
            the channels).
        spatial_size: the frame, {dims} ints (or one for all); fixed, since the paper's peepholes
            ``W_c.`` have the shape of the memory.
        peepholes: True / ``"hadamard"`` (the paper's, ``(C_h, *spatial_size)``), ``"channel"``
            (one weight per channel) or False.
        padding: ``"same"``.
        recurrent_dropout, zoneout, init, fast, return_states: as :class:`carousel.runner.RecurrentLayer`
            (recurrent dropout and zoneout draw one mask entry per channel and position).

    Shapes: input ``(T, B, C_in, {frame})`` (``(B, T, ...)`` with ``batch_first``), ``(T, C_in, {frame})``
    unbatched, or a ``PackedSequence`` of frames; ``lengths=`` or ``mask=`` for right-padded batches.
    Returns ``output, (h_n, c_n)``: ``output`` ``(T, B, D * C_h, {frame})``, ``h_n`` and ``c_n``
    ``(D * num_layers, B, C_h, {frame})``. Parameters ``weight_ih_l{{k}}`` ``(4 C_h, C_in, *kernel)``,
    ``weight_hh_l{{k}}`` ``(4 C_h, C_h, *kernel)`` (blocks ``i, f, c, o``), ``bias_l{{k}}``,
    ``weight_ci_l{{k}}``, ``weight_cf_l{{k}}``, ``weight_co_l{{k}}`` (``_reverse`` for the backward direction).

    Example:
        >>> import torch
        >>> from carousel.nn.conv import {name}
        >>> layer = {name}(2, 4, 3, num_layers=2, spatial_size={example_frame})
        >>> out, (h, c) = layer(torch.randn(5, 3, 2, {example_shape}), lengths=torch.tensor([5, 4, 2]))
        >>> tuple(out.shape), tuple(c.shape)
        ((5, 3, 4, {example_shape}), (2, 3, 4, {example_shape}))
    """

_GRU_DOC = r"""Multi-layer convolutional GRU over {dims}-D frames (Ballas et al. 2016).

    For each layer and step (``*`` convolution with ``"same"`` padding, ``⊙`` elementwise)::

        z_t = sigma(W_z * x_t + U_z * h_{{t-1}} + b_z)
        r_t = sigma(W_r * x_t + U_r * h_{{t-1}} + b_r)
        h~_t = tanh(W * x_t + U * (r_t ⊙ h_{{t-1}}) + b)
        h_t = (1 - z_t) h_{{t-1}} + z_t h~_t

    Ballas, Yao, Pal & Courville (2016), "Delving Deeper into Convolutional Networks for Learning
    Video Representations", ICLR. See :class:`carousel.cells.conv.ConvGRU`.

    Args: as :class:`ConvLSTM{dims}d`, without ``peepholes``. Shapes as there; returns
    ``output, h_n``. Parameters ``weight_ih_l{{k}}`` ``(3 C_h, C_in, *kernel)``, ``weight_hh_l{{k}}``
    ``(3 C_h, C_h, *kernel)`` (blocks ``z, r, h~``), ``bias_l{{k}}``.

    Example:
        >>> import torch
        >>> from carousel.nn.conv import {name}
        >>> layer = {name}(2, 4, 3, bidirectional=True, batch_first=True, spatial_size={example_frame})
        >>> out, h = layer(torch.randn(3, 5, 2, {example_shape}))
        >>> tuple(out.shape), tuple(h.shape)
        ((3, 5, 8, {example_shape}), (2, 3, 4, {example_shape}))
    """

_FRAMES = {1: ("L", "6", "6"), 2: ("H, W", "(5, 6)", "5, 6"), 3: ("D, H, W", "(3, 4, 5)", "3, 4, 5")}


def _doc(template: str, name: str, dims: int) -> str:
    frame, example_frame, example_shape = _FRAMES[dims]
    return template.format(dims=dims, name=name, frame=frame, example_frame=example_frame, example_shape=example_shape)


class ConvLSTM1d(_ConvLSTMNd):
    __doc__ = _doc(_LSTM_DOC, "ConvLSTM1d", 1)
    dims = 1


class ConvLSTM2d(_ConvLSTMNd):
    __doc__ = _doc(_LSTM_DOC, "ConvLSTM2d", 2)
    dims = 2


class ConvLSTM3d(_ConvLSTMNd):
    __doc__ = _doc(_LSTM_DOC, "ConvLSTM3d", 3)
    dims = 3


class ConvGRU1d(_ConvGRUNd):
    __doc__ = _doc(_GRU_DOC, "ConvGRU1d", 1)
    dims = 1


class ConvGRU2d(_ConvGRUNd):
    __doc__ = _doc(_GRU_DOC, "ConvGRU2d", 2)
    dims = 2


class ConvGRU3d(_ConvGRUNd):
    __doc__ = _doc(_GRU_DOC, "ConvGRU3d", 3)
    dims = 3

"""``IndRNN`` and the residual ``ResIndRNN``: independently recurrent layers with the paper's
recurrent-weight constraint. The equations are in :mod:`carousel.cells.indrnn`."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

from carousel.cells.indrnn import IndRNN as IndRNNStep
from carousel.cells.simple import _check_size
from carousel.ops.activations import Activation
from carousel.runner import dispatch
from carousel.runner.layer import RecurrentLayer
from carousel.runner.sequence import as_lengths, check_input, lengths_from_mask


class IndRNN(RecurrentLayer):
    r"""Multi-layer IndRNN, with ``torch.nn.RNN``'s arguments and returns.

    For each layer and step (``(.)`` the elementwise product)::

        h_t = sigma(W x_t + u (.) h_{t-1} + b),     |u_n| <= U

    Li, Li, Cook, Zhu & Gao (2018), "Independently Recurrent Neural Network (IndRNN): Building A
    Longer and Deeper RNN", CVPR; see :class:`carousel.cells.indrnn.IndRNN`.

    The constraint: with ``recurrent_max=U`` (take ``U = gamma^(1/T)`` from
    :func:`carousel.cells.indrnn.recurrent_bound`), the cell uses ``u`` clamped to ``[-U, U]``, and
    this layer clips its stored ``weight_hh_l*`` to ``[-U, U]`` in place before every forward pass
    in training mode, i.e. after every optimizer update, as the paper does. Clipping the stored
    value (rather than only clamping it in the step) keeps the gradient of a weight that reached
    the bound, so it can come back. The stored weights are written only when one is out of bounds,
    so several forward passes before one backward pass are safe. :meth:`constrain_` clips on demand
    (e.g. right after ``optimizer.step()``, before saving).

    Args:
        input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional, device,
        dtype: as ``torch.nn.RNN``.
        nonlinearity: ``sigma`` (default ``"relu"``).
        recurrent_max: ``U``, or None for no constraint.
        recurrent_init: ``(low, high)`` of the uniform initialisation of ``u`` (default ``(0, 1)``).
        last_layer_recurrent_init: another range for the last layer's ``u`` (None: the same); the
            paper initialises the last layer near 1 for long memory, e.g. ``(0.5 ** (1 / T), U)``.
        recurrent_dropout, zoneout: as :class:`carousel.nn.LSTM` (for ``h``).
        init: ``"pytorch"`` or ``"keras"`` for ``W`` and ``b``.
        fast: as :class:`carousel.nn.LSTM`; IndRNN has no fused op, ``"auto"`` runs the reference loop.

    Parameters: ``weight_ih_l{k}`` ``(H, I)``, ``weight_hh_l{k}`` ``(H,)`` (the vector ``u``),
    ``bias_ih_l{k}`` ``(H,)`` (``_reverse`` for the backward direction). Returns ``output, h_n``.

    Example:
        >>> import torch
        >>> from carousel.cells.indrnn import recurrent_bound
        >>> from carousel.nn.indrnn import IndRNN
        >>> rnn = IndRNN(2, 16, num_layers=2, batch_first=True, recurrent_max=recurrent_bound(50))
        >>> out, h = rnn(torch.randn(4, 50, 2))
        >>> out.shape, h.shape
        (torch.Size([4, 50, 16]), torch.Size([2, 4, 16]))
        >>> bool(rnn.weight_hh_l1.abs().max() <= recurrent_bound(50))
        True
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
        nonlinearity: Activation = "relu",
        recurrent_max: float | None = None,
        recurrent_init: tuple[float, float] = (0.0, 1.0),
        last_layer_recurrent_init: tuple[float, float] | None = None,
        recurrent_dropout: float = 0.0,
        zoneout: float = 0.0,
        init: str = "pytorch",
        fast: dispatch.Fast = "auto",
    ) -> None:
        self.hidden_size = hidden_size
        self.bias = bias
        self.recurrent_max = recurrent_max
        last = recurrent_init if last_layer_recurrent_init is None else last_layer_recurrent_init

        def make(k: int, n: int) -> IndRNNStep:
            return IndRNNStep(
                n,
                hidden_size,
                nonlinearity=nonlinearity,
                bias=bias,
                recurrent_max=recurrent_max,
                recurrent_init=last if k == num_layers - 1 else recurrent_init,
            )

        super().__init__(
            make,
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

    @torch.no_grad()
    def constrain_(self) -> None:
        """Clip every stored recurrent weight vector to ``[-U, U]`` in place (no-op without ``U``)."""
        num_dirs = 2 if self.bidirectional else 1
        for k, cell in enumerate(self.cells):
            for d in range(num_dirs):
                cell.constrain_(self.cell_parameters(k, d)["weight_hh"])  # type: ignore[attr-defined]

    def forward(self, input, hx=None, *, lengths=None, mask=None):
        """As :meth:`carousel.runner.RecurrentLayer.forward`; in training mode, stored recurrent
        weights outside ``[-U, U]`` are first clipped back in place."""
        if self.training and self.recurrent_max is not None:
            # Write only when a weight is out of bounds (after an update): an in-place write would
            # invalidate graphs of earlier forward passes that still await their backward pass.
            num_dirs = 2 if self.bidirectional else 1
            us = [self.cell_parameters(k, d)["weight_hh"] for k in range(self.num_layers) for d in range(num_dirs)]
            if bool(torch.stack([u.detach().abs().max() for u in us]).max() > self.recurrent_max):
                self.constrain_()
        return super().forward(input, hx, lengths=lengths, mask=mask)


Packed = PackedSequence


def _rows(x: Tensor | Packed, fn: Callable[[Tensor], Tensor]) -> Tensor | Packed:
    """Apply ``fn`` to the ``(N, features)`` rows of a ``(T, B, F)`` tensor or a packed sequence."""
    if isinstance(x, PackedSequence):
        return PackedSequence(fn(x.data), x.batch_sizes, x.sorted_indices, x.unsorted_indices)
    return fn(x.reshape(-1, x.shape[-1])).view(*x.shape[:-1], -1)


def _add(a: Tensor | Packed, b: Tensor | Packed) -> Tensor | Packed:
    if isinstance(a, PackedSequence):
        return PackedSequence(a.data + b.data, a.batch_sizes, a.sorted_indices, a.unsorted_indices)  # type: ignore[union-attr]
    return a + b  # type: ignore[operator]


class ResIndRNN(nn.Module):
    r"""Deep residual IndRNN (the paper's res-IndRNN): an IndRNN input layer followed by
    ``num_blocks`` residual blocks, each adding to its input two batch-normalised IndRNN layers::

        z^0      = IndRNN(x)                                   input layer, input_size -> H
        z^{k+1}  = z^k + IndRNN(BN(IndRNN(BN(z^k))))           k = 0 .. num_blocks - 1
        IndRNN(v)_t = relu(W v_t + u (.) h_{t-1} + b)

    Li, Li, Cook, Zhu & Gao (2018), "Independently Recurrent Neural Network (IndRNN): Building A
    Longer and Deeper RNN", CVPR, figure 1(b): the residual block is pre-activation,
    "BN - weight - recurrent + ReLU" twice, with an identity shortcut. ``batch_norm=False`` drops
    the two BN layers of each block. BN normalises each feature over the batch and all real (not
    padded) time steps. Unidirectional only.

    Args:
        input_size: features of the input.
        hidden_size: units ``H`` of every IndRNN layer.
        num_blocks: residual blocks (the network has ``1 + 2 * num_blocks`` IndRNN layers).
        batch_norm: batch normalisation inside the blocks.
        batch_first: input and output are ``(B, T, F)``.
        nonlinearity, recurrent_max, recurrent_init, init: as :class:`IndRNN`, for every layer.
        device, dtype: factory arguments.

    ``forward(input, hx=None, *, lengths=None, mask=None)``: input ``(T, B, I)`` (``(B, T, I)`` with
    ``batch_first``) or a ``PackedSequence``; ``hx`` of shape ``(1 + 2 * num_blocks, B, H)``.
    Returns ``output`` (``(T, B, H)``, zero on padded steps) and ``h_n`` of the same shape as ``hx``.

    Example:
        >>> import torch
        >>> from carousel.nn.indrnn import ResIndRNN
        >>> net = ResIndRNN(3, 16, num_blocks=2, batch_first=True)
        >>> out, h = net(torch.randn(4, 20, 3), lengths=torch.tensor([20, 9, 5, 1]))
        >>> out.shape, h.shape
        (torch.Size([4, 20, 16]), torch.Size([5, 4, 16]))
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_blocks: int,
        *,
        batch_norm: bool = True,
        batch_first: bool = False,
        nonlinearity: Activation = "relu",
        recurrent_max: float | None = None,
        recurrent_init: tuple[float, float] = (0.0, 1.0),
        init: str = "pytorch",
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        self.input_size = _check_size("input_size", input_size, 1)
        self.hidden_size = _check_size("hidden_size", hidden_size, 1)
        self.num_blocks = _check_size("num_blocks", num_blocks, 0)
        self.batch_norm = bool(batch_norm)
        self.batch_first = bool(batch_first)
        factory = {"device": device, "dtype": dtype}

        def layer(n: int) -> IndRNN:
            return IndRNN(
                n,
                hidden_size,
                nonlinearity=nonlinearity,
                recurrent_max=recurrent_max,
                recurrent_init=recurrent_init,
                init=init,
                **factory,  # type: ignore[arg-type]
            )

        def norm() -> nn.Module:
            return nn.BatchNorm1d(hidden_size, **factory) if self.batch_norm else nn.Identity()  # type: ignore[arg-type]

        self.input_layer = layer(input_size)
        self.blocks = nn.ModuleList(
            nn.ModuleList([norm(), layer(hidden_size), norm(), layer(hidden_size)]) for _ in range(num_blocks)
        )

    @property
    def num_layers(self) -> int:
        return 1 + 2 * self.num_blocks

    def forward(self, input: Tensor | Packed, hx: Tensor | None = None, *, lengths=None, mask=None):
        ref = self.input_layer.weight_ih_l0
        if isinstance(input, PackedSequence):
            if lengths is not None or mask is not None:
                raise ValueError("lengths: a PackedSequence carries its own lengths, got lengths= or mask= as well")
            check_input("input", input.data, self.input_size, ref)
            x: Tensor | Packed = input
            batch = int(input.batch_sizes[0])
        elif isinstance(input, Tensor):
            if input.dim() != 3:
                layout = "(batch, time, features)" if self.batch_first else "(time, batch, features)"
                raise ValueError(
                    f"input: expected a 3-D tensor {layout}, got {input.dim()}-D with shape {tuple(input.shape)}"
                )
            check_input("input", input, self.input_size, ref)
            x = input.transpose(0, 1) if self.batch_first else input
            steps, batch = x.shape[0], x.shape[1]
            if lengths is not None and mask is not None:
                raise ValueError("lengths: expected lengths= or mask=, got both")
            if mask is not None:
                lens = lengths_from_mask(mask, self.batch_first, batch, steps, torch.device("cpu"))
            elif lengths is not None:
                lens = as_lengths(lengths, batch, steps, torch.device("cpu"))
            else:
                lens = None
            if lens is not None:
                x = pack_padded_sequence(x, lens, enforce_sorted=False)
        else:
            raise TypeError(f"input: expected a Tensor or PackedSequence, got {type(input).__name__}")
        expected = (self.num_layers, batch, self.hidden_size)
        if hx is not None and (not isinstance(hx, Tensor) or tuple(hx.shape) != expected):
            got = tuple(hx.shape) if isinstance(hx, Tensor) else type(hx).__name__
            raise ValueError(f"hx: expected shape {expected} (1 + 2 * num_blocks, batch, hidden_size), got {got}")

        def h0(j: int) -> Tensor | None:
            return None if hx is None else hx[j : j + 1]

        finals = []
        z, h = self.input_layer(x, h0(0))
        finals.append(h)
        for b, (bn1, ind1, bn2, ind2) in enumerate(self.blocks):  # type: ignore[misc]
            v, h1 = ind1(_rows(z, bn1), h0(1 + 2 * b))
            v, h2 = ind2(_rows(v, bn2), h0(2 + 2 * b))
            z = _add(z, v)
            finals += [h1, h2]
        h_n = torch.cat(finals, dim=0)
        if isinstance(input, PackedSequence):
            return z, h_n
        if isinstance(z, PackedSequence):
            z, _ = pad_packed_sequence(z, total_length=input.shape[1 if self.batch_first else 0])
        return (z.transpose(0, 1) if self.batch_first else z), h_n

    def constrain_(self) -> None:
        """Clip every recurrent weight vector to ``[-U, U]`` in place."""
        for module in self.modules():
            if isinstance(module, IndRNN):
                module.constrain_()

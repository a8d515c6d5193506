"""``carousel.nn.GRU`` and ``carousel.nn.GRUCell``: drop-ins for ``torch.nn.GRU`` / ``GRUCell`` with
the GRU forms of the literature as keyword options; ``MUT1``, ``MUT2``, ``MUT3``: the mutated units
of Jozefowicz et al. (2015) as layers."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from carousel.cells.gru import GRU as GRUStep
from carousel.cells.gru import MUT as MUTStep
from carousel.ops.activations import Activation
from carousel.runner import dispatch
from carousel.runner.layer import RecurrentLayer
from carousel.runner.sequence import check_input


class GRU(RecurrentLayer):
    r"""Multi-layer GRU with ``torch.nn.GRU``'s arguments, returns and parameter names.

    For each layer and step (``(.)`` is the elementwise product; see :class:`carousel.cells.gru.GRU`
    for every variant)::

        r_t = sigma_g(W_ir x_t + b_ir + W_hr h_{t-1} + b_hr)
        z_t = sigma_g(W_iz x_t + b_iz + W_hz h_{t-1} + b_hz)
        n_t = sigma_c(W_in x_t + b_in + r_t (.) (W_hn h_{t-1} + b_hn))      [reset_after=True]
        n_t = sigma_c(W_in x_t + b_in + W_hn (r_t (.) h_{t-1}) + b_hn)      [reset_after=False]
        h_t = (1 - z_t) (.) n_t + z_t (.) h_{t-1}

    Cho et al. (2014), "Learning Phrase Representations using RNN Encoder-Decoder for Statistical
    Machine Translation"; ``"MGU"``: Zhou et al. (2016); ``"GRU1"``-``"GRU3"``: Dey & Salem (2017).

    Args:
        input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional, device,
        dtype: as ``torch.nn.GRU``.
        reset_after: True (default, ``torch.nn.GRU``) applies the reset gate after the recurrent
            product; False before it, as in Cho et al. (2014).
        variant: ``"standard"``, ``"MGU"`` (minimal gated unit: one forget gate for both roles),
            ``"GRU1"`` (gates from ``h_{t-1}`` and bias), ``"GRU2"`` (from ``h_{t-1}`` only) or
            ``"GRU3"`` (from the bias only).
        gate_activation, candidate_activation: ``sigma_g`` (sigmoid) and ``sigma_c`` (tanh) by
            name or callable.
        recurrent_dropout: variational dropout rate on ``h_{t-1}`` where the recurrent products read
            it (one mask per sequence; Gal & Ghahramani 2016); the memory term ``z h_{t-1}`` keeps
            the unmasked state.
        zoneout: zoneout rate for ``h`` (Krueger et al. 2016).
        init: ``"pytorch"`` (U(-1/sqrt(H), 1/sqrt(H)), as ``torch.nn.GRU``) or ``"keras"``
            (Glorot input weights, orthogonal recurrent weights, zero biases).
        fast: ``"auto"`` runs torch's fused op when it computes the configuration exactly, else the
            reference loop; ``True`` raises when no fast path applies; ``False`` always runs the
            reference loop. See :mod:`carousel.runner.dispatch`.

    Shapes: input ``(T, B, I)`` (``(B, T, I)`` if ``batch_first``), ``(T, I)`` unbatched, or a
    ``PackedSequence``; ``hx = h_0`` of shape ``(D * num_layers, B, H)``. Returns ``output, h_n``
    like ``torch.nn.GRU``. ``forward(x, hx, lengths=...)`` or ``mask=...`` runs right-padded
    batches without packing.

    Example:
        >>> import torch
        >>> from carousel.nn.gru import GRU
        >>> gru = GRU(10, 20, num_layers=2, batch_first=True)
        >>> out, h = gru(torch.randn(3, 7, 10), lengths=torch.tensor([7, 5, 2]))
        >>> out.shape, h.shape
        (torch.Size([3, 7, 20]), torch.Size([2, 3, 20]))
        >>> gru.load_state_dict(torch.nn.GRU(10, 20, num_layers=2).state_dict())
        <All keys matched successfully>
        >>> GRU(10, 20, variant="MGU").implementation
        'reference'
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
        reset_after: bool = True,
        variant: str = "standard",
        gate_activation: Activation | None = None,
        candidate_activation: Activation | None = None,
        recurrent_dropout: float = 0.0,
        zoneout: float | Sequence[float] = 0.0,
        init: str = "pytorch",
        fast: dispatch.Fast = "auto",
    ) -> None:
        options = dict(
            bias=bias,
            reset_after=reset_after,
            variant=variant,
            gate_activation=gate_activation,
            candidate_activation=candidate_activation,
        )
        self.hidden_size = hidden_size
        self.bias = bias
        super().__init__(
            lambda k, n: GRUStep(n, hidden_size, **options),
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


class GRUCell(nn.Module):
    r"""One GRU step as a module: a drop-in for ``torch.nn.GRUCell`` with the options of
    :class:`carousel.nn.gru.GRU` that belong to the cell.

    ``forward(input, hx=None) -> h_1``: input ``(B, I)`` or ``(I,)``; ``hx`` of shape ``(B, H)``
    or ``(H,)`` (zeros when omitted). Parameters ``weight_ih``, ``weight_hh``, ``bias_ih``,
    ``bias_hh`` as in ``torch.nn.GRUCell`` (a variant leaves out the blocks it lacks). The equations
    are those of :class:`carousel.cells.gru.GRU`.

    Example:
        >>> import torch
        >>> from carousel.nn.gru import GRUCell
        >>> cell = GRUCell(4, 6, reset_after=False)
        >>> h = cell(torch.randn(2, 4))
        >>> h = cell(torch.randn(2, 4), h)
        >>> h.shape
        torch.Size([2, 6])
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        bias: bool = True,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        *,
        reset_after: bool = True,
        variant: str = "standard",
        gate_activation: Activation | None = None,
        candidate_activation: Activation | None = None,
        init: str = "pytorch",
        fast: dispatch.Fast = "auto",
    ) -> None:
        super().__init__()
        self.cell = GRUStep(
            input_size,
            hidden_size,
            bias=bias,
            reset_after=reset_after,
            variant=variant,
            gate_activation=gate_activation,
            candidate_activation=candidate_activation,
        )
        self.input_size, self.hidden_size, self.bias, self.init = input_size, hidden_size, bias, init
        for name, shape in self.cell.parameter_shapes().items():
            self.register_parameter(name, nn.Parameter(torch.empty(shape, device=device, dtype=dtype)))
        self.reset_parameters()
        self.fast = dispatch.check_fast(fast)
        self.vendor_refusal = self.cell.vendor_refusal()
        planned = dispatch.plan(self.fast, self.vendor_refusal, "one step has nothing to fuse over time")
        self._vendor = planned == "vendor"

    @property
    def implementation(self) -> str:
        """``"vendor"`` (``torch.gru_cell``) or ``"reference"``: what ``forward`` runs."""
        return "vendor" if self._vendor else "reference"

    def reset_parameters(self) -> None:
        self.cell.reset_parameters(dict(self.named_parameters()), self.init)

    def forward(self, input: Tensor, hx: Tensor | None = None) -> Tensor:
        if not isinstance(input, Tensor):
            raise TypeError(f"input: expected a Tensor, got {type(input).__name__}")
        if input.dim() not in (1, 2):
            raise ValueError(
                f"input: expected a 2-D (batch, features) or 1-D tensor, "
                f"got {input.dim()}-D with shape {tuple(input.shape)}"
            )
        ref = self.weight_ih
        check_input("input", input, self.input_size, ref)
        unbatched = input.dim() == 1
        x = input.unsqueeze(0) if unbatched else input
        if hx is None:
            h = x.new_zeros(x.shape[0], self.hidden_size)
        else:
            h = self._check_state(hx, x.shape[0], unbatched, ref)
        if self._vendor:
            h_new = torch.gru_cell(
                x,
                h,
                self.weight_ih,
                self.weight_hh,
                self.bias_ih if self.bias else None,
                self.bias_hh if self.bias else None,
            )
        else:
            params = dict(self._parameters)
            h_new, _ = self.cell.step(params, self.cell.project(params, x), (h,))  # type: ignore[arg-type]
        return h_new.squeeze(0) if unbatched else h_new

    def _check_state(self, hx: object, batch: int, unbatched: bool, ref: Tensor) -> Tensor:
        expected = (self.hidden_size,) if unbatched else (batch, self.hidden_size)
        if not isinstance(hx, Tensor):
            raise TypeError(f"hx: expected a Tensor of shape {expected}, got {type(hx).__name__}")
        if tuple(hx.shape) != expected:
            raise ValueError(f"hx: expected shape {expected}, got {tuple(hx.shape)}")
        if hx.dtype != ref.dtype:
            raise TypeError(f"hx: expected dtype {ref.dtype} (the parameters' dtype), got {hx.dtype}")
        if hx.device != ref.device:
            raise ValueError(f"hx: expected device {ref.device} (the parameters' device), got {hx.device}")
        return hx.unsqueeze(0) if unbatched else hx

    def extra_repr(self) -> str:
        return repr(self.cell)


class _MUTLayer(RecurrentLayer):
    architecture: int

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
        recurrent_dropout: float = 0.0,
        zoneout: float | Sequence[float] = 0.0,
        init: str = "pytorch",
        fast: dispatch.Fast = "auto",
    ) -> None:
        arch = self.architecture
        self.hidden_size = hidden_size
        self.bias = bias
        super().__init__(
            lambda k, n: MUTStep(n, hidden_size, architecture=arch, bias=bias),
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


class MUT1(_MUTLayer):
    r"""Multi-layer MUT1 (Jozefowicz, Zaremba & Sutskever 2015, "An Empirical Exploration of
    Recurrent Network Architectures")::

        z = sigm(W_xz x_t + b_z)
        r = sigm(W_xr x_t + W_hr h_t + b_r)
        h_{t+1} = tanh(W_hh (r (.) h_t) + tanh(x_t) + b_h) (.) z + h_t (.) (1 - z)

    ``tanh(x_t)`` enters a vector of ``hidden_size``, so every layer needs its input size equal to
    ``hidden_size`` (a bidirectional stack of two or more layers is refused). Arguments, shapes and
    returns as :class:`GRU` (``output, h_n``), with ``recurrent_dropout``, ``zoneout``, ``init`` and
    ``fast``; parameters ``weight_ih_l{k}`` (``W_xz, W_xr``), ``weight_hh_l{k}`` (``W_hr, W_hh``), ``bias_l{k}``
    (``b_z, b_r, b_h``). Runs the reference loop (no fused op computes it).

    Example:
        >>> import torch
        >>> from carousel.nn.gru import MUT1
        >>> out, h = MUT1(8, 8, num_layers=2)(torch.randn(5, 3, 8))
        >>> out.shape, h.shape
        (torch.Size([5, 3, 8]), torch.Size([2, 3, 8]))
    """

    architecture = 1


class MUT2(_MUTLayer):
    r"""Multi-layer MUT2 (Jozefowicz, Zaremba & Sutskever 2015)::

        z = sigm(W_xz x_t + W_hz h_t + b_z)
        r = sigm(x_t + W_hr h_t + b_r)
        h_{t+1} = tanh(W_hh (r (.) h_t) + W_xh x_t + b_h) (.) z + h_t (.) (1 - z)

    ``x_t`` enters the reset gate directly, so every layer needs its input size equal to
    ``hidden_size``. Arguments and returns as :class:`MUT1`; parameters ``weight_ih_l{k}``
    (``W_xz, W_xh``), ``weight_hh_l{k}`` (``W_hz, W_hr, W_hh``), ``bias_l{k}``.

    Example:
        >>> import torch
        >>> from carousel.nn.gru import MUT2
        >>> out, h = MUT2(8, 8, batch_first=True)(torch.randn(3, 5, 8))
        >>> out.shape, h.shape
        (torch.Size([3, 5, 8]), torch.Size([1, 3, 8]))
    """

    architecture = 2


class MUT3(_MUTLayer):
    r"""Multi-layer MUT3 (Jozefowicz, Zaremba & Sutskever 2015)::

        z = sigm(W_xz x_t + W_hz tanh(h_t) + b_z)
        r = sigm(W_xr x_t + W_hr h_t + b_r)
        h_{t+1} = tanh(W_hh (r (.) h_t) + W_xh x_t + b_h) (.) z + h_t (.) (1 - z)

    Any input size. Arguments and returns as :class:`MUT1`; parameters ``weight_ih_l{k}``
    (``W_xz, W_xr, W_xh``), ``weight_hh_l{k}`` (``W_hz, W_hr, W_hh``), ``bias_l{k}``.

    Example:
        >>> import torch
        >>> from carousel.nn.gru import MUT3
        >>> out, h = MUT3(3, 8, bidirectional=True)(torch.randn(5, 2, 3))
        >>> out.shape, h.shape
        (torch.Size([5, 2, 16]), torch.Size([2, 2, 8]))
    """

    architecture = 3

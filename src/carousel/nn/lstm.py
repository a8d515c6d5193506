"""``carousel.nn.LSTM`` and ``carousel.nn.LSTMCell``: drop-ins for ``torch.nn.LSTM`` / ``LSTMCell``
with every LSTM form of the literature as keyword options."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from carousel.cells.lstm import LSTM as LSTMStep
from carousel.ops.activations import Activation
from carousel.runner import dispatch
from carousel.runner.layer import RecurrentLayer
from carousel.runner.sequence import check_input


class LSTM(RecurrentLayer):
    r"""Multi-layer LSTM with ``torch.nn.LSTM``'s arguments, returns and parameter names.

    For each layer and step (``(.)`` is the elementwise product; see :class:`carousel.cells.LSTM`
    for every variant)::

        i_t = sigma_g(W_ii x_t + b_ii + W_hi h_{t-1} + b_hi [+ w_ci (.) c_{t-1}])
        f_t = sigma_g(W_if x_t + b_if + W_hf h_{t-1} + b_hf [+ w_cf (.) c_{t-1}])
        g_t = sigma_c(W_ig x_t + b_ig + W_hg h_{t-1} + b_hg)
        c_t = f_t (.) c_{t-1} + i_t (.) g_t
        o_t = sigma_g(W_io x_t + b_io + W_ho h_{t-1} + b_ho [+ w_co (.) c_t])
        h_t = o_t (.) sigma_h(c_t)                [h_t = W_hr h_t when proj_size > 0]

    Args:
        input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
        proj_size, device, dtype: as ``torch.nn.LSTM``.
        forget_gate: False gives the 1997 cell without forget gate.
        peepholes: diagonal peephole connections (Gers & Schmidhuber 2000).
        variant: ``"vanilla"``, Greff et al.'s ``"NIG" "NFG" "NOG" "NIAF" "NOAF" "NP" "CIFG"
            "FGR"``, or ``"full_peephole"`` (gates driven by ``c_{t-1}`` through full matrices).
        gate_activation, cell_activation, output_activation: ``sigma_g``, ``sigma_c``,
            ``sigma_h`` by name or callable.
        layer_norm: layer-normalised LSTM (Ba et al. 2016).
        recurrent_dropout: variational dropout on ``h_{t-1}`` (Gal & Ghahramani 2016).
        zoneout: zoneout rate for ``h`` and ``c``, or a pair ``(z_h, z_c)`` (Krueger et al. 2016).
        init: ``"pytorch"`` (U(-1/sqrt(H), 1/sqrt(H)), as ``torch.nn.LSTM``) or ``"keras"``
            (Glorot input weights, orthogonal recurrent weights, forget-gate bias 1).
        return_cell_states: also return ``c_t`` for every step of the last layer, shaped like the
            output with ``hidden_size`` features per direction.
        fast: ``"auto"`` runs torch's fused op when it computes the configuration exactly, else
            carousel's fused engine, else the reference loop; ``True`` raises when neither fast path
            applies; ``False`` always runs the reference loop. See :mod:`carousel.runner.dispatch`.

    Shapes: input ``(T, B, I)`` (``(B, T, I)`` if ``batch_first``), ``(T, I)`` unbatched, or a
    ``PackedSequence``; ``hx = (h_0, c_0)`` of shapes ``(D * num_layers, B, H_out)`` and
    ``(D * num_layers, B, H)``. Returns ``output, (h_n, c_n)`` (``"FGR"`` adds the gate state ``a``),
    then the cell states if ``return_cell_states``. ``forward(x, hx, lengths=...)`` or ``mask=...``
    runs right-padded batches without packing.

    Example:
        >>> import torch
        >>> from carousel.nn import LSTM
        >>> lstm = LSTM(10, 20, num_layers=2, batch_first=True)
        >>> out, (h, c) = lstm(torch.randn(3, 7, 10), lengths=torch.tensor([7, 5, 2]))
        >>> out.shape, h.shape
        (torch.Size([3, 7, 20]), torch.Size([2, 3, 20]))
        >>> lstm.load_state_dict(torch.nn.LSTM(10, 20, num_layers=2).state_dict())
        <All keys matched successfully>
        >>> LSTM(10, 20, variant="CIFG", zoneout=0.1).implementation
        'fused'
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
        proj_size: int = 0,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        *,
        forget_gate: bool = True,
        peepholes: bool | None = None,
        variant: str = "vanilla",
        gate_activation: Activation | None = None,
        cell_activation: Activation | None = None,
        output_activation: Activation | None = None,
        layer_norm: bool = False,
        recurrent_dropout: float = 0.0,
        zoneout: float | Sequence[float] = 0.0,
        init: str = "pytorch",
        return_cell_states: bool = False,
        fast: dispatch.Fast = "auto",
    ) -> None:
        options = dict(
            proj_size=proj_size,
            bias=bias,
            forget_gate=forget_gate,
            peepholes=peepholes,
            variant=variant,
            gate_activation=gate_activation,
            cell_activation=cell_activation,
            output_activation=output_activation,
            layer_norm=layer_norm,
        )
        self.hidden_size = hidden_size
        self.proj_size = proj_size
        self.bias = bias
        self.return_cell_states = bool(return_cell_states)
        super().__init__(
            lambda k, n: LSTMStep(n, hidden_size, **options),
            input_size,
            num_layers,
            bidirectional=bidirectional,
            batch_first=batch_first,
            dropout=dropout,
            recurrent_dropout=recurrent_dropout,
            zoneout=zoneout,
            init=init,
            fast=fast,
            return_states=("c",) if return_cell_states else (),
            device=device,
            dtype=dtype,
        )


class LSTMCell(nn.Module):
    r"""One LSTM step as a module: a drop-in for ``torch.nn.LSTMCell`` with the options of
    :class:`carousel.nn.LSTM` that belong to the cell.

    ``forward(input, hx=None) -> (h_1, c_1)``: input ``(B, I)`` or ``(I,)``; ``hx = (h_0, c_0)``
    of shapes ``(B, H_out)`` and ``(B, H)`` (zeros when omitted). Parameters ``weight_ih``,
    ``weight_hh``, ``bias_ih``, ``bias_hh`` as in ``torch.nn.LSTMCell``, plus those the options add.
    The equations are those of :class:`carousel.cells.LSTM`.

    Example:
        >>> import torch
        >>> from carousel.nn import LSTMCell
        >>> cell = LSTMCell(4, 6, peepholes=True)
        >>> h, c = cell(torch.randn(2, 4))
        >>> h, c = cell(torch.randn(2, 4), (h, c))
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
        proj_size: int = 0,
        forget_gate: bool = True,
        peepholes: bool | None = None,
        variant: str = "vanilla",
        gate_activation: Activation | None = None,
        cell_activation: Activation | None = None,
        output_activation: Activation | None = None,
        layer_norm: bool = False,
        init: str = "pytorch",
        fast: dispatch.Fast = "auto",
    ) -> None:
        super().__init__()
        self.cell = LSTMStep(
            input_size,
            hidden_size,
            proj_size=proj_size,
            bias=bias,
            forget_gate=forget_gate,
            peepholes=peepholes,
            variant=variant,
            gate_activation=gate_activation,
            cell_activation=cell_activation,
            output_activation=output_activation,
            layer_norm=layer_norm,
        )
        self.input_size, self.hidden_size, self.bias, self.init = input_size, hidden_size, bias, init
        for name, shape in self.cell.parameter_shapes().items():
            self.register_parameter(name, nn.Parameter(torch.empty(shape, device=device, dtype=dtype)))
        self.reset_parameters()
        self.fast = dispatch.check_fast(fast)
        refusal = self.cell.vendor_refusal()
        if refusal is None and proj_size:
            refusal = "torch's fused LSTM cell has no projection"
        self.vendor_refusal = refusal
        self._vendor = dispatch.plan(self.fast, refusal, "one step has nothing to fuse over time") == "vendor"

    @property
    def implementation(self) -> str:
        """``"vendor"`` (``torch.lstm_cell``) or ``"reference"``: what ``forward`` runs."""
        return "vendor" if self._vendor else "reference"

    def reset_parameters(self) -> None:
        self.cell.reset_parameters(dict(self.named_parameters()), self.init)

    def forward(self, input: Tensor, hx: Sequence[Tensor] | None = None) -> tuple[Tensor, ...]:
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
        batch = x.shape[0]
        if hx is None:
            state = self.cell.init_state(batch, dtype=x.dtype, device=x.device)
        else:
            state = self._check_state(hx, batch, unbatched, ref)
        if self._vendor:
            h, c = torch.lstm_cell(
                x,
                state,
                self.weight_ih,
                self.weight_hh,
                self.bias_ih if self.bias else None,
                self.bias_hh if self.bias else None,
            )
            new: tuple[Tensor, ...] = (h, c)
        else:
            params = dict(self._parameters)
            _, new = self.cell.step(params, self.cell.project(params, x), state)  # type: ignore[arg-type]
        return tuple(s.squeeze(0) for s in new) if unbatched else new

    def _check_state(self, hx, batch: int, unbatched: bool, ref: Tensor) -> tuple[Tensor, ...]:
        names, sizes = self.cell.state_names, self.cell.state_sizes
        if not isinstance(hx, (tuple, list)) or len(hx) != len(names):
            got = f"a tuple of {len(hx)}" if isinstance(hx, (tuple, list)) else f"a {type(hx).__name__}"
            raise ValueError(f"hx: expected a tuple of {len(names)} tensors {names}, got {got}")
        out = []
        for j, (s, name, size) in enumerate(zip(hx, names, sizes)):
            expected = (size,) if unbatched else (batch, size)
            if not isinstance(s, Tensor) or tuple(s.shape) != expected:
                got = tuple(s.shape) if isinstance(s, Tensor) else type(s).__name__
                raise ValueError(f"hx[{j}] ({name}): expected shape {expected}, got {got}")
            if s.dtype != ref.dtype:
                raise TypeError(f"hx[{j}] ({name}): expected dtype {ref.dtype} (the parameters' dtype), got {s.dtype}")
            if s.device != ref.device:
                raise ValueError(
                    f"hx[{j}] ({name}): expected device {ref.device} (the parameters' device), got {s.device}"
                )
            out.append(s.unsqueeze(0) if unbatched else s)
        return tuple(out)

    def extra_repr(self) -> str:
        return repr(self.cell)

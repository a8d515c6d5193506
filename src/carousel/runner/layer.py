"""``RecurrentLayer``: any cell over time, stacked, bidirectional, with variable lengths.

Written once for every cell. A layer built from cells of ``carousel.cells`` takes the arguments and
returns the values of ``torch.nn.LSTM``: input ``(T, B, I)`` (``(B, T, I)`` with ``batch_first``),
``(T, I)`` unbatched, or a ``PackedSequence``; state as a tuple with one tensor per cell state of
shape ``(num_layers * num_directions, B, size)`` (a bare tensor when the cell has one state).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

from carousel.cells.base import Cell, as_shape, check_cell, input_shape
from carousel.kernels import vendor
from carousel.runner import dispatch
from carousel.runner.scan import variational_masks, zoneout_masks
from carousel.runner.sequence import as_lengths, check_input, lengths_from_mask, reverse_padded
from carousel.runner.stream import Stream

StateArg = Tensor | Sequence[Tensor] | None


def _rate(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= float(value) < 1.0:
        raise ValueError(f"{name}: expected a probability in [0, 1), got {value!r}")
    return float(value)


class RecurrentLayer(nn.Module):
    """Run any :class:`carousel.cells.Cell` over sequences.

    Args:
        make_cell: ``make_cell(layer, input_size) -> Cell`` builds the cell of layer ``layer``.
        input_size: features of the input.
        num_layers: stacked layers; layer ``k > 0`` reads the (concatenated) outputs of ``k - 1``.
        bidirectional: run a second cell backwards over each sequence (within its length) and
            concatenate the two outputs.
        batch_first: input and output are ``(B, T, F)``.
        dropout: dropout on the outputs of every layer but the last.
        recurrent_dropout: variational dropout on the state fed back (same mask at every step).
        zoneout: zoneout rate for every state, or one rate per state in the cell's state order.
        init: initialisation scheme understood by the cell (``"pytorch"`` or ``"keras"``).
        fast: ``"auto"`` picks the fastest exact implementation, ``True`` insists on a fast one
            (raising if none fits), ``False`` always runs the reference loop.
        return_states: names of cell states returned at every step (last layer, both directions
            concatenated) as a third return value.

    Parameters are named ``{name}_l{k}`` and ``{name}_l{k}_reverse`` after the cell's own names.

    Example:
        >>> import torch
        >>> from carousel.cells import LSTM
        >>> from carousel.runner import RecurrentLayer
        >>> layer = RecurrentLayer(lambda k, n: LSTM(n, 8, peepholes=True), 3, num_layers=2)
        >>> out, (h, c) = layer(torch.randn(5, 2, 3), lengths=torch.tensor([5, 3]))
        >>> out.shape, h.shape
        (torch.Size([5, 2, 8]), torch.Size([2, 2, 8]))
    """

    def __init__(
        self,
        make_cell: Callable[[int, int], Cell],
        input_size: int,
        num_layers: int = 1,
        *,
        bidirectional: bool = False,
        batch_first: bool = False,
        dropout: float = 0.0,
        recurrent_dropout: float = 0.0,
        zoneout: float | Sequence[float] = 0.0,
        init: str = "pytorch",
        fast: dispatch.Fast = "auto",
        return_states: Sequence[str] = (),
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        if isinstance(num_layers, bool) or not isinstance(num_layers, int) or num_layers < 1:
            raise ValueError(f"num_layers: expected an integer >= 1, got {num_layers!r}")
        self.num_layers = num_layers
        self.bidirectional = bool(bidirectional)
        self.batch_first = bool(batch_first)
        self.dropout = _rate("dropout", dropout)
        self.recurrent_dropout = _rate("recurrent_dropout", recurrent_dropout)
        self.init = init
        self.fast = dispatch.check_fast(fast)
        num_dirs = 2 if self.bidirectional else 1

        cells: list[Cell] = []
        size = input_size
        for k in range(num_layers):
            cell = check_cell(make_cell(k, size))
            cells.append(cell)
            size = num_dirs * cell.output_size
        self.cells = cells
        self.input_size = input_size
        self._input_shape = input_shape(cells[0])
        names = cells[0].state_names
        if any(c.state_names != names for c in cells):
            raise ValueError("make_cell: expected every layer's cell to have the same states")

        if isinstance(zoneout, (int, float)) and not isinstance(zoneout, bool):
            rates = (zoneout,) * len(names)
        elif isinstance(zoneout, (tuple, list)) and len(zoneout) == len(names):
            rates = tuple(zoneout)
        else:
            raise ValueError(f"zoneout: expected a rate or {len(names)} rates (one per state {names}), got {zoneout!r}")
        self.zoneout = tuple(_rate("zoneout", z) for z in rates)
        if any(self.zoneout) and any(c.output_state is None for c in cells):
            raise ValueError("zoneout: expected a cell whose output is one of its states, got output_state=None")
        if self.recurrent_dropout and any(not c.dropout_states for c in cells):
            raise ValueError(
                f"recurrent_dropout: {cells[0]!r} feeds back no state that can be dropped without "
                f"erasing its memory, got recurrent_dropout={self.recurrent_dropout}"
            )
        missing = [n for n in return_states if n not in names]
        if missing:
            raise ValueError(f"return_states: expected names among {names}, got {missing}")
        self.return_states = tuple(return_states)
        self._keep = tuple(names.index(n) for n in self.return_states)

        factory = {"device": device, "dtype": dtype}
        self._param_names: list[list[dict[str, str]]] = []
        for k, cell in enumerate(cells):
            per_dir = []
            for d in range(num_dirs):
                suffix = f"_l{k}" + ("_reverse" if d else "")
                mapping = {}
                for name, shape in cell.parameter_shapes().items():
                    full = name + suffix
                    self.register_parameter(full, nn.Parameter(torch.empty(shape, **factory)))
                    mapping[name] = full
                per_dir.append(mapping)
            self._param_names.append(per_dir)
        self._flat_names = [full for per_dir in self._param_names for m in per_dir for full in m.values()]
        self.reset_parameters()

        self.vendor_refusal = dispatch.vendor_refusal(
            cells, recurrent_dropout=self.recurrent_dropout, zoneout=self.zoneout, keep_states=self._keep
        )
        self.engine_refusal = dispatch.engine_refusal(cells, keep_states=self._keep)
        self._plan = dispatch.plan(self.fast, self.vendor_refusal, self.engine_refusal, cells)

    # ------------------------------------------------------------------ parameters
    def reset_parameters(self) -> None:
        """Re-initialise every parameter with the layer's ``init`` scheme."""
        for cell, per_dir in zip(self.cells, self._param_names):
            for mapping in per_dir:
                cell.reset_parameters({n: self._parameters[f] for n, f in mapping.items()}, self.init)  # type: ignore[misc]

    def cell_parameters(self, layer: int, direction: int = 0) -> dict[str, Tensor]:
        """The parameters of one cell under the cell's own names (``weight_ih``, ...)."""
        return {n: self._parameters[f] for n, f in self._param_names[layer][direction].items()}  # type: ignore[misc]

    def flatten_parameters(self) -> None:
        """Accepted for ``torch.nn.LSTM`` compatibility. The weights are handed to the fused op as
        they are stored, so there is nothing to re-pack."""

    @property
    def implementation(self) -> str:
        """What ``forward`` runs for this configuration on CPU: ``"vendor"`` (torch's fused op),
        ``"fused"`` (carousel's engine) or ``"reference"`` (the Python loop). A layer planned for
        the engine reports ``"reference"`` once the engine has failed to build in this process."""
        return dispatch.effective(self._plan, self.cells)

    def stream(self, batch: int = 1) -> Stream:
        """A :class:`~carousel.runner.stream.Stream` for online, step-by-step inference."""
        return Stream(self, batch)

    # ------------------------------------------------------------------ forward
    def forward(self, input: Tensor | PackedSequence, hx: StateArg = None, *, lengths=None, mask=None):
        """Run the layer. Returns ``(output, state)`` like ``torch.nn.LSTM`` (plus the per-step
        states named in ``return_states``). ``lengths`` (one per sequence) or ``mask`` (True on
        real steps) mark right-padded sequences; padded steps give zero outputs and leave the
        state unchanged, exactly as packing would."""
        packed = isinstance(input, PackedSequence)
        if packed:
            if lengths is not None or mask is not None:
                raise ValueError("lengths: a PackedSequence carries its own lengths, got lengths= or mask= as well")
            ref = self._parameters[self._flat_names[0]]
            check_input("input", input.data, self._input_shape, ref)
            batch, unbatched = int(input.batch_sizes[0]), False
        elif isinstance(input, Tensor):
            nd = len(self._input_shape)
            if input.dim() not in (nd + 1, nd + 2):
                raise ValueError(
                    f"input: expected a {nd + 2}-D batched tensor {self._layout()} or a {nd + 1}-D unbatched one, "
                    f"got {input.dim()}-D with shape {tuple(input.shape)}"
                )
            ref = self._parameters[self._flat_names[0]]
            unbatched = input.dim() == nd + 1
            if unbatched:
                input = input.unsqueeze(0 if self.batch_first else 1)
            check_input("input", input, self._input_shape, ref)
            batch = input.shape[0 if self.batch_first else 1]
        else:
            raise TypeError(f"input: expected a Tensor or PackedSequence, got {type(input).__name__}")
        state = self._check_state(hx, batch, unbatched, ref)

        if self._plan == "vendor":
            out, final, kept = self._forward_vendor(input, state, lengths, mask, packed)
        else:
            device = input.data.device if packed else input.device
            fused = self._plan == "fused" and dispatch.engine_ready(self.fast, device, self.cells)
            out, final, kept = self._forward_loop(input, state, lengths, mask, packed, fused)

        if unbatched:
            out = out.squeeze(0 if self.batch_first else 1)
            final = tuple(s.squeeze(1) for s in final)
            kept = [s.squeeze(0 if self.batch_first else 1) for s in kept]
        result_state = final[0] if len(final) == 1 else final
        if not self.return_states:
            return out, result_state
        return out, result_state, (kept[0] if len(kept) == 1 else tuple(kept))

    # ------------------------------------------------------------------ implementations
    def _forward_vendor(self, input, state, lengths, mask, packed):
        cell = self.cells[0]
        weights = [self._parameters[n] for n in self._flat_names]
        common = dict(
            bias=getattr(cell, "bias", True),
            num_layers=self.num_layers,
            dropout=self.dropout,
            training=self.training,
            bidirectional=self.bidirectional,
        )
        if not packed and lengths is None and mask is None:
            if state is None:
                state = self._zeros(input.shape[0 if self.batch_first else 1], input)
            out, final = vendor.run_padded(
                cell.vendor_mode, input, state, weights, batch_first=self.batch_first, **common
            )
            return out, final, []
        steps = None
        if not packed:
            steps = input.shape[1 if self.batch_first else 0]
            lens = self._lengths(input, lengths, mask).cpu()
            input = pack_padded_sequence(input, lens, batch_first=self.batch_first, enforce_sorted=False)
        data, batch_sizes, sorted_idx, unsorted_idx = input
        if state is None:
            state = self._zeros(int(batch_sizes[0]), data)
        elif sorted_idx is not None:
            state = tuple(s.index_select(1, sorted_idx) for s in state)
        out, final = vendor.run_packed(cell.vendor_mode, data, batch_sizes, state, weights, **common)
        if unsorted_idx is not None:
            final = tuple(s.index_select(1, unsorted_idx) for s in final)
        out_packed = PackedSequence(out, batch_sizes, sorted_idx, unsorted_idx)
        if packed:
            return out_packed, final, []
        out, _ = pad_packed_sequence(out_packed, batch_first=self.batch_first, total_length=steps)
        return out, final, []

    def _forward_loop(self, input, state, lengths, mask, packed, fused):
        if packed:
            sorted_idx, unsorted_idx = input.sorted_indices, input.unsorted_indices
            x, lens = pad_packed_sequence(input)
            lens = lens.to(x.device)
        else:
            x = input.transpose(0, 1) if self.batch_first else input
            lens = None if lengths is None and mask is None else self._lengths(input, lengths, mask)
        steps, batch = x.shape[0], x.shape[1]
        if state is None:
            state = self._zeros(batch, x)
        num_dirs = 2 if self.bidirectional else 1
        finals: list[tuple[Tensor, ...]] = []
        kept: list[Tensor] = []
        for k, cell in enumerate(self.cells):
            loop, spec = dispatch.scanner(cell, fused)
            outs, kept_k = [], []
            for d in range(num_dirs):
                params = self.cell_parameters(k, d)
                idx = k * num_dirs + d
                s0 = tuple(s[idx] for s in state)
                xin = reverse_padded(x, lens) if d else x
                xp = cell.project(params, xin)
                y, s_final, ks = loop(
                    spec,
                    params,
                    xp,
                    s0,
                    lengths=lens,
                    dropout_masks=variational_masks(cell, s0, self.recurrent_dropout, self.training),
                    zoneout_masks=zoneout_masks(s0, self.zoneout, steps, self.training),
                    zoneout=self.zoneout,
                    keep_states=self._keep if k == self.num_layers - 1 else (),
                )
                if d:
                    y = reverse_padded(y, lens)
                    ks = [reverse_padded(s, lens) for s in ks]
                outs.append(y)
                kept_k.append(ks)
                finals.append(s_final)
            x = outs[0] if num_dirs == 1 else torch.cat(outs, dim=2)
            if k == self.num_layers - 1:
                kept = [torch.cat([kd[j] for kd in kept_k], dim=2) for j in range(len(self._keep))]
            elif self.dropout > 0.0:
                x = F.dropout(x, self.dropout, self.training)
        final = tuple(torch.stack([f[j] for f in finals]) for j in range(len(state)))
        if packed:
            out = self._repack(x, lens, sorted_idx, unsorted_idx)
            kept = [self._repack(s, lens, sorted_idx, unsorted_idx) for s in kept]
            return out, final, kept
        if self.batch_first:
            x = x.transpose(0, 1)
            kept = [s.transpose(0, 1) for s in kept]
        return x, final, kept

    # ------------------------------------------------------------------ helpers
    @staticmethod
    def _repack(x: Tensor, lens: Tensor, sorted_idx, unsorted_idx) -> PackedSequence:
        if sorted_idx is None:
            packed = pack_padded_sequence(x, lens.cpu(), enforce_sorted=True)
            return PackedSequence(packed.data, packed.batch_sizes, None, None)
        xs = x.index_select(1, sorted_idx)
        packed = pack_padded_sequence(xs, lens.index_select(0, sorted_idx).cpu(), enforce_sorted=True)
        return PackedSequence(packed.data, packed.batch_sizes, sorted_idx, unsorted_idx)

    def _lengths(self, input: Tensor, lengths, mask) -> Tensor:
        batch = input.shape[0 if self.batch_first else 1]
        steps = input.shape[1 if self.batch_first else 0]
        if lengths is not None and mask is not None:
            raise ValueError("lengths: expected lengths= or mask=, got both")
        if mask is not None:
            return lengths_from_mask(mask, self.batch_first, batch, steps, input.device)
        return as_lengths(lengths, batch, steps, input.device)

    def _zeros(self, batch: int, like: Tensor) -> tuple[Tensor, ...]:
        n = self.num_layers * (2 if self.bidirectional else 1)
        return tuple(like.new_zeros(n, batch, *as_shape(size)) for size in self.cells[0].state_sizes)

    def _layout(self) -> str:
        step = "features" if len(self._input_shape) == 1 else ", ".join(map(str, self._input_shape))
        return f"(batch, time, {step})" if self.batch_first else f"(time, batch, {step})"

    def _check_state(self, hx: StateArg, batch: int, unbatched: bool, ref: Tensor) -> tuple[Tensor, ...] | None:
        if hx is None:
            return None
        names = self.cells[0].state_names
        if isinstance(hx, Tensor) and len(names) == 1:
            hx = (hx,)
        if not isinstance(hx, (tuple, list)) or len(hx) != len(names):
            got = f"a tuple of {len(hx)}" if isinstance(hx, (tuple, list)) else f"a {type(hx).__name__}"
            raise ValueError(f"hx: expected a tuple of {len(names)} tensors {names}, got {got}")
        n = self.num_layers * (2 if self.bidirectional else 1)
        out = []
        for j, (s, name, size) in enumerate(zip(hx, names, self.cells[0].state_sizes)):
            label = f"hx[{j}] ({name}_0)"
            if not isinstance(s, Tensor):
                raise TypeError(f"{label}: expected a Tensor, got {type(s).__name__}")
            expected = (n, *as_shape(size)) if unbatched else (n, batch, *as_shape(size))
            if tuple(s.shape) != expected:
                kind = "unbatched input" if unbatched else "batched input"
                raise ValueError(
                    f"{label}: expected shape {expected} (num_layers * num_directions, "
                    f"{'' if unbatched else 'batch, '}size) for {kind}, got {tuple(s.shape)}"
                )
            if s.dtype != ref.dtype:
                raise TypeError(f"{label}: expected dtype {ref.dtype} (the parameters' dtype), got {s.dtype}")
            if s.device != ref.device:
                raise ValueError(f"{label}: expected device {ref.device} (the parameters' device), got {s.device}")
            out.append(s.unsqueeze(1) if unbatched else s)
        return tuple(out)

    def extra_repr(self) -> str:
        parts = [f"{self.cells[0]!r}", f"num_layers={self.num_layers}"]
        for name in ("bidirectional", "batch_first"):
            if getattr(self, name):
                parts.append(f"{name}=True")
        for name in ("dropout", "recurrent_dropout"):
            if getattr(self, name):
                parts.append(f"{name}={getattr(self, name)}")
        if any(self.zoneout):
            parts.append(f"zoneout={self.zoneout}")
        parts.append(f"implementation={self.implementation!r}")
        return ", ".join(parts)

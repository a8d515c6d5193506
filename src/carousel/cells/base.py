"""The cell protocol: one time step of a recurrent network.

A cell is math and configuration only. It owns no tensors: the module that uses it (a layer from
:mod:`carousel.nn`, or :class:`carousel.runner.RecurrentLayer` for any cell) stores the parameters
under the names the cell declares and passes them in on every call. This keeps one parameter layout
for the reference loop and for every fast implementation, and lets a layer name its parameters as
``torch.nn.LSTM`` does (``weight_ih_l0``, ``weight_hh_l1_reverse``, ...).

A cell never loops over time; it knows nothing of stacking, direction, masks, dropout between
layers or devices. The runner (:mod:`carousel.runner`) does all of that for every cell.

Contract
--------
``parameter_shapes()``
    ordered ``{name: shape}`` of every parameter.
``reset_parameters(params, init)``
    initialise ``params`` (a dict of the tensors named above) in place, under scheme ``init``.
``state_sizes`` / ``state_names``
    one entry per state tensor; state ``k`` has shape ``(batch, *as_shape(state_sizes[k]))``: an int for a
    vector state, a tuple such as ``(C, H, W)`` for a feature map.
``input_shape`` (optional)
    shape of one step of input without the batch; ``(input_size,)`` when absent.
``output_size``
    feature size of the per-step output ``y_t``.
``project(params, x)``
    the part of the step that does not recur, for all steps at once: ``x`` has shape
    ``(T, B, input_size)`` (or ``(B, input_size)``); the result is what ``step`` takes as ``x_t``.
``step(params, x_t, state) -> (y_t, state)``
    one step on a projected input ``x_t`` of shape ``(B, ...)``.
``output_state``
    index of the state that equals ``y_t`` (zoneout needs it), or None.
``dropout_states``
    indices of the states that recurrent (variational) dropout applies to when fed back.
``dropout_in_step``
    False (default): the runner multiplies those states by their masks before the step, which is
    right when the step reads them only through recurrent products (LSTM's ``h``, Elman's ``h``).
    True: the step reads a state both in a product and as memory (GRU: ``h_t = z h_{t-1} + ...``);
    the runner then calls ``step(params, x_t, state, fed)`` with ``fed`` the masked states, for the
    products only (Gal & Ghahramani 2016).
``vendor_mode`` / ``vendor_refusal()``
    name of a vendor fused op that computes exactly this cell (``"lstm"``), and ``None`` when it
    does, or a sentence saying why not.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch
from torch import Tensor

State = tuple[Tensor, ...]
Params = Mapping[str, Tensor]

_REQUIRED = (
    "input_size",
    "output_size",
    "state_sizes",
    "state_names",
    "parameter_shapes",
    "reset_parameters",
    "project",
    "step",
)


INITS = ("pytorch", "keras")  # the initialisation schemes every cell offers


def check_size(name: str, value: object, minimum: int) -> int:
    """``value`` when it is an integer >= ``minimum``; else a ValueError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name}: expected an integer >= {minimum}, got {value!r}")
    return value


def check_init(init: object) -> None:
    """A ValueError naming ``init`` unless it is one of :data:`INITS`."""
    if init not in INITS:
        raise ValueError(f"init: expected one of {list(INITS)}, got {init!r}")


def init_standard(params: dict[str, Tensor], init: str, hidden_size: int) -> None:
    """The initialisation shared by the cells with ``weight_ih`` / ``weight_hh`` / biases, in place:
    ``"pytorch"``: every tensor ~ U(-1/sqrt(H), 1/sqrt(H)) (as ``torch.nn.RNN/GRU/LSTM``);
    ``"keras"``: Glorot-uniform ``weight_ih``, orthogonal ``weight_hh``, zeros elsewhere."""
    check_init(init)
    stdv = 1.0 / math.sqrt(hidden_size)
    with torch.no_grad():
        for name, p in params.items():
            if init == "pytorch":
                p.uniform_(-stdv, stdv)
            elif name == "weight_hh":
                torch.nn.init.orthogonal_(p)
            elif name == "weight_ih":
                torch.nn.init.xavier_uniform_(p)
            else:
                p.zero_()


class Cell:
    """Base class of every cell; see the module docstring for the contract."""

    input_size: int
    output_size: int
    state_sizes: tuple[int | tuple[int, ...], ...]
    state_names: tuple[str, ...]
    output_state: int | None = 0
    dropout_states: tuple[int, ...] = (0,)
    dropout_in_step: bool = False
    vendor_mode: str | None = None

    def parameter_shapes(self) -> dict[str, tuple[int, ...]]:  # pragma: no cover - protocol
        raise TypeError(f"{type(self).__name__} must define parameter_shapes()")

    def reset_parameters(self, params: dict[str, Tensor], init: str) -> None:  # pragma: no cover
        raise TypeError(f"{type(self).__name__} must define reset_parameters()")

    def project(self, params: Params, x: Tensor) -> Tensor:
        """Default: the step takes the raw input."""
        return x

    def step(self, params: Params, x_t: Tensor, state: State) -> tuple[Tensor, State]:  # pragma: no cover
        raise TypeError(f"{type(self).__name__} must define step()")

    def vendor_refusal(self) -> str | None:
        return f"{type(self).__name__} has no vendor fused op"

    def init_state(self, batch: int, *, dtype: torch.dtype, device: torch.device) -> State:
        """Zeros for every state tensor."""
        return tuple(torch.zeros(batch, *as_shape(n), dtype=dtype, device=device) for n in self.state_sizes)


def as_shape(size: int | Sequence[int]) -> tuple[int, ...]:
    """A state size or input size as a shape: ``5 -> (5,)``, ``(3, 8, 8) -> (3, 8, 8)``."""
    return (size,) if isinstance(size, int) else tuple(size)


def input_shape(cell: object) -> tuple[int, ...]:
    """Shape of one step of the cell's input without the batch."""
    return as_shape(getattr(cell, "input_shape", cell.input_size))  # type: ignore[attr-defined]


def check_cell(cell: object) -> Cell:
    """Check the cell contract on entry, naming the first missing member."""
    for name in _REQUIRED:
        if not hasattr(cell, name):
            raise TypeError(f"cell: expected an object with a `{name}` member, got {type(cell).__name__} without it")
    sizes = cell.state_sizes  # type: ignore[attr-defined]
    names = cell.state_names  # type: ignore[attr-defined]
    if len(sizes) != len(names):
        raise TypeError(
            f"cell: expected as many state_names as state_sizes, got {len(names)} names for {len(sizes)} sizes"
        )
    return cell  # type: ignore[return-value]

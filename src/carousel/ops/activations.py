"""Activation functions chosen by name or given as callables.

Cells take their nonlinearities (``sigma_g``, ``sigma_c``, ``sigma_h`` in the usual LSTM notation)
through :func:`resolve_activation`, so every cell accepts the same names.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

Activation = str | Callable[[torch.Tensor], torch.Tensor]


def _identity(x: torch.Tensor) -> torch.Tensor:
    return x


def _hard_sigmoid(x: torch.Tensor) -> torch.Tensor:
    # Keras 3 definition: relu6(x + 3) / 6
    return F.hardsigmoid(x)


_ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "sigmoid": torch.sigmoid,
    "tanh": torch.tanh,
    "identity": _identity,
    "linear": _identity,
    "relu": torch.relu,
    "hard_sigmoid": _hard_sigmoid,
    "softsign": F.softsign,
    "elu": F.elu,
    "gelu": F.gelu,
    "silu": F.silu,
    "softplus": F.softplus,
}


def resolve_activation(value: Activation, argument: str) -> Callable[[torch.Tensor], torch.Tensor]:
    """Return the function for ``value``, a name from the table above or a callable.

    >>> resolve_activation("tanh", "cell_activation")(torch.zeros(1))
    tensor([0.])
    """
    if callable(value):
        return value
    if isinstance(value, str):
        fn = _ACTIVATIONS.get(value.lower())
        if fn is not None:
            return fn
    raise ValueError(f"{argument}: expected one of {sorted(_ACTIVATIONS)} or a callable, got {value!r}")


def activation_name(value: Activation) -> str | None:
    """The canonical name of ``value`` (``"identity"`` for ``"linear"``), or None for a callable."""
    if isinstance(value, str):
        name = value.lower()
        return "identity" if name == "linear" else name
    for name, fn in _ACTIVATIONS.items():
        if fn is value and name != "linear":
            return name
    return None

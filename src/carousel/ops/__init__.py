"""Pure tensor functions shared by cells: activations and small helpers. Depends on torch only."""

from carousel.ops.activations import Activation, activation_name, resolve_activation

__all__ = ["Activation", "activation_name", "resolve_activation"]

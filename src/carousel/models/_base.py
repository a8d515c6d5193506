"""scikit-learn conventions for carousel's estimators, without depending on scikit-learn."""

from __future__ import annotations

import inspect
from typing import Any

__all__ = ["Estimator", "NotFittedError"]


class NotFittedError(ValueError, AttributeError):
    """Raised when a method that needs a fitted estimator is called before ``fit``."""


class Estimator:
    """``get_params`` / ``set_params`` / ``repr`` from the ``__init__`` signature, as in scikit-learn.

    Subclasses store every ``__init__`` argument unchanged under its own name and learn in ``fit``
    (learned attributes end in ``_``).
    """

    @classmethod
    def _param_names(cls) -> list[str]:
        signature = inspect.signature(cls.__init__)
        return [p.name for p in signature.parameters.values() if p.name != "self" and p.kind != p.VAR_KEYWORD]

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """The hyperparameters as given to ``__init__`` (``deep`` is accepted for compatibility)."""
        return {name: getattr(self, name) for name in self._param_names()}

    def set_params(self, **params: Any) -> Estimator:
        """Set hyperparameters by name; takes effect at the next ``fit``. Returns ``self``."""
        valid = self._param_names()
        for name, value in params.items():
            if name not in valid:
                raise ValueError(f"set_params: expected parameters among {valid}, got {name!r}")
            setattr(self, name, value)
        return self

    def _clone(self) -> Estimator:
        return type(self)(**self.get_params())

    def __repr__(self) -> str:
        defaults = {p.name: p.default for p in inspect.signature(type(self).__init__).parameters.values()}
        changed = []
        for name, value in self.get_params().items():
            default = defaults.get(name, inspect.Parameter.empty)
            if default is inspect.Parameter.empty or (value is not default and value != default):
                shown = value.__name__ if isinstance(value, type) else repr(value)
                changed.append(f"{name}={shown}")
        return f"{type(self).__name__}({', '.join(changed)})"

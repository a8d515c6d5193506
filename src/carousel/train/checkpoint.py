"""Checkpoints and weights as safetensors files: tensors in the body, everything else as JSON in the
header, written atomically, read without pickle.

A checkpoint is one ``.safetensors`` file. Its tensors are named by their path in the saved state
(``model/lstm.weight_ih_l0``, ``optimizer/state/0/exp_avg``, ``rng/torch``); the rest of the state
(epoch, optimizer hyperparameters, callback counters, history, Python and NumPy RNG states) is JSON
stored under the header key ``"carousel"``, with each tensor replaced by a reference to its name. So
one ``os.replace`` publishes the whole checkpoint at once: a crash leaves either the previous file or
the new one, never half of one.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save as _safetensors_bytes
from torch import Tensor, nn

FORMAT = "carousel.checkpoint"
VERSION = 1
_TENSOR = "__tensor__"
_TUPLE = "__tuple__"
_ITEMS = "__items__"  # a dict whose keys are not all strings (optimizer state is keyed by int)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` so that readers see either the old file or the complete new one.

    The bytes go to a temporary file in the same directory, are flushed to disk, and the file is
    renamed over ``path`` (an atomic operation on POSIX and Windows file systems).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    if hasattr(os, "O_DIRECTORY"):  # make the rename itself durable
        dir_fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    return path


def _key(prefix: str, name: object) -> str:
    return f"{prefix}/{name}" if prefix else str(name)


def _split(obj: Any, prefix: str, tensors: dict[str, Tensor]) -> Any:
    """Replace every tensor in a nested structure by a reference, collecting the tensors."""
    if isinstance(obj, Tensor):
        tensors[prefix] = obj.detach().to("cpu").contiguous().clone()
        return {_TENSOR: prefix}
    if isinstance(obj, Mapping):
        if all(isinstance(k, str) for k in obj):
            return {k: _split(v, _key(prefix, k), tensors) for k, v in obj.items()}
        return {_ITEMS: [[k, _split(v, _key(prefix, k), tensors)] for k, v in obj.items()]}
    if isinstance(obj, tuple):
        return {_TUPLE: [_split(v, _key(prefix, i), tensors) for i, v in enumerate(obj)]}
    if isinstance(obj, list):
        return [_split(v, _key(prefix, i), tensors) for i, v in enumerate(obj)]
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    if isinstance(obj, torch.dtype):
        return {"__dtype__": str(obj).removeprefix("torch.")}
    raise TypeError(f"checkpoint state at {prefix!r}: expected tensors, numbers, strings, lists or dicts, "
                    f"got {type(obj).__name__}")


def _join(obj: Any, tensors: Mapping[str, Tensor]) -> Any:
    if isinstance(obj, list):
        return [_join(v, tensors) for v in obj]
    if isinstance(obj, dict):
        if _TENSOR in obj:
            return tensors[obj[_TENSOR]]
        if _TUPLE in obj:
            return tuple(_join(v, tensors) for v in obj[_TUPLE])
        if _ITEMS in obj:
            return {k: _join(v, tensors) for k, v in obj[_ITEMS]}
        if "__dtype__" in obj:
            return getattr(torch, obj["__dtype__"])
        return {k: _join(v, tensors) for k, v in obj.items()}
    return obj


def save_state(path: str | os.PathLike, state: Mapping[str, Any], *, kind: str = "checkpoint") -> Path:
    """Write a nested state (dicts, lists, tuples, tensors, numbers, strings) to one safetensors file.

    Example:
        >>> import tempfile, torch
        >>> path = Path(tempfile.mkdtemp()) / "state.safetensors"
        >>> _ = save_state(path, {"epoch": 3, "w": torch.ones(2), "steps": {0: (1, 2.5)}})
        >>> state = load_state(path)
        >>> state["epoch"], state["w"].tolist(), state["steps"]
        (3, [1.0, 1.0], {0: (1, 2.5)})
    """
    tensors: dict[str, Tensor] = {}
    tree = _split(dict(state), "", tensors)
    header = {"format": FORMAT, "version": str(VERSION), "kind": kind, "carousel": json.dumps(tree)}
    return atomic_write_bytes(path, _safetensors_bytes(tensors, metadata=header))


def load_state(path: str | os.PathLike, *, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a file written by :func:`save_state` (no pickle involved)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"path: expected an existing checkpoint file, got {str(path)!r} (not found)")
    with safe_open(str(path), framework="pt", device=str(map_location)) as handle:
        header = handle.metadata() or {}
        if header.get("format") != FORMAT or "carousel" not in header:
            raise ValueError(f"path: expected a carousel checkpoint (header format {FORMAT!r}), got a safetensors "
                             f"file with header keys {sorted(header)} ({str(path)!r})")
        tensors = {key: handle.get_tensor(key) for key in handle.keys()}
    return _join(json.loads(header["carousel"]), tensors)


def save_weights(module_or_state: nn.Module | Mapping[str, Tensor], path: str | os.PathLike,
                 metadata: Mapping[str, Any] | None = None) -> Path:
    """Write a module's ``state_dict`` (or a state dict) as a plain safetensors file, atomically.

    The file is readable by any safetensors loader (keys are the state-dict names); ``metadata``
    (JSON-serialisable) is stored in the header and returned by :func:`load_weights`.

    Example:
        >>> import tempfile
        >>> from carousel.nn import LSTM
        >>> lstm = LSTM(3, 4)
        >>> path = save_weights(lstm, Path(tempfile.mkdtemp()) / "lstm.safetensors", {"hidden": 4})
        >>> state, meta = load_weights(path)
        >>> _ = LSTM(3, 4).load_state_dict(state); meta
        {'hidden': 4}
    """
    state = module_or_state.state_dict() if isinstance(module_or_state, nn.Module) else module_or_state
    tensors = {}
    for name, value in state.items():
        if not isinstance(value, Tensor):
            raise TypeError(f"state[{name!r}]: expected a tensor, got {type(value).__name__}")
        tensors[name] = value.detach().to("cpu").contiguous().clone()
    header = {"format": "carousel.weights", "version": str(VERSION), "carousel": json.dumps(dict(metadata or {}))}
    return atomic_write_bytes(path, _safetensors_bytes(tensors, metadata=header))


def load_weights(path: str | os.PathLike, *, map_location: str | torch.device = "cpu"
                 ) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """Read ``(state_dict, metadata)`` from a safetensors file (no pickle involved)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"path: expected an existing weights file, got {str(path)!r} (not found)")
    with safe_open(str(path), framework="pt", device=str(map_location)) as handle:
        header = handle.metadata() or {}
        state = {key: handle.get_tensor(key) for key in handle.keys()}
    return state, json.loads(header.get("carousel", "{}"))

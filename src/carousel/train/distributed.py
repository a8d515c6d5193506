"""Multi-process training under ``torchrun``: process-group set-up, rank queries and reductions.

``torchrun --nproc_per_node=N script.py`` (or ``--nnodes``/``--rdzv_endpoint`` across machines)
sets ``RANK``, ``LOCAL_RANK`` and ``WORLD_SIZE``; :func:`setup` then joins the group with gloo on
CPU and nccl on CUDA. Outside torchrun everything here is a no-op for a world of one process.
"""

from __future__ import annotations

import os

import torch
import torch.distributed as dist


def world_size() -> int:
    """Number of processes in the job (1 outside torchrun)."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size()
    return int(os.environ.get("WORLD_SIZE", "1"))


def rank() -> int:
    """This process's rank (0 outside torchrun)."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank()
    return int(os.environ.get("RANK", "0"))


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0"))


def setup(device: torch.device) -> bool:
    """Join the process group when launched by torchrun with more than one process.

    Returns True when this call created the group (the caller then destroys it with
    :func:`teardown`); False when there is nothing to do or the group already exists.
    """
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or not dist.is_available() or dist.is_initialized():
        return False
    if device.type == "cuda":
        torch.cuda.set_device(device)
        dist.init_process_group(backend="nccl")
    else:
        dist.init_process_group(backend="gloo")
    return True


def teardown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def active() -> bool:
    """True inside an initialised group of more than one process."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def all_reduce_sum(values: torch.Tensor) -> torch.Tensor:
    """Sum ``values`` over all processes (in place; returns it)."""
    if active():
        dist.all_reduce(values, op=dist.ReduceOp.SUM)
    return values


def barrier() -> None:
    if active():
        dist.barrier()

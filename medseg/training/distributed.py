"""DDP under ``torchrun``: NCCL on GPUs, gloo on CPU; only rank 0 writes.

``torchrun --nproc_per_node=N -m medseg train WORKFLOW.yaml`` sets ``RANK``, ``WORLD_SIZE`` and
``LOCAL_RANK``; multi-node runs use torchrun's rendezvous options the same way. Reading them
(:func:`~medseg.run_folder.dist_info`) and choosing the device
(:func:`~medseg.models.runtime.select_device`) live below training; they are re-exported here.
"""

from __future__ import annotations

import torch
import torch.distributed as dist

from medseg.models.runtime import select_device
from medseg.run_folder import DistInfo, dist_info

__all__ = [
    "DistInfo",
    "all_reduce_mean",
    "barrier",
    "broadcast_flag",
    "cleanup",
    "dist_info",
    "init_distributed",
    "select_device",
]


def init_distributed(info: DistInfo, device: torch.device) -> None:
    """Join the process group (no-op for a single process)."""
    if not info.enabled or dist.is_initialized():
        return
    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group(backend=backend)


def barrier(info: DistInfo) -> None:
    if info.enabled and dist.is_initialized():
        dist.barrier()


def broadcast_flag(flag: bool, info: DistInfo, device: torch.device) -> bool:
    """Rank 0's decision (e.g. stop training) for every rank."""
    if not (info.enabled and dist.is_initialized()):
        return flag
    tensor = torch.tensor([1 if flag else 0], device=device if device.type == "cuda" else "cpu")
    dist.broadcast(tensor, src=0)
    return bool(tensor.item())


def all_reduce_mean(value: float, info: DistInfo, device: torch.device) -> float:
    """Mean of a float over ranks."""
    if not (info.enabled and dist.is_initialized()):
        return value
    tensor = torch.tensor(
        [value], dtype=torch.float64, device=device if device.type == "cuda" else "cpu"
    )
    dist.all_reduce(tensor)
    return float(tensor.item()) / info.world_size


def cleanup(info: DistInfo) -> None:
    if info.enabled and dist.is_initialized():
        dist.destroy_process_group()

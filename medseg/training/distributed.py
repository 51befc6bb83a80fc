"""DDP under ``torchrun``: NCCL on GPUs, gloo on CPU; only rank 0 writes.

``torchrun --nproc_per_node=N -m medseg train WORKFLOW.yaml`` sets ``RANK``, ``WORLD_SIZE`` and
``LOCAL_RANK``; multi-node runs use torchrun's rendezvous options the same way.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def dist_info() -> DistInfo:
    """Rank information from the torchrun environment (single process without it)."""
    return DistInfo(
        rank=int(os.environ.get("RANK", 0)),
        world_size=int(os.environ.get("WORLD_SIZE", 1)),
        local_rank=int(os.environ.get("LOCAL_RANK", 0)),
    )


def select_device(name: str, info: DistInfo) -> torch.device:
    """``auto`` -> ``cuda:<local rank>`` when CUDA is available, else CPU."""
    if name == "auto":
        return (
            torch.device(f"cuda:{info.local_rank}")
            if torch.cuda.is_available()
            else torch.device("cpu")
        )
    device = torch.device(name)
    if device.type == "cuda" and device.index is None and info.enabled:
        return torch.device(f"cuda:{info.local_rank}")
    return device


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

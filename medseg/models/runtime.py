"""Where and how a network runs, the same for training and inference: device and autocast.

:func:`select_device` turns ``--device`` (``auto``, ``cpu``, ``cuda``, ``cuda:N``) into a
``torch.device`` (under torchrun, ``cuda`` means this rank's GPU). :func:`amp_dtype` is the one
mixed-precision policy, from the workflow's ``train.amp``: training runs under it, and so do
validation and prediction, so a model is never evaluated at a precision it was not trained at.
"""

from __future__ import annotations

import torch

from medseg.config.schema import ResolvedWorkflow
from medseg.run_folder import DistInfo

__all__ = ["amp_dtype", "autocast", "select_device"]


def select_device(name: str, info: DistInfo | None = None) -> torch.device:
    """``auto`` -> ``cuda:<local rank>`` when CUDA is available, else CPU."""
    rank = info or DistInfo()
    if name == "auto":
        return (
            torch.device(f"cuda:{rank.local_rank}")
            if torch.cuda.is_available()
            else torch.device("cpu")
        )
    device = torch.device(name)
    if device.type == "cuda" and device.index is None and rank.enabled:
        return torch.device(f"cuda:{rank.local_rank}")
    return device


def amp_dtype(resolved: ResolvedWorkflow, device: torch.device) -> torch.dtype | None:
    """Autocast dtype of ``train.amp``: ``on`` -> bf16 (fp16 without bf16 support) on CUDA and
    full precision on the CPU; ``bf16`` / ``fp16`` force that dtype; ``off`` -> None."""
    mode = resolved.train.amp
    if mode == "off" or (mode == "on" and device.type != "cuda"):
        return None
    if mode == "fp16" or (mode == "on" and not torch.cuda.is_bf16_supported()):
        return torch.float16
    return torch.bfloat16


def autocast(device: torch.device, dtype: torch.dtype | None) -> torch.autocast:
    """``torch.autocast`` at ``dtype`` on ``device``'s type (disabled for None)."""
    return torch.autocast(device.type, dtype=dtype, enabled=dtype is not None)

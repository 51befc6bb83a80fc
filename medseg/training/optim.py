"""Optimisers and learning-rate schedules from the resolved workflow."""

from __future__ import annotations

import math

import torch
from torch import nn

from medseg.config.schema import ResolvedWorkflow


def build_optimizer(model: nn.Module, resolved: ResolvedWorkflow) -> torch.optim.Optimizer:
    """SGD with Nesterov momentum (nnU-Net default) or AdamW."""
    t = resolved.train
    lr = float(t.learning_rate)
    if t.optimizer == "sgd":
        return torch.optim.SGD(
            model.parameters(),
            lr=lr,
            momentum=t.momentum,
            nesterov=True,
            weight_decay=t.weight_decay,
        )
    return torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=t.weight_decay)


def build_scheduler(
    optimizer: torch.optim.Optimizer, resolved: ResolvedWorkflow
) -> torch.optim.lr_scheduler.LRScheduler:
    """Per-epoch schedule: ``poly`` (1 - e/E)^0.9, ``cosine`` or ``constant``."""
    epochs = resolved.train.epochs
    name = resolved.train.scheduler

    def factor(epoch: int) -> float:
        progress = min(epoch / epochs, 1.0)
        if name == "poly":
            return (1.0 - progress) ** 0.9
        if name == "cosine":
            return 0.5 * (1.0 + math.cos(math.pi * progress))
        return 1.0

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)

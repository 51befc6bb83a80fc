"""Training: data, losses, optimisers, checkpoints, DDP and the loop (small functions)."""

"""Evaluation: voxel, surface and lesion-level metrics (no torch)."""

"""Inference: sliding windows, test-time augmentation, post-processing, the Predictor."""

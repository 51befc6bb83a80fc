"""Mask R-CNN."""

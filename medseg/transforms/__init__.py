"""MONAI dictionary transforms and the train/eval pipelines built from a resolved workflow."""

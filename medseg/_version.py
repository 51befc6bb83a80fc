"""Single source of the medseg version."""

__version__ = "0.1.0"

"""Workflow configuration: schema, loading with overrides, and planning (``auto`` -> values)."""

"""Dataset manifests: which scans, which labels, which patient, which fold."""

from medseg.manifest.schema import Case, Manifest, load_manifest, save_manifest

__all__ = ["Case", "Manifest", "load_manifest", "save_manifest"]

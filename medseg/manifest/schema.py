"""The manifest schema (pydantic, ``schema_version`` 1) and its loading/saving.

A manifest is a JSON file listing the cases of a dataset::

    {
      "schema_version": 1,
      "name": "oct_fluid",
      "data_root": "../scans",                  # relative to the manifest file, or absolute
      "labels": {"0": "background", "1": "IRF", "2": "SRF"},
      "lesion_labels": [1, 2],                  # labels whose connected components are lesions
      "label_mapping": {},                      # value in the label files -> label, e.g. {"255": 1}
      "channels": ["image"],
      "n_folds": 5,
      "cases": [
        {"case_id": "SYNOCT0000_OD", "patient_id": "SYNOCT0000", "study_date": "20240115",
         "laterality": "OD", "modality": "OPT", "split": "train", "fold": 0,
         "images": {"image": "images/SYNOCT0000/20240115/OPT_OD.dcm"},
         "label": "labels/SYNOCT0000_OD.nii.gz", "issues": []}
      ],
      "skipped": [{"path": "README.txt", "reason": "not a scan: neither DICOM nor ..."}]
    }

An image source is a path (file or folder, relative to ``data_root``), a DICOM series reference
``{"series_uid": ..., "files": [...]}`` or a 2D image file reference ``{"path": ..., "component":
0, "pixel_spacing_mm": [r, c]}`` (one colour component; a spacing the file lacks). Folds are
assigned by patient, never by series.

Label maps stored as 2D image files (PNG, TIFF, ...) have no geometry of their own: they are read
on their image's pixel grid (same size required). ``label_mapping`` (see
:mod:`medseg.manifest.label_values`) is applied to every label map read through the manifest.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, model_validator

from medseg._version import __version__
from medseg.errors import ConfigError, GeometryError
from medseg.io.atomic import write_text_atomic
from medseg.io.image_files import ImageFileRef
from medseg.io.qc import Issue
from medseg.io.read import DicomSeriesRef, read_volume
from medseg.io.volume import Volume
from medseg.manifest.label_values import apply_label_mapping
from medseg.types import PathLike

MANIFEST_SCHEMA_VERSION: Literal[1] = 1
ImageSource = str | DicomSeriesRef | ImageFileRef


class Case(BaseModel):
    """One case: the images of one scan (per channel), its label map, patient and fold."""

    model_config = ConfigDict(extra="forbid")

    case_id: str = Field(min_length=1, pattern=r"^[A-Za-z0-9._-]+$")
    patient_id: str = Field(min_length=1)
    study_date: str | None = None
    laterality: Literal["OD", "OS"] | None = None
    modality: str | None = None
    images: dict[str, ImageSource] = Field(min_length=1)
    label: str | None = None
    split: Literal["train", "test"] = "train"
    fold: int | None = Field(default=None, ge=0)
    issues: list[Issue] = Field(default_factory=list)


class SkippedItem(BaseModel):
    """A file or series the builder did not turn into a case, and why."""

    model_config = ConfigDict(extra="forbid")

    path: str
    reason: str


class Manifest(BaseModel):
    """A dataset manifest; see the module docstring for the JSON layout."""

    model_config = ConfigDict(extra="forbid")

    schema_version: Literal[1] = MANIFEST_SCHEMA_VERSION
    name: str = Field(min_length=1)
    data_root: str = "."
    labels: dict[str, str] = Field(default_factory=lambda: {"0": "background"})
    lesion_labels: list[int] = Field(default_factory=list)
    label_mapping: dict[str, int] = Field(
        default_factory=dict, description="value in the label files -> label value"
    )
    channels: list[str] = Field(default_factory=lambda: ["image"], min_length=1)
    n_folds: int = Field(default=5, ge=1)
    cases: list[Case] = Field(default_factory=list)
    skipped: list[SkippedItem] = Field(default_factory=list)
    created_by: str = f"medseg {__version__}"
    _location: Path | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _consistent(self) -> Manifest:
        ids = [c.case_id for c in self.cases]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"duplicate case_id values: {', '.join(dupes[:5])}")
        if "0" not in self.labels:
            raise ValueError('labels must include "0" (background)')
        for key in self.labels:
            if not key.isdigit():
                raise ValueError(f"label keys must be integers as strings, got {key!r}")
        for value in self.lesion_labels:
            if str(value) not in self.labels or value == 0:
                raise ValueError(f"lesion label {value} is not a declared foreground label")
        for source, target in self.label_mapping.items():
            if not source.lstrip("-").isdigit() or str(target) not in self.labels:
                raise ValueError(
                    f"label_mapping {source!r} -> {target}: expected an integer mapped to a "
                    "declared label"
                )
        for case in self.cases:
            missing = set(self.channels) - set(case.images)
            if missing:
                raise ValueError(f"case {case.case_id} lacks channel(s) {sorted(missing)}")
        return self

    @property
    def root(self) -> Path:
        """Absolute data root (``data_root`` resolved against the manifest file's folder)."""
        base = self._location.parent if self._location is not None else Path.cwd()
        return (base / self.data_root).resolve()

    @property
    def label_map(self) -> dict[int, int]:
        """``label_mapping`` with integer keys (file value -> label value)."""
        return {int(k): int(v) for k, v in self.label_mapping.items()}

    @property
    def label_values(self) -> list[int]:
        """Declared label values, sorted."""
        return sorted(int(k) for k in self.labels)

    def resolve(self, relative: str) -> Path:
        """Absolute path of a manifest path (relative to ``data_root``)."""
        path = Path(relative)
        return path if path.is_absolute() else self.root / path

    def case(self, case_id: str) -> Case:
        """The case with this id (KeyError if absent)."""
        for case in self.cases:
            if case.case_id == case_id:
                return case
        raise KeyError(case_id)

    def read_image(self, case: Case, channel: str | None = None) -> Volume:
        """Read one channel of a case (the first channel by default)."""
        source = case.images[channel or self.channels[0]]
        return read_volume(source, root=self.root)

    def read_label(self, case: Case) -> Volume:
        """Read the case's label map with ``label_mapping`` applied (ValueError if it has none).

        Any label-map format :func:`~medseg.io.label_files.read_label_map` reads (segmentation
        objects map their segments by the manifest's label names); a label map stored as a 2D
        image file takes its image's grid.

        Raises:
            DataError: unreadable label map.
            GeometryError: a 2D label image whose size differs from the image's.
        """
        from medseg.io.label_files import read_label_map

        if case.label is None:
            raise ValueError(f"case {case.case_id} has no label")
        names = {int(k): v for k, v in self.labels.items() if k != "0"}
        label = read_label_map(self.resolve(case.label), label_names=names)
        if "spacing_source" in label.meta:  # a plain image file: no geometry of its own
            label = on_image_grid(label, self.read_image(case), case.case_id)
        return label.with_array(apply_label_mapping(label.array, self.label_map))

    def cases_in(self, *, split: str | None = None, folds: set[int] | None = None) -> list[Case]:
        """Cases filtered by split and/or fold."""
        return [
            c
            for c in self.cases
            if (split is None or c.split == split) and (folds is None or c.fold in folds)
        ]


def on_image_grid(label: Volume, image: Volume, case_id: str) -> Volume:
    """A label image (no geometry of its own) placed on its image's grid.

    Raises:
        GeometryError: the sizes differ.
    """
    if label.shape != image.shape:
        raise GeometryError(
            f"label image size {label.shape[:2]} x {label.shape[2]} differs from the image's "
            f"{image.shape[:2]} x {image.shape[2]} (columns, rows x pages)",
            case_id=case_id,
            path=label.meta.get("source"),
        )
    return Volume(label.array, image.affine, {**label.meta, "spacing_source": "image"})


def _format_validation(err: ValidationError) -> str:
    lines = []
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"])
        lines.append(f"{loc or '(top level)'}: {e['msg']}")
    return "; ".join(lines)


def load_manifest(path: PathLike) -> Manifest:
    """Read and validate a manifest JSON file.

    Raises:
        ConfigError: unreadable JSON or a bad field; the message names the field path, e.g.
            ``cases.3.fold: Input should be greater than or equal to 0``.
    """
    location = Path(path)
    try:
        text = location.read_text(encoding="utf-8")
    except OSError as err:
        raise ConfigError(f"cannot read manifest: {err.strerror or err}", path=location) from err
    try:
        manifest = Manifest.model_validate_json(text)
    except ValidationError as err:
        raise ConfigError(f"invalid manifest: {_format_validation(err)}", path=location) from err
    manifest._location = location.resolve()
    return manifest


def save_manifest(manifest: Manifest, path: PathLike) -> Path:
    """Write a manifest atomically and remember its location (for relative ``data_root``)."""
    target = Path(path)
    write_text_atomic(target, manifest.model_dump_json(indent=2, exclude_none=False) + "\n")
    manifest._location = target.resolve()
    return target

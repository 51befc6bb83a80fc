"""``check_manifest``: open every case and verify what training and evaluation rely on.

Checks per case (codes): ``unreadable`` (image or label cannot be read), ``channel_mismatch``
(channels differ in shape/affine), ``shape_mismatch`` and ``affine_mismatch`` (label vs image,
with the largest corner displacement in mm), ``undeclared_label_values``, ``non_integer_label``,
``nan_inf`` (image), ``bad_spacing`` (zero, negative or over 20 mm), ``anisotropic`` (warning,
ratio over 10), ``empty_label`` (warning), ``constant_image`` (warning), ``missing_label_file``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from itertools import product

import numpy as np

from medseg.errors import MedsegError
from medseg.io import qc
from medseg.io.dicom import OPHTHALMIC_MODALITIES
from medseg.io.geometry import apply_affine
from medseg.io.qc import Issue
from medseg.io.volume import Volume
from medseg.manifest.schema import Case, Manifest

DEFAULT_TOLERANCE_MM = 1e-3
MAX_SPACING_MM = 20.0
MAX_ANISOTROPY = 10.0


@dataclass
class CaseCheck:
    """Findings for one case."""

    case_id: str
    issues: list[Issue] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not qc.has_errors(self.issues)


def corner_displacement_mm(a: Volume, b: Volume) -> float:
    """Largest distance (mm) between where ``a`` and ``b`` place the 8 corners of ``a``'s grid."""
    corners = np.array(list(product(*[(0, n - 1) for n in a.shape])), dtype=np.float64)
    return float(
        np.linalg.norm(
            apply_affine(a.affine, corners) - apply_affine(b.affine, corners), axis=1
        ).max()
    )


def _fmt(spacing: np.ndarray) -> str:
    return " x ".join(f"{v:.4g}" for v in spacing)


def _image_checks(image: Volume, issues: list[Issue], *, ophthalmic: bool) -> None:
    spacing = np.asarray(image.spacing)
    if np.any(spacing <= 0) or np.any(spacing > MAX_SPACING_MM):
        issues.append(qc.error("bad_spacing", f"voxel spacing {_fmt(spacing)} mm is not plausible"))
    elif spacing.max() / spacing.min() > MAX_ANISOTROPY and not ophthalmic:  # OCT always is
        issues.append(qc.warning("anisotropic", f"spacing {_fmt(spacing)} mm is very anisotropic"))
    if np.issubdtype(image.array.dtype, np.floating):
        bad = int(np.count_nonzero(~np.isfinite(image.array)))
        if bad:
            issues.append(qc.error("nan_inf", f"{bad} NaN/Inf voxels in the image"))
    if image.array.size and image.array.min() == image.array.max():
        issues.append(qc.warning("constant_image", "the image is constant"))


def _label_checks(
    image: Volume, label: Volume, declared: set[int], tolerance_mm: float, issues: list[Issue]
) -> None:
    if label.shape != image.shape:
        issues.append(
            qc.error(
                "shape_mismatch",
                f"label shape {label.shape} differs from image shape {image.shape}",
            )
        )
        return
    shift = corner_displacement_mm(image, label)
    if shift > tolerance_mm:
        issues.append(
            qc.error(
                "affine_mismatch",
                f"label affine differs from the image affine: grid corners move up to "
                f"{shift:.4g} mm (tolerance {tolerance_mm} mm)",
            )
        )
    data = label.array
    floating = np.issubdtype(data.dtype, np.floating)
    if floating and not (np.all(np.isfinite(data)) and np.all(data == np.round(data))):
        issues.append(qc.error("non_integer_label", "label map has non-integer or NaN values"))
        return
    values = {int(v) for v in np.unique(data)}
    undeclared = sorted(values - declared)
    if undeclared:
        issues.append(
            qc.error(
                "undeclared_label_values",
                f"label values {undeclared} are not declared (declared: {sorted(declared)})",
            )
        )
    if values <= {0}:
        issues.append(qc.warning("empty_label", "the label map is empty (background only)"))


def check_case(
    manifest: Manifest, case: Case, *, tolerance_mm: float = DEFAULT_TOLERANCE_MM
) -> CaseCheck:
    """Open one case and run every check (never raises for data problems)."""
    result = CaseCheck(case.case_id)
    try:
        images = [manifest.read_image(case, channel) for channel in manifest.channels]
    except MedsegError as err:
        result.issues.append(qc.error("unreadable", f"image: {err.describe(with_hint=False)}"))
        return result
    first = images[0]
    for channel, other in zip(manifest.channels[1:], images[1:]):
        if other.shape != first.shape or corner_displacement_mm(first, other) > tolerance_mm:
            result.issues.append(
                qc.error(
                    "channel_mismatch",
                    f"channel {channel!r} is not on the grid of {manifest.channels[0]!r}",
                )
            )
    ophthalmic = (
        case.modality or ""
    ).upper() in OPHTHALMIC_MODALITIES or case.laterality is not None
    for image in images:
        _image_checks(image, result.issues, ophthalmic=ophthalmic)
    if case.label is None:
        return result
    if not manifest.resolve(case.label).exists():
        result.issues.append(
            qc.error("missing_label_file", f"label file {case.label} does not exist")
        )
        return result
    try:
        label = manifest.read_label(case)
    except MedsegError as err:
        result.issues.append(qc.error("unreadable", f"label: {err.describe(with_hint=False)}"))
        return result
    _label_checks(first, label, set(manifest.label_values), tolerance_mm, result.issues)
    return result


def check_manifest(
    manifest: Manifest,
    *,
    tolerance_mm: float = DEFAULT_TOLERANCE_MM,
    on_case: Callable[[CaseCheck], None] | None = None,
) -> Iterator[CaseCheck]:
    """Check every case; yields one :class:`CaseCheck` per case (the caller decides what fails)."""
    for case in manifest.cases:
        result = check_case(manifest, case, tolerance_mm=tolerance_mm)
        if on_case is not None:
            on_case(result)
        yield result

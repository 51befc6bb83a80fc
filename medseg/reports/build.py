"""Pure report building: volumes -> :class:`StudyReport`; studies -> :class:`PatientReport`.

Nothing here reads or writes files; :mod:`medseg.reports.pipeline` does the IO around it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

import numpy as np

from medseg.errors import GeometryError
from medseg.io.geometry import affines_close
from medseg.io.volume import Volume
from medseg.reports.enface import enface_frame
from medseg.reports.localizer import vendor_fovea
from medseg.reports.longitudinal import change_table, study_order_key
from medseg.reports.measure import InstanceInfo, class_totals, measure_lesions
from medseg.reports.oct import OCTClasses, analyze_oct, lesion_subfield
from medseg.reports.schema import (
    PatientReport,
    PersonalData,
    Provenance,
    StudyReport,
)

logger = logging.getLogger(__name__)

OCT_MODALITIES = ("OPT", "OCT")


def is_oct(study: StudyReport) -> bool:
    """Whether a study is a macular OCT (modality OPT/OCT, or an eye laterality)."""
    modality = (study.modality or "").upper()
    return modality in OCT_MODALITIES or study.laterality in ("OD", "OS")


def default_lesion_labels(labels: Volume, names: Mapping[int, str]) -> list[int]:
    """Lesion classes when none are declared: every foreground value present except the retina."""
    return [v for v in present_labels(labels) if v != 0 and names.get(v, "").lower() != "retina"]


def present_labels(labels: Volume) -> list[int]:
    """Sorted label values occurring in a label map."""
    array = labels.array
    if (
        np.issubdtype(array.dtype, np.integer)
        and array.size
        and array.min() >= 0
        and array.max() < 2**16
    ):
        return [int(v) for v in np.flatnonzero(np.bincount(array.ravel()))]
    return [int(v) for v in np.unique(array)]


def _usable_image(image: Volume | None, labels: Volume, study: StudyReport) -> Volume | None:
    if image is None:
        return None
    if image.shape != labels.shape or not affines_close(image.affine, labels.affine, atol_mm=0.01):
        study.warnings.append(
            f"image grid {image.shape} does not match the prediction grid {labels.shape}; "
            "image intensities and image-based fovea detection not used"
        )
        return None
    return image


def _add_oct(study: StudyReport, labels: Volume, image: Volume | None, classes: OCTClasses) -> None:
    try:
        analysis = analyze_oct(labels, classes=classes, laterality=study.laterality, image=image,
                               vendor_fovea=vendor_fovea(labels, image),
                               case_id=study.case_id)  # fmt: skip
    except GeometryError as err:
        study.warnings.append(f"no ETDRS analysis: {err.describe()}")
        return
    study.oct = analysis
    frame = enface_frame(labels.affine, analysis.laterality, analysis.fovea.lps_mm)
    for lesion in study.lesions:
        lesion.etdrs_subfield = lesion_subfield(frame, lesion.centroid_lps_mm)
    if analysis.laterality_source != "metadata":
        study.warnings.append(f"laterality {analysis.laterality} {analysis.laterality_source}")


def measure_study(
    study: StudyReport,
    labels: Volume,
    *,
    label_names: Mapping[int, str],
    lesion_labels: Sequence[int] | None,
    image: Volume | None = None,
    instances: Volume | None = None,
    instance_info: Mapping[int, InstanceInfo] | None = None,
    min_volume_mm3: float = 0.0,
) -> StudyReport:
    """Fill a study's measurements from its predicted label map.

    Args:
        study: identity of the case (id, date, laterality, modality, ...); not modified.
        labels: predicted label map ``(X, Y, Z)`` with its RAS affine.
        label_names: class value -> name.
        lesion_labels: lesion classes; ``None`` = every foreground value present except a class
            named ``retina``.
        image: the source image; used only when on the same grid (else a warning is recorded).
        instances: instance map on the same grid (one lesion per instance), if any.
        instance_info: instance id -> class and score from the instance JSON.
        min_volume_mm3: smaller components are not lesions (the prediction's post-processing
            floor); they still count in OCT fluid volumes.

    Returns:
        A copy of ``study`` with ``lesions``, ``totals``, ``oct`` (OCT only), shape and spacing.

    Raises:
        GeometryError: the instance map is not on the label map's grid.
    """
    out = study.model_copy(deep=True)
    if instances is not None and instances.shape != labels.shape:
        raise GeometryError(
            f"instance map shape {instances.shape} != label map shape {labels.shape}",
            case_id=study.case_id,
        )
    values = list(lesion_labels) if lesion_labels else default_lesion_labels(labels, label_names)
    image = _usable_image(image, labels, out)
    oct_study = is_oct(out)
    out.lesions = measure_lesions(
        labels, lesion_labels=values, label_names=label_names, image=image, instances=instances,
        instance_info=instance_info, nanolitres=oct_study, min_volume_mm3=min_volume_mm3,
    )  # fmt: skip
    out.totals = class_totals(out.lesions, lesion_labels=values, label_names=label_names,
                              nanolitres=oct_study)  # fmt: skip
    out.shape, out.spacing_mm = labels.shape, labels.spacing
    out.image_used = image is not None
    is_ct = image is not None and (out.modality or "").upper() == "CT"
    out.intensity_unit = "HU" if is_ct else None
    if oct_study:
        _add_oct(out, labels, image, OCTClasses.from_names(label_names, values))
    return out


def build_patient_report(
    patient_id: str,
    studies: Sequence[StudyReport],
    *,
    labels: Mapping[str, str],
    lesion_labels: Sequence[int],
    provenance: Provenance,
    personal_data: PersonalData | None = None,
    warnings: Sequence[str] = (),
) -> PatientReport:
    """Assemble one patient's report: studies in order and the longitudinal change table.

    Args:
        patient_id: pseudonymous patient id (never a name).
        studies: measured (or failed / not predicted) studies of this patient, any order.
        labels: class value (as string) -> name, as in manifests.
        lesion_labels: declared lesion classes (may be empty when unknown).
        provenance: the prediction run and report provenance.
        personal_data: names / birth dates, only when explicitly requested (``--include-phi``).
        warnings: patient-level notes.

    Returns:
        The validated :class:`PatientReport`.
    """
    ordered = sorted(studies, key=study_order_key)
    return PatientReport(
        patient_id=patient_id,
        personal_data=personal_data,
        labels=dict(labels),
        lesion_labels=list(lesion_labels),
        studies=ordered,
        changes=change_table(ordered),
        provenance=provenance,
        warnings=list(warnings),
    )

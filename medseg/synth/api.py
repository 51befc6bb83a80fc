"""``synth_ct`` / ``synth_oct``: write a synthetic cohort with its ``truth.json``.

Layout of ``OUT_DIR`` (``<case_id>`` as in :func:`case_id_for`)::

    truth.json
    images/<patient_id>/<study_date>_CT1/IM0001.dcm ...     CT, format dicom (one file per slice)
    images/<patient_id>/<study_date>/OPT_<OD|OS>.dcm        OCT, format dicom (multi-frame)
    images/<case_id>.nii.gz + images/<case_id>.json         format nifti (JSON: patient, study, eye)
    images/<case_id>/bscan_0000.png ... + spacing.json      OCT, format png
    labels/<case_id>.nii.gz                                 NIfTI, same world grid as the image

Every patient is generated from ``(seed, patient index)`` alone, so the same seed gives the same
pixel data whatever ``patients`` is, and a different seed gives different scans.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt
from scipy import ndimage

from medseg.errors import ConfigError
from medseg.io.atomic import ensure_output_dir, write_json_atomic
from medseg.io.geometry import lps_to_ras_affine
from medseg.io.images import write_image_stack
from medseg.io.nifti import write_nifti
from medseg.io.volume import Volume
from medseg.synth import ct as ct_model
from medseg.synth import oct as oct_model
from medseg.synth.dicom_common import StudyInfo, make_uid
from medseg.synth.dicom_writers import write_ct_series, write_oct_dicom
from medseg.synth.truth import CaseTruth, LesionTruth, PatientTruth, Truth
from medseg.types import Affine, Laterality, PathLike

logger = logging.getLogger(__name__)

CaseCallback = Callable[[CaseTruth], None]
_BASE_DATE = dt.date(2024, 1, 15)
_KIND_CODE = {"ct": 1, "oct": 2}


def case_id_for(
    patient_id: str, *, laterality: str | None = None, study_date: str | None = None
) -> str:
    """The case id medseg gives a scan: ``<patient>[_<eye>][_<study date>]``.

    The study date is appended only for patients with several visits (pass ``None`` otherwise).
    The manifest builder uses the same rule, so labels named ``<case_id>.nii.gz`` pair up.
    """
    parts = [patient_id]
    if laterality:
        parts.append(laterality)
    if study_date:
        parts.append(study_date)
    return "_".join(parts)


def _patient_rng(seed: int, kind: str, index: int) -> np.random.Generator:
    return np.random.default_rng([seed, _KIND_CODE[kind], index])


def _study(kind: str, index: int, visit: int, seed: int) -> StudyInfo:
    prefix = "SYNCT" if kind == "ct" else "SYNOCT"
    patient_id = f"{prefix}{index:04d}"
    date = _BASE_DATE + dt.timedelta(days=7 * index + 91 * visit)
    return StudyInfo(
        patient_id=patient_id,
        patient_name=f"SYNTHETIC^PATIENT{index:04d}",
        birth_date=f"19{50 + index % 40:02d}0{1 + index % 9}15",
        sex="F" if index % 2 else "M",
        study_uid=make_uid(seed, kind, patient_id, "study", visit),
        study_date=date.strftime("%Y%m%d"),
        accession=f"ACC{index:04d}{visit:02d}",
    )


def _lesion_truths(
    instances: npt.NDArray[np.integer],
    kinds: list[int],
    names: dict[str, str],
    volume: Volume,
    analytic: Sequence[tuple[float | None, tuple[float, float, float] | None]],
) -> list[LesionTruth]:
    """One :class:`LesionTruth` per non-empty instance; centre is a voxel inside the lesion."""
    out: list[LesionTruth] = []
    ones = np.ones(instances.shape, np.uint8)
    counts = ndimage.sum_labels(ones, instances, np.arange(1, len(kinds) + 1))
    present = [i + 1 for i, count in enumerate(counts) if count > 0]
    centroids = dict(zip(present, ndimage.center_of_mass(ones, instances, present)))
    for inst_id in present:
        idx, count = inst_id - 1, counts[inst_id - 1]
        center = np.asarray(centroids[inst_id])
        if instances[tuple(np.rint(center).astype(int))] != inst_id:
            voxels = np.argwhere(instances == inst_id)
            center = voxels[np.argmin(np.sum((voxels - center) ** 2, axis=1))].astype(float)
        vol, radii = analytic[idx]
        out.append(
            LesionTruth(
                lesion_id=len(out) + 1,
                label=kinds[idx],
                name=names[str(kinds[idx])],
                center_lps_mm=tuple(float(v) for v in volume.voxel_to_lps(center)),  # type: ignore[arg-type]
                center_voxel=tuple(float(v) for v in center),  # type: ignore[arg-type]
                volume_mm3=float(count) * volume.voxel_volume_mm3,
                analytic_volume_mm3=vol,
                radii_mm=radii,
                n_voxels=int(count),
            )
        )
    return out


def _write_nifti_image(
    volume: Volume, path: Path, study: StudyInfo, laterality: str | None, modality: str
) -> None:
    write_nifti(volume, path)
    sidecar = {"patient_id": study.patient_id, "study_date": study.study_date, "modality": modality}
    if laterality:
        sidecar["laterality"] = laterality
    write_json_atomic(path.with_name(path.name.removesuffix(".nii.gz") + ".json"), sidecar)


def _check_args(
    patients: int,
    visits: int,
    fmt: str,
    allowed: tuple[str, ...],
    size: str,
    sizes: Mapping[str, object],
) -> None:
    if patients < 1:
        raise ConfigError(f"--patients must be at least 1, got {patients}")
    if visits < 1:
        raise ConfigError(f"--visits must be at least 1, got {visits}")
    if fmt not in allowed:
        raise ConfigError(f"format {fmt!r} is not one of {', '.join(allowed)}")
    if size not in sizes:
        raise ConfigError(f"size {size!r} is not one of {', '.join(sizes)}")


def _ct_affine_lps(size: ct_model.CTSize, rng: np.random.Generator) -> Affine:
    shape, spacing = np.asarray(size.shape), np.asarray(size.spacing)
    affine = np.diag([*spacing, 1.0])
    offset = rng.uniform(-20.0, 20.0, size=3) + np.array([0.0, 0.0, -300.0])
    affine[:3, 3] = -(shape - 1) / 2.0 * spacing + offset
    return affine


def synth_ct(
    out_dir: PathLike,
    *,
    patients: int = 3,
    fmt: str = "dicom",
    seed: int = 0,
    size: str = "small",
    visits: int = 1,
    on_case: CaseCallback | None = None,
) -> Truth:
    """Write synthetic CT scans: body, spine, organ (label 1) and lesions (label 2).

    Args:
        out_dir: output folder (created).
        patients: number of patients.
        fmt: ``"dicom"`` (CT Image Storage, one file per slice, int16 + rescale) or ``"nifti"``.
        seed: random seed; same seed, same pixel data.
        size: ``"tiny"`` (tests), ``"small"`` or ``"realistic"``; see ``CT_SIZES``.
        visits: studies per patient (follow-ups 91 days apart; lesions grow or shrink).
        on_case: called after each case is written.

    Returns:
        The :class:`Truth`, also written to ``out_dir/truth.json``.
    """
    _check_args(patients, visits, fmt, ("dicom", "nifti"), size, ct_model.CT_SIZES)
    root = ensure_output_dir(out_dir)
    grid = ct_model.CT_SIZES[size]
    records: list[PatientTruth] = []
    for index in range(patients):
        rng = _patient_rng(seed, "ct", index)
        anatomy = ct_model.sample_ct_anatomy(rng, grid)
        affine_lps = _ct_affine_lps(grid, rng)
        cases = []
        for visit in range(visits):
            scale = 1.0 if visit == 0 else float(rng.uniform(0.6, 1.3))
            render = ct_model.render_ct(anatomy, grid, rng, lesion_scale=scale)
            study = _study("ct", index, visit, seed)
            case = _write_ct_case(root, render, anatomy, scale, affine_lps, study, fmt, visits > 1)
            cases.append(case)
            logger.debug("wrote synthetic CT case %s", case.case_id)
            if on_case:
                on_case(case)
        records.append(PatientTruth(patient_id=cases[0].case_id.split("_")[0], cases=cases))
    truth = Truth(
        kind="ct",
        format=fmt,  # type: ignore[arg-type]  # checked by _check_args
        seed=seed,
        size=size,
        labels=ct_model.CT_LABELS,
        lesion_labels=[ct_model.LESION_LABEL],
        patients=records,
    )
    _write_labels_spec(root, truth.labels, truth.lesion_labels)
    truth.save(root / "truth.json")
    return truth


def _write_ct_case(
    root: Path,
    render: ct_model.CTRender,
    anatomy: ct_model.CTAnatomy,
    scale: float,
    affine_lps: Affine,
    study: StudyInfo,
    fmt: str,
    dated: bool,
) -> CaseTruth:
    case_id = case_id_for(study.patient_id, study_date=study.study_date if dated else None)
    volume = Volume(render.hu, lps_to_ras_affine(affine_lps))
    if fmt == "dicom":
        image_rel = f"images/{study.patient_id}/{study.study_date}_CT1"
        write_ct_series(render.hu, affine_lps, study, root / image_rel)
    else:
        image_rel = f"images/{case_id}.nii.gz"
        _write_nifti_image(volume, root / image_rel, study, None, "CT")
    label_rel = f"labels/{case_id}.nii.gz"
    (root / "labels").mkdir(exist_ok=True)
    write_nifti(volume.with_array(render.label), root / label_rel)
    instances = np.zeros(render.label.shape, dtype=np.uint16)
    for i, mask in enumerate(render.lesion_masks, start=1):
        instances[mask] = i
    analytic = [
        (les.scaled(scale).volume_mm3, les.scaled(scale).radii_mm) for les in anatomy.lesions
    ]
    lesions = _lesion_truths(
        instances,
        [ct_model.LESION_LABEL] * len(anatomy.lesions),
        ct_model.CT_LABELS,
        volume,
        analytic,
    )
    return CaseTruth(
        case_id=case_id,
        image=image_rel,
        label=label_rel,
        study_date=study.study_date,
        shape=volume.shape,
        spacing_mm=volume.spacing,
        lesions=lesions,
    )


def _oct_affine_lps(size: oct_model.OCTSize, laterality: Laterality) -> Affine:
    """Lateral along +L (patient left), depth along +P, B-scans from superior to inferior (-S)."""
    sx, sy, sz = size.spacing
    affine = np.diag([sx, sy, -sz, 1.0])
    eye_x = -32.0 if laterality == "OD" else 32.0  # right eye on the patient's right (-L)
    affine[:3, 3] = [eye_x - (size.width - 1) / 2.0 * sx, 0.0, (size.bscans - 1) / 2.0 * sz]
    return affine


def _eyes(rng: np.random.Generator) -> list[Laterality]:
    """Both eyes for about half of the patients, otherwise one random eye."""
    if rng.uniform() < 0.5:
        return ["OD", "OS"]
    return ["OD" if rng.uniform() < 0.5 else "OS"]


def synth_oct(
    out_dir: PathLike,
    *,
    patients: int = 4,
    fmt: str = "dicom",
    seed: int = 0,
    size: str = "small",
    visits: int = 1,
    retina_label: bool = False,
    on_case: CaseCallback | None = None,
) -> Truth:
    """Write synthetic macular OCT: IRF (label 1) and SRF (label 2) in a layered retina.

    Args:
        out_dir: output folder (created).
        patients: number of patients (about half get both eyes).
        fmt: ``"dicom"`` (Ophthalmic Tomography multi-frame, one file per eye), ``"nifti"`` or
            ``"png"`` (B-scans with a ``spacing.json`` sidecar).
        seed: random seed; same seed, same pixel data.
        size: ``"tiny"`` (tests), ``"small"`` or ``"realistic"`` (49 x 496 x 768), see OCT_SIZES.
        visits: studies per patient (follow-ups 91 days apart; fluid shrinks or grows).
        retina_label: also label the neurosensory retina as 3 (for thickness maps).
        on_case: called after each case is written.

    Returns:
        The :class:`Truth`, also written to ``out_dir/truth.json``; cases carry the fovea in LPS.
    """
    _check_args(patients, visits, fmt, ("dicom", "nifti", "png"), size, oct_model.OCT_SIZES)
    root = ensure_output_dir(out_dir)
    grid = oct_model.OCT_SIZES[size]
    labels = oct_model.OCT_LABELS_WITH_RETINA if retina_label else oct_model.OCT_LABELS
    records: list[PatientTruth] = []
    for index in range(patients):
        rng = _patient_rng(seed, "oct", index)
        cases = []
        for n_eye, eye_side in enumerate(_eyes(rng)):
            # the fellow eye of a bilateral patient is dry one time in three (unilateral disease)
            dry = n_eye == 1 and rng.uniform() < 0.35
            eye = oct_model.sample_eye_anatomy(rng, grid, dry=dry)
            for visit in range(visits):
                scale = 1.0 if visit == 0 else float(rng.uniform(0.3, 1.2))
                render = oct_model.render_eye(
                    eye.scaled(scale), grid, rng, retina_label=retina_label
                )
                study = _study("oct", index, visit, seed)
                case = _write_oct_case(root, render, grid, study, eye_side, fmt, labels, visits > 1)
                cases.append(case)
                logger.debug("wrote synthetic OCT case %s", case.case_id)
                if on_case:
                    on_case(case)
        records.append(PatientTruth(patient_id=cases[0].case_id.split("_")[0], cases=cases))
    truth = Truth(
        kind="oct",
        format=fmt,  # type: ignore[arg-type]  # checked by _check_args
        seed=seed,
        size=size,
        labels=labels,
        lesion_labels=[oct_model.IRF_LABEL, oct_model.SRF_LABEL],
        patients=records,
    )
    _write_labels_spec(root, truth.labels, truth.lesion_labels)
    truth.save(root / "truth.json")
    return truth


def _write_oct_case(
    root: Path,
    render: oct_model.OCTRender,
    grid: oct_model.OCTSize,
    study: StudyInfo,
    laterality: Laterality,
    fmt: str,
    labels: dict[str, str],
    dated: bool,
) -> CaseTruth:
    case_id = case_id_for(
        study.patient_id, laterality=laterality, study_date=study.study_date if dated else None
    )
    affine_lps = _oct_affine_lps(grid, laterality)
    volume = Volume(render.image, lps_to_ras_affine(affine_lps), {"laterality": laterality})
    if fmt == "dicom":
        image_rel = f"images/{study.patient_id}/{study.study_date}/OPT_{laterality}.dcm"
        write_oct_dicom(render.image, affine_lps, study, root / image_rel, laterality=laterality)
    elif fmt == "nifti":
        image_rel = f"images/{case_id}.nii.gz"
        (root / "images").mkdir(exist_ok=True)
        _write_nifti_image(volume, root / image_rel, study, laterality, "OPT")
    else:
        image_rel = f"images/{case_id}"
        write_image_stack(
            volume,
            root / image_rel,
            laterality=laterality,
            patient_id=study.patient_id,
            study_date=study.study_date,
            modality="OPT",
        )
    label_rel = f"labels/{case_id}.nii.gz"
    (root / "labels").mkdir(exist_ok=True)
    write_nifti(volume.with_array(render.label), root / label_rel)
    analytic: list[tuple[float | None, tuple[float, float, float] | None]] = [(None, None)] * len(
        render.kinds
    )
    lesions = _lesion_truths(render.instances, render.kinds, labels, volume, analytic)
    return CaseTruth(
        case_id=case_id,
        image=image_rel,
        label=label_rel,
        study_date=study.study_date,
        laterality=laterality,
        shape=volume.shape,
        spacing_mm=volume.spacing,
        fovea_lps_mm=tuple(float(v) for v in volume.voxel_to_lps(np.asarray(render.fovea_voxel))),  # type: ignore[arg-type]
        lesions=lesions,
    )


def _write_labels_spec(root: Path, labels: dict[str, str], lesion_labels: list[int]) -> None:
    """``labels/labels.json``: label names and lesion labels, read by ``manifest build``."""
    write_json_atomic(
        root / "labels" / "labels.json", {"labels": labels, "lesion_labels": lesion_labels}
    )

"""DICOM SR measurement reports (TID 1500, highdicom) of a source study's report numbers.

One Comprehensive 3D SR per source study (StudyInstanceUID) of a patient, in that study, built
from the ``report.json`` entries of the study's measured cases (an OCT visit: one case per eye)
and their DICOM SEGs (``predict --dicom-seg``), all referenced as evidence. Every group's
tracking identifier starts with its case id (``report.json``'s ``case_id``):

* one *volumetric ROI* group (TID 1411) per lesion: tracking identifier
  (``<case_id> <class> lesion <id>``, the report's ``lesion_id``) and a tracking UID, finding
  category and type from the label's coding (:mod:`medseg.coding`), the segment of the lesion's
  class in its own case's SEG, volume (mm³), RECIST
  long axis and the short axis perpendicular to it (mm), the longest 3D diameter (Diameter,
  derivation Maximum, mm) and the mean intensity inside (CT: Attenuation Coefficient in HU;
  other images: medseg's ``Image intensity`` in arbitrary units); for OCT the finding site is the
  retina of the eye with the lesion's ETDRS subfield as topographical modifier;
* one *measurement* group (TID 1501) per case and label (``<case_id> <class> total``): the
  label's volume (every voxel, as in ``statistics.json``), its mean intensity, and for lesion
  classes the number of lesions; for OCT the finding site is the case's eye;
* OCT: one group per eye, ETDRS subfield and fluid class (``<case_id> <class> in <subfield>``)
  with the fluid volume in nL.

The file is ``<study key>.sr.dcm`` (:func:`sr_file_name`).

Numbers are written as Decimal String and, for non-integers, also as the exact double
(FloatingPointValue), so readers get the ``report.json`` values back bit for bit. ETDRS
subfields, which no standard terminology codes yet, use the local scheme ``99MEDSEG`` declared in
the SR's Coding Scheme Identification Sequence.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from medseg._optional import require
from medseg._version import __version__
from medseg.coding import RETINA, Code, LabelCoding
from medseg.errors import DataError
from medseg.io.atomic import atomic_path
from medseg.reports.inputs import normalize_date
from medseg.reports.schema import LesionRecord, StudyReport

__all__ = [
    "LOCAL_SCHEME",
    "SrCase",
    "SrSettings",
    "read_seg_header",
    "sr_file_name",
    "study_sr",
    "write_study_sr",
]

LOCAL_SCHEME = "99MEDSEG"
"""Private coding scheme designator (PS3.16 8.2: ``99`` prefix) of medseg's local codes."""
_SUBFIELD_CODES = {
    "central": ("ETDRS-C", "ETDRS central subfield"),
    **{f"{ring}_{side}": (f"ETDRS-{ring[0].upper()}{side[0].upper()}",
                         f"ETDRS {ring} {side} subfield")
       for ring in ("inner", "outer") for side in ("superior", "nasal", "inferior", "temporal")},
    "outside": ("ETDRS-OUT", "Outside the ETDRS grid"),
}  # fmt: skip
IMAGE_INTENSITY = Code(value="IMAGE-INTENSITY", scheme=LOCAL_SCHEME, meaning="Image intensity")
NUMBER_OF_LESIONS = Code(value="246206008", scheme="SCT", meaning="Number of lesions")
LATERALITY = {"OD": ("24028007", "Right"), "OS": ("7771000", "Left")}
SR_SERIES_NUMBER = 9002


@dataclass(frozen=True)
class SrSettings:
    """What every SR of a report run shares.

    Attributes:
        codings: ``{label value: LabelCoding}`` (finding category and type).
        lesion_labels: lesion classes (their totals carry a lesion count).
        algorithm_version: the run's checkpoint sha256 (or medseg's version when unknown).
    """

    codings: Mapping[int, LabelCoding]
    lesion_labels: Sequence[int]
    algorithm_version: str = __version__


class SrCase(NamedTuple):
    """One measured case of a study: its report entry and its DICOM SEG (header) dataset."""

    study: StudyReport
    seg: Any


def _concept(code: Any) -> Any:
    hd = require("highdicom", purpose="writing DICOM SR")
    if isinstance(code, Code):
        return hd.sr.CodedConcept(code.value, code.scheme, code.meaning, code.scheme_version)
    return hd.sr.CodedConcept.from_code(code)


def _uid(*parts: object) -> str:
    """A UID derived from ``parts`` (the same inputs give the same UID)."""
    from pydicom.uid import generate_uid

    return str(generate_uid(entropy_srcs=[str(p) for p in parts]))


def _segment_numbers(seg: Any, names: Mapping[int, str]) -> dict[int, int]:
    """Label value -> SEG segment number, by segment label (medseg writes the label names)."""
    by_name = {str(s.SegmentLabel): int(s.SegmentNumber) for s in seg.SegmentSequence}
    return {v: by_name[n] for v, n in names.items() if n in by_name}


def _finding_site(study: StudyReport, subfield: str | None) -> Any:
    """The retina of the study's eye, the ETDRS subfield as topographical modifier."""
    hd = require("highdicom", purpose="writing DICOM SR")
    side = LATERALITY.get(study.laterality or "")
    modifier = None
    if subfield in _SUBFIELD_CODES:
        value, meaning = _SUBFIELD_CODES[subfield]
        modifier = hd.sr.CodedConcept(value, LOCAL_SCHEME, meaning)
    return hd.sr.FindingSite(
        anatomic_location=_concept(RETINA),
        laterality=hd.sr.CodedConcept(side[0], "SCT", side[1]) if side else None,
        topographical_modifier=modifier,
    )


def _measurement(name: Any, value: float, unit: Any, derivation: Any = None) -> Any:
    hd = require("highdicom", purpose="writing DICOM SR")
    return hd.sr.Measurement(
        name=_concept(name), value=value, unit=_concept(unit),
        derivation=None if derivation is None else _concept(derivation),
    )  # fmt: skip


def _intensity(study: StudyReport, mean: float | None) -> list[Any]:
    """The mean intensity measurement (HU for CT, arbitrary units otherwise), if measured."""
    from pydicom.sr.codedict import codes

    if mean is None:
        return []
    if (study.modality or "").upper() == "CT":
        return [_measurement(codes.DCM.AttenuationCoefficient, mean, codes.UCUM.HounsfieldUnit,
                             codes.SCT.Mean)]  # fmt: skip
    return [_measurement(IMAGE_INTENSITY, mean, codes.UCUM.ArbitraryUnit, codes.SCT.Mean)]


def _lesion_measurements(study: StudyReport, lesion: LesionRecord) -> list[Any]:
    from pydicom.sr.codedict import codes

    mm = codes.UCUM.Millimeter
    return [
        _measurement(codes.SCT.Volume, lesion.volume_mm3, codes.UCUM.CubicMillimeter),
        _measurement(codes.SCT.LongAxis, lesion.inplane_long_mm, mm),
        _measurement(codes.SCT.ShortAxis, lesion.inplane_short_mm, mm),
        _measurement(codes.SCT.Diameter, lesion.longest_diameter_mm, mm, codes.SCT.Maximum),
        *_intensity(study, lesion.mean_intensity),
    ]


def _algorithm(settings: SrSettings) -> Any:
    hd = require("highdicom", purpose="writing DICOM SR")
    return hd.sr.AlgorithmIdentification(
        name="medseg", version=settings.algorithm_version[:64], parameters=[__version__]
    )


def _lesion_group(
    study: StudyReport, lesion: LesionRecord, seg: Any, segment: int, settings: SrSettings
) -> Any:
    """TID 1411 group of one lesion, referencing its class's SEG segment."""
    hd = require("highdicom", purpose="writing DICOM SR")
    coding = settings.codings[lesion.label]
    source = seg.ReferencedSeriesSequence[0].SeriesInstanceUID
    oct_study = study.oct is not None
    return hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(
            uid=_uid(seg.SOPInstanceUID, lesion.lesion_id),
            identifier=f"{study.case_id} {lesion.label_name} lesion {lesion.lesion_id}",
        ),
        referenced_segment=hd.sr.ReferencedSegment(
            sop_class_uid=seg.SOPClassUID, sop_instance_uid=seg.SOPInstanceUID,
            segment_number=segment, source_series=hd.sr.SourceSeriesForSegmentation(source),
        ),
        finding_type=_concept(coding.type),
        finding_category=_concept(coding.category),
        finding_sites=[_finding_site(study, lesion.etdrs_subfield)] if oct_study else None,
        algorithm_id=_algorithm(settings),
        measurements=_lesion_measurements(study, lesion),
    )  # fmt: skip


def _class_groups(study: StudyReport, seg: Any, settings: SrSettings) -> list[Any]:
    """TID 1501 group per label: whole-label volume, mean intensity, lesion count."""
    hd = require("highdicom", purpose="writing DICOM SR")
    from pydicom.sr.codedict import codes

    counts = {t.label: t.count for t in study.totals}
    groups = []
    for stats in study.statistics:
        coding = settings.codings[stats.label]
        measurements = [
            _measurement(codes.SCT.Volume, stats.volume_mm3, codes.UCUM.CubicMillimeter,
                         codes.SCT.Total),
            *_intensity(study, stats.mean_intensity),
        ]  # fmt: skip
        if stats.label in counts:
            measurements.append(
                _measurement(NUMBER_OF_LESIONS, counts[stats.label], codes.UCUM.NoUnits)
            )
        groups.append(
            hd.sr.MeasurementsAndQualitativeEvaluations(
                tracking_identifier=hd.sr.TrackingIdentifier(
                    uid=_uid(seg.SOPInstanceUID, "total", stats.label),
                    identifier=f"{study.case_id} {stats.label_name} total",
                ),
                finding_type=_concept(coding.type),
                finding_category=_concept(coding.category),
                finding_sites=[_finding_site(study, None)] if study.oct else None,
                algorithm_id=_algorithm(settings),
                measurements=measurements,
            )
        )
    return groups


def _subfield_groups(study: StudyReport, seg: Any, settings: SrSettings) -> list[Any]:
    """TID 1501 group per ETDRS subfield and fluid class: the fluid volume (nL)."""
    hd = require("highdicom", purpose="writing DICOM SR")
    from pydicom.sr.codedict import codes

    if study.oct is None:
        return []
    nanolitre = Code(value="nL", scheme="UCUM", meaning="nanoliter")
    by_name = {t.label_name: t.label for t in study.totals}
    groups = []
    for sub in study.oct.etdrs:
        for name, volume_nl in sub.fluid_nl.items():
            coding = settings.codings[by_name[name]]
            groups.append(
                hd.sr.MeasurementsAndQualitativeEvaluations(
                    tracking_identifier=hd.sr.TrackingIdentifier(
                        uid=_uid(seg.SOPInstanceUID, sub.name, name),
                        identifier=f"{study.case_id} {name} in {sub.name}",
                    ),
                    finding_type=_concept(coding.type),
                    finding_category=_concept(coding.category),
                    finding_sites=[_finding_site(study, sub.name)],
                    algorithm_id=_algorithm(settings),
                    measurements=[_measurement(codes.SCT.Volume, volume_nl, nanolitre)],
                )
            )
    return groups


def _procedure(studies: Sequence[StudyReport]) -> Any:
    from pydicom.sr.codedict import codes

    if any((study.modality or "").upper() == "CT" for study in studies):
        return codes.SCT.ComputedTomography
    return codes.SCT.ImagingProcedure


def _observation_context() -> Any:
    hd = require("highdicom", purpose="writing DICOM SR")
    from pydicom.sr.codedict import codes

    device = hd.sr.DeviceObserverIdentifyingAttributes(
        uid=_uid("medseg device"), name="medseg", manufacturer_name="medseg",
        model_name="medseg", serial_number=__version__,
    )  # fmt: skip
    return hd.sr.ObservationContext(
        observer_device_context=hd.sr.ObserverContext(
            observer_type=codes.DCM.Device, observer_identifying_attributes=device
        )
    )


def _coding_schemes() -> list[Any]:
    from pydicom.dataset import Dataset

    item = Dataset()
    item.CodingSchemeDesignator = LOCAL_SCHEME
    item.CodingSchemeName = "medseg local codes (ETDRS subfields, image intensity)"
    item.CodingSchemeResponsibleOrganization = "medseg"
    return [item]


def _case_groups(case: SrCase, settings: SrSettings) -> list[Any]:
    """The lesion, per-label and (OCT) subfield groups of one case, referencing its SEG.

    Raises:
        DataError: the SEG has no segment for a lesion class of the case.
    """
    study, seg = case
    names = {t.label: t.label_name for t in study.totals}
    names |= {s.label: s.label_name for s in study.statistics}
    segments = _segment_numbers(seg, names)
    missing = sorted({les.label_name for les in study.lesions if les.label not in segments})
    if missing:
        raise DataError(f"the DICOM SEG has no segment named {missing}", case_id=study.case_id)
    groups = [
        _lesion_group(study, lesion, seg, segments[lesion.label], settings)
        for lesion in study.lesions
    ]
    return groups + _class_groups(study, seg, settings) + _subfield_groups(study, seg, settings)


def study_sr(cases: Sequence[SrCase], settings: SrSettings) -> Any:
    """The Comprehensive 3D SR (TID 1500) of one source study's measured cases, in that study.

    Args:
        cases: the study's cases (at least one), each with its SEG; every SEG is evidence.

    Raises:
        DataError: the SEGs belong to different studies, or one has no segment for a lesion
            class of its case.
    """
    hd = require("highdicom", purpose="writing DICOM SR")
    uids = {str(case.seg.StudyInstanceUID) for case in cases}
    if len(uids) != 1:
        raise DataError(f"one SR needs the SEGs of one study, got {len(uids)} studies",
                        case_id=", ".join(case.study.case_id for case in cases))  # fmt: skip
    groups = [group for case in cases for group in _case_groups(case, settings)]
    report = hd.sr.MeasurementReport(
        observation_context=_observation_context(),
        procedure_reported=_procedure([case.study for case in cases]),
        imaging_measurements=groups,
    )
    segs = sorted(str(case.seg.SOPInstanceUID) for case in cases)
    sr = hd.sr.Comprehensive3DSR(
        evidence=[case.seg for case in cases], content=report,
        series_instance_uid=_uid(*segs, "sr series"), series_number=SR_SERIES_NUMBER,
        sop_instance_uid=_uid(*segs, "sr"), instance_number=1, manufacturer="medseg",
        is_complete=True, series_description="medseg measurements",
    )  # fmt: skip
    sr.CodingSchemeIdentificationSequence = _coding_schemes()
    return sr


def read_seg_header(path: Path) -> Any:
    """The DICOM SEG at ``path`` without its pixel data (all an SR needs of it).

    Raises:
        DataError: not a readable DICOM file, or no StudyInstanceUID.
    """
    import pydicom

    try:
        seg = pydicom.dcmread(path, stop_before_pixels=True)
    except Exception as err:  # pydicom raises many types for broken files
        raise DataError(f"cannot read the DICOM SEG: {err}", path=path) from err
    if not str(seg.get("StudyInstanceUID", "")):
        raise DataError("the DICOM SEG has no StudyInstanceUID", path=path)
    return seg


def sr_file_name(seg: Any) -> str:
    """``<study key>.sr.dcm`` of a SEG's source study: the same study always gets the same name.

    The key is the StudyDate (``YYYY-MM-DD``, ``undated`` when missing or malformed) and the
    first 8 hex digits of the sha256 of the StudyInstanceUID: readable, filesystem-safe, unique
    among a patient's studies (two visits on one day differ by the hash), and free of any
    identifier (a one-way hash of a UID; the patient id is already the folder's name).

    Example:
        >>> from pydicom import Dataset
        >>> seg = Dataset(); seg.StudyDate = "20240115"; seg.StudyInstanceUID = "1.2.3"
        >>> sr_file_name(seg)
        '2024-01-15_c47f5b18.sr.dcm'
    """
    date = normalize_date(seg.get("StudyDate")) or ""
    date = date if re.fullmatch(r"\d{4}-\d{2}-\d{2}", date) else "undated"
    digest = hashlib.sha256(str(seg.StudyInstanceUID).encode()).hexdigest()[:8]
    return f"{date}_{digest}.sr.dcm"


def write_study_sr(cases: Sequence[SrCase], out: Path, settings: SrSettings) -> Path:
    """Write ``out`` (``<folder>/`` :func:`sr_file_name`) for one study's cases, atomically.

    Raises:
        DataError: see :func:`study_sr`.
    """
    sr = study_sr(cases, settings)
    with atomic_path(out) as tmp:
        sr.save_as(tmp)
    return out

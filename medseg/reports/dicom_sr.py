"""DICOM SR measurement reports (TID 1500, highdicom) of a study's report numbers.

One Comprehensive 3D SR per predicted study (case), built from the study's ``report.json``
entries and the study's DICOM SEG (``predict --dicom-seg``), which it references:

* one *volumetric ROI* group (TID 1411) per lesion: tracking identifier (``<class> lesion <id>``,
  the report's ``lesion_id``) and a tracking UID, finding category and type from the label's
  coding (:mod:`medseg.coding`), the SEG segment of the lesion's class, volume (mm³), RECIST
  long axis and the short axis perpendicular to it (mm), the longest 3D diameter (Diameter,
  derivation Maximum, mm) and the mean intensity inside (CT: Attenuation Coefficient in HU;
  other images: medseg's ``Image intensity`` in arbitrary units); for OCT the finding site is the
  retina of the eye with the lesion's ETDRS subfield as topographical modifier;
* one *measurement* group (TID 1501) per label (``<class> total``): the label's volume (every
  voxel, as in ``statistics.json``), its mean intensity, and for lesion classes the number of
  lesions;
* OCT: one group per ETDRS subfield and fluid class (``<class> in <subfield>``) with the fluid
  volume in nL.

Numbers are written as Decimal String and, for non-integers, also as the exact double
(FloatingPointValue), so readers get the ``report.json`` values back bit for bit. ETDRS
subfields, which no standard terminology codes yet, use the local scheme ``99MEDSEG`` declared in
the SR's Coding Scheme Identification Sequence.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medseg._optional import require
from medseg._version import __version__
from medseg.coding import RETINA, Code, LabelCoding
from medseg.errors import DataError
from medseg.io.atomic import atomic_path
from medseg.reports.schema import LesionRecord, StudyReport

__all__ = ["LOCAL_SCHEME", "SrSettings", "study_sr", "write_study_sr"]

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
            identifier=f"{lesion.label_name} lesion {lesion.lesion_id}",
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
                    identifier=f"{stats.label_name} total",
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
                        identifier=f"{name} in {sub.name}",
                    ),
                    finding_type=_concept(coding.type),
                    finding_category=_concept(coding.category),
                    finding_sites=[_finding_site(study, sub.name)],
                    algorithm_id=_algorithm(settings),
                    measurements=[_measurement(codes.SCT.Volume, volume_nl, nanolitre)],
                )
            )
    return groups


def _procedure(study: StudyReport) -> Any:
    from pydicom.sr.codedict import codes

    if (study.modality or "").upper() == "CT":
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


def study_sr(study: StudyReport, seg: Any, settings: SrSettings) -> Any:
    """The Comprehensive 3D SR (TID 1500) of one measured study and its DICOM SEG dataset.

    Raises:
        DataError: the SEG has no segment for a lesion class of the study.
    """
    hd = require("highdicom", purpose="writing DICOM SR")
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
    groups += _class_groups(study, seg, settings) + _subfield_groups(study, seg, settings)
    report = hd.sr.MeasurementReport(
        observation_context=_observation_context(),
        procedure_reported=_procedure(study),
        imaging_measurements=groups,
    )
    sr = hd.sr.Comprehensive3DSR(
        evidence=[seg], content=report, series_instance_uid=_uid(seg.SOPInstanceUID, "sr series"),
        series_number=SR_SERIES_NUMBER, sop_instance_uid=_uid(seg.SOPInstanceUID, "sr"),
        instance_number=1, manufacturer="medseg", is_complete=True,
        series_description="medseg measurements",
    )  # fmt: skip
    sr.CodingSchemeIdentificationSequence = _coding_schemes()
    return sr


def write_study_sr(study: StudyReport, seg_path: Path, out: Path, settings: SrSettings) -> Path:
    """Write ``out`` (``<case_id>.sr.dcm``) for ``study`` and its SEG file, atomically.

    Raises:
        DataError: the SEG cannot be read or lacks the study's classes.
    """
    import pydicom

    try:
        seg = pydicom.dcmread(seg_path)
    except Exception as err:  # pydicom raises many types for broken files
        raise DataError(f"cannot read the DICOM SEG: {err}", path=seg_path) from err
    sr = study_sr(study, seg, settings)
    with atomic_path(out) as tmp:
        sr.save_as(tmp)
    return out

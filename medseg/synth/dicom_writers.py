"""Write synthetic volumes as real DICOM: a CT Image Storage series and Ophthalmic Tomography files.

Both writers take arrays indexed ``(X, Y, Z)`` = (column, row, slice/frame) and a voxel->LPS
affine whose first two columns are axis-aligned (no in-plane shear), exactly the layout
:func:`medseg.io.geometry.dicom_affine_lps` reads back.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import CTImageStorage, OphthalmicTomographyImageStorage

from medseg.io.atomic import atomic_path
from medseg.synth.dicom_common import StudyInfo, base_dataset, make_uid
from medseg.types import Affine, Laterality

HU_INTERCEPT = -1024.0


def _plane_geometry(affine_lps: Affine) -> tuple[list[float], list[float], npt.NDArray[np.float64]]:
    """(ImageOrientationPatient, PixelSpacing [row, col], slice step vector) of an affine."""
    col_vec, row_vec, step = affine_lps[:3, 0], affine_lps[:3, 1], affine_lps[:3, 2]
    col_spacing, row_spacing = float(np.linalg.norm(col_vec)), float(np.linalg.norm(row_vec))
    iop = [*(col_vec / col_spacing).tolist(), *(row_vec / row_spacing).tolist()]
    return [round(v, 8) for v in iop], [row_spacing, col_spacing], step


def _ds_float(value: float) -> str:
    """A DS string of at most 16 characters."""
    text = f"{value:.10g}"
    return text if len(text) <= 16 else f"{value:.6g}"


def _save(ds: Dataset, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        ds.save_as(tmp, enforce_file_format=True)


def write_ct_series(
    hu: npt.NDArray[np.int16],
    affine_lps: Affine,
    study: StudyInfo,
    out_dir: Path,
    *,
    series_number: int = 1,
    description: str = "synthetic CT",
) -> list[Path]:
    """Write one CT Image Storage file per slice into ``out_dir``.

    Args:
        hu: ``(X, Y, Z)`` Hounsfield units; stored as int16 with RescaleIntercept -1024, slope 1.
        affine_lps: voxel -> LPS mm affine (column, row, slice).
        study: patient and study identity.
        out_dir: folder for ``IM0001.dcm``, ``IM0002.dcm``, ...
        series_number: DICOM SeriesNumber; the series UID is derived from study and number.
        description: SeriesDescription.

    Returns:
        The written file paths, in slice order.
    """
    iop, pixel_spacing, step = _plane_geometry(affine_lps)
    series_uid = make_uid(study.study_uid, "series", series_number)
    frame_uid = make_uid(study.study_uid, "frame-of-reference")
    stored = (hu.astype(np.int32) - int(HU_INTERCEPT)).astype(np.int16)
    paths: list[Path] = []
    for k in range(hu.shape[2]):
        sop_uid = make_uid(series_uid, k)
        ds = base_dataset(
            study, sop_class_uid=CTImageStorage, sop_instance_uid=sop_uid, modality="CT"
        )
        ds.SeriesInstanceUID = series_uid
        ds.SeriesNumber = series_number
        ds.SeriesDescription = description
        ds.FrameOfReferenceUID = frame_uid
        ds.PositionReferenceIndicator = ""
        ds.InstanceNumber = k + 1
        ds.AcquisitionNumber = 1
        ds.PatientPosition = "HFS"
        ds.BodyPartExamined = "ABDOMEN"
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        position = affine_lps[:3, 3] + k * step
        ds.ImagePositionPatient = [_ds_float(v) for v in position]
        ds.ImageOrientationPatient = [_ds_float(v) for v in iop]
        ds.SliceLocation = _ds_float(float(position[2]))
        ds.SliceThickness = _ds_float(float(np.linalg.norm(step)))
        ds.PixelSpacing = [_ds_float(v) for v in pixel_spacing]
        ds.KVP = "120"
        ds.Rows, ds.Columns = hu.shape[1], hu.shape[0]
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 16, 15
        ds.PixelRepresentation = 1
        ds.RescaleIntercept = _ds_float(HU_INTERCEPT)
        ds.RescaleSlope = "1"
        ds.RescaleType = "HU"
        ds.WindowCenter, ds.WindowWidth = "40", "400"
        ds.PixelData = np.ascontiguousarray(stored[:, :, k].T).tobytes()
        path = out_dir / f"IM{k + 1:04d}.dcm"
        _save(ds, path)
        paths.append(path)
    return paths


def _code(value: str, scheme: str, meaning: str) -> Dataset:
    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = value, scheme, meaning
    return item


def _opt_shared_groups(affine_lps: Affine, laterality: Laterality) -> Dataset:
    iop, pixel_spacing, step = _plane_geometry(affine_lps)
    measures = Dataset()
    measures.PixelSpacing = [_ds_float(v) for v in pixel_spacing]
    measures.SliceThickness = _ds_float(float(np.linalg.norm(step)))
    measures.SpacingBetweenSlices = _ds_float(float(np.linalg.norm(step)))
    orientation = Dataset()
    orientation.ImageOrientationPatient = [_ds_float(v) for v in iop]
    anatomy = Dataset()
    anatomy.AnatomicRegionSequence = Sequence([_code("81745001", "SCT", "Eye")])
    anatomy.FrameLaterality = "R" if laterality == "OD" else "L"
    shared = Dataset()
    shared.PixelMeasuresSequence = Sequence([measures])
    shared.PlaneOrientationSequence = Sequence([orientation])
    shared.FrameAnatomySequence = Sequence([anatomy])
    return shared


def _opt_frame_group(affine_lps: Affine, k: int, acquired: str) -> Dataset:
    """Per-frame groups of B-scan ``k``: its position and content (acquired ``acquired``)."""
    position = affine_lps[:3, 3] + k * affine_lps[:3, 2]
    plane = Dataset()
    plane.ImagePositionPatient = [_ds_float(v) for v in position]
    content = Dataset()
    content.StackID = "1"
    content.InStackPositionNumber = k + 1
    content.DimensionIndexValues = [1, k + 1]
    content.FrameAcquisitionDateTime = acquired
    content.FrameReferenceDateTime = acquired
    content.FrameAcquisitionDuration = 10.0  # ms per B-scan
    frame = Dataset()
    frame.PlanePositionSequence = Sequence([plane])
    frame.FrameContentSequence = Sequence([content])
    return frame


def _opt_acquisition(ds: Dataset) -> None:
    """Ophthalmic Tomography acquisition attributes (Type 2 ones present, empty when unknown).

    Concatenations are not permitted for OPT: its Image module enumerates Concatenation Frame
    Offset Number 0 and In-concatenation Number / Total Number 1 (PS3.3 C.8.17.7).
    """
    ds.DeviceSerialNumber = "SYNTH0001"
    ds.ConcatenationFrameOffsetNumber = 0
    ds.InConcatenationNumber = 1
    ds.InConcatenationTotalNumber = 1
    ds.AnatomicRegionSequence = Sequence([_code("81745001", "SCT", "Eye")])
    ds.AcquisitionDeviceTypeCodeSequence = Sequence(
        [_code("392012008", "SCT", "Optical Coherence Tomography Scanner")]
    )
    ds.AcquisitionContextSequence = Sequence()
    ds.LightPathFilterTypeStackCodeSequence = Sequence()
    ds.RefractiveStateSequence = Sequence()
    ds.EmmetropicMagnification = None
    ds.IntraOcularPressure = None
    ds.PupilDilated = None
    ds.DetectorType = "CCD"
    ds.AxialLengthOfTheEye = 23.5
    ds.HorizontalFieldOfView = 20.0


def _opt_dimensions(dimension_uid: str) -> tuple[Sequence, Sequence]:
    org = Dataset()
    org.DimensionOrganizationUID = dimension_uid
    stack = Dataset()
    stack.DimensionOrganizationUID = dimension_uid
    stack.DimensionIndexPointer = 0x00209056  # StackID
    stack.FunctionalGroupPointer = 0x00209111  # FrameContentSequence
    pos = Dataset()
    pos.DimensionOrganizationUID = dimension_uid
    pos.DimensionIndexPointer = 0x00209057  # InStackPositionNumber
    pos.FunctionalGroupPointer = 0x00209111
    return Sequence([org]), Sequence([stack, pos])


def write_oct_dicom(
    image: npt.NDArray[np.uint8],
    affine_lps: Affine,
    study: StudyInfo,
    path: Path,
    *,
    laterality: Laterality,
    series_number: int = 1,
) -> Path:
    """Write one eye as a multi-frame Ophthalmic Tomography Image Storage file.

    Args:
        image: ``(X, Y, Z)`` = (lateral, depth, B-scan) uint8 reflectivity.
        affine_lps: voxel -> LPS mm affine; its columns give lateral, axial and B-scan steps.
        study: patient and study identity.
        path: output file.
        laterality: ``"OD"`` (right eye) or ``"OS"`` (left eye); written as ImageLaterality R / L.
        series_number: DICOM SeriesNumber.

    The B-scan geometry is in the functional groups: PixelSpacing, SliceThickness and
    SpacingBetweenSlices in the shared Pixel Measures, ImageOrientationPatient in the shared Plane
    Orientation, and one ImagePositionPatient per frame in Plane Position.
    """
    series_uid = make_uid(study.study_uid, "oct-series", laterality, series_number)
    sop_uid = make_uid(series_uid, "instance")
    ds = base_dataset(
        study,
        sop_class_uid=OphthalmicTomographyImageStorage,
        sop_instance_uid=sop_uid,
        modality="OPT",
    )
    ds.SeriesInstanceUID = series_uid
    ds.SeriesNumber = series_number
    ds.SeriesDescription = f"macular cube {laterality}"
    ds.FrameOfReferenceUID = make_uid(series_uid, "frame-of-reference")
    ds.PositionReferenceIndicator = ""
    ds.InstanceNumber = 1
    ds.ImageType = ["ORIGINAL", "PRIMARY"]
    ds.ImageLaterality = "R" if laterality == "OD" else "L"
    ds.AcquisitionDateTime = f"{study.study_date}{study.study_time}"
    ds.AcquisitionDuration = 1.5
    ds.AcquisitionNumber = 1
    ds.ContentQualification = "PRODUCT"
    ds.LossyImageCompression = "00"
    ds.BurnedInAnnotation = "NO"
    ds.PresentationLUTShape = "IDENTITY"
    _opt_acquisition(ds)
    dim_uid = make_uid(series_uid, "dimension")
    ds.DimensionOrganizationSequence, ds.DimensionIndexSequence = _opt_dimensions(dim_uid)
    ds.SharedFunctionalGroupsSequence = Sequence([_opt_shared_groups(affine_lps, laterality)])
    ds.PerFrameFunctionalGroupsSequence = Sequence(
        [_opt_frame_group(affine_lps, k, ds.AcquisitionDateTime) for k in range(image.shape[2])]
    )
    ds.NumberOfFrames = image.shape[2]
    ds.Rows, ds.Columns = image.shape[1], image.shape[0]
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 8, 8, 7
    ds.PixelRepresentation = 0
    ds.PixelData = np.ascontiguousarray(np.transpose(image, (2, 1, 0))).tobytes()
    _save(ds, path)
    return path

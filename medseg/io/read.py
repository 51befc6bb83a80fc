"""The one reader path: ``read_volume(ref) -> Volume`` for every supported source.

Training, inference, evaluation and reports all read scans through this function, so they see
the same voxels on the same world grid. Supported references:

* a NIfTI file (``.nii``, ``.nii.gz``);
* a NRRD / MHA / MHD file (SimpleITK);
* a DICOM file: a multi-frame image (Enhanced CT/MR, Ophthalmic Tomography) or one slice;
* a folder holding exactly one usable DICOM series (walked recursively);
* a folder with a ``spacing.json`` sidecar: PNG/TIFF B-scan or slice stack;
* a PNG, JPEG, TIFF, BMP or GIF file (one slice per page; :mod:`medseg.io.image_files`), or an
  :class:`~medseg.io.image_files.ImageFileRef` (one colour component, a pixel spacing);
* a vendor OCT export: Heidelberg HEYEX ``.vol`` file or XML export (file or folder), read
  through eyepy (:mod:`medseg.io.oct_vendor`; raster and line scans);
* a :class:`DicomSeriesRef` (series UID + files, as stored in manifests);
* a :class:`~medseg.io.dicom.SeriesInfo` from :func:`~medseg.io.dicom.find_series`.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from medseg.errors import DataError
from medseg.io.dicom import SeriesInfo, check_series, find_series
from medseg.io.dicom_header import CorruptDicomError, NotDicomError, read_header
from medseg.io.dicom_read import read_series
from medseg.io.image_files import ImageFileRef, is_image_file, read_image_file, read_image_ref
from medseg.io.images import is_image_stack, read_image_stack
from medseg.io.nifti import is_nifti, read_nifti, write_nifti
from medseg.io.oct_vendor import read_vendor_volume, vendor_format
from medseg.io.sitk_io import is_sitk_file, read_sitk, write_sitk
from medseg.io.volume import Volume
from medseg.types import PathLike


class DicomSeriesRef(BaseModel):
    """A DICOM series as manifests store it: its UID and its files (slice order not required).

    ``files`` may be relative; :func:`read_volume` resolves them against ``root``.
    """

    model_config = ConfigDict(extra="forbid")

    series_uid: str
    files: list[str] = Field(min_length=1)


VolumeRef = PathLike | DicomSeriesRef | SeriesInfo | ImageFileRef


def _read_series_ref(ref: DicomSeriesRef, root: Path | None) -> Volume:
    headers = []
    for name in ref.files:
        path = Path(name) if root is None or Path(name).is_absolute() else root / name
        try:
            headers.append(read_header(path))
        except FileNotFoundError as err:
            raise DataError("DICOM file of the series is missing", path=path) from err
        except (NotDicomError, CorruptDicomError) as err:
            raise DataError(f"unreadable DICOM file: {err}", path=path) from err
    foreign = {h.series_uid for h in headers} - {ref.series_uid}
    if foreign:
        raise DataError(
            f"files of other series ({len(foreign)}) listed under series {ref.series_uid}"
        )
    return read_series(check_series(headers))


def _read_dicom_folder(folder: Path) -> Volume:
    discovery = find_series(folder)
    usable = discovery.usable
    if len(usable) == 1:
        return read_series(usable[0])
    if not usable:
        problems = "; ".join(
            f"series {s.series_number}: "
            + ", ".join(i.code for i in s.issues if i.severity == "error")
            for s in discovery.series
        )
        found = f"{len(discovery.series)} found" + (f": {problems}" if problems else "")
        raise DataError(
            f"no usable DICOM series in the folder ({found})",
            path=folder,
            hint="run `medseg manifest build` on the folder to see every file and problem",
        )
    names = ", ".join(f"{s.series_number} {s.description!r}" for s in usable)
    raise DataError(
        f"the folder holds {len(usable)} usable DICOM series ({names}); expected one",
        path=folder,
        hint="point at one series folder or build a manifest to choose",
    )


def read_volume(ref: VolumeRef, *, root: PathLike | None = None) -> Volume:
    """Read any supported scan or label map.

    Args:
        ref: path, :class:`DicomSeriesRef` or :class:`SeriesInfo` (see the module docstring).
        root: folder that relative paths (and relative series files) are resolved against.

    Returns:
        :class:`Volume` with an ``(X, Y, Z)`` array and its RAS affine (mm).

    Raises:
        DataError: missing, unreadable or unsupported input; the message names the file.
    """
    root_path = None if root is None else Path(root)
    if isinstance(ref, SeriesInfo):
        return read_series(ref)
    if isinstance(ref, DicomSeriesRef):
        return _read_series_ref(ref, root_path)
    if isinstance(ref, ImageFileRef):
        return read_image_ref(ref, root_path)
    path = Path(ref)
    if root_path is not None and not path.is_absolute():
        path = root_path / path
    if not path.exists():
        raise DataError("file or folder does not exist", path=path)
    if path.is_dir():
        if is_image_stack(path):
            return read_image_stack(path)
        return read_vendor_volume(path) if vendor_format(path) else _read_dicom_folder(path)
    if is_nifti(path):
        return read_nifti(path)
    if is_sitk_file(path):
        return read_sitk(path)
    if vendor_format(path):
        return read_vendor_volume(path)
    if is_image_file(path):
        return read_image_file(path)
    try:
        header = read_header(path)
    except NotDicomError as err:
        raise DataError(
            "unsupported file type (expected NIfTI, NRRD/MHA, DICOM, PNG/JPEG/TIFF/BMP/GIF, a "
            "HEYEX VOL/XML export or a stack folder)",
            path=path,
        ) from err
    except CorruptDicomError as err:
        raise DataError(f"unreadable DICOM file: {err}", path=path) from err
    return read_series(check_series([header]))


def write_volume(volume: Volume, path: PathLike) -> Path:
    """Write a volume atomically; the format follows the extension (.nii[.gz], .nrrd, .mha)."""
    target = Path(path)
    if is_nifti(target):
        return write_nifti(volume, target)
    if target.name.lower().endswith((".nrrd", ".mha")):
        return write_sitk(volume, target)
    raise ValueError(
        f"unsupported output extension for {target.name!r} (use .nii.gz, .nrrd or .mha)"
    )

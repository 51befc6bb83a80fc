"""Label maps written by medseg and by other tools: file names -> case ids, and one reader.

Formats (``evaluate`` on both sides, ``report``): NIfTI (``.nii.gz``, ``.nii``), MHA, NRRD
(plain label maps and 3D Slicer ``.seg.nrrd`` segmentations, see :mod:`.seg_nrrd`) and DICOM SEG
(``.dcm``/``.seg.dcm``, see :mod:`.dicom_seg_read`). A file's case id is its name without the
extension, so nnU-Net's ``case.nii.gz`` labels and predictions pair with medseg's ``case``. When
one folder holds several files of one case (``medseg predict --dicom-seg`` writes
``case.nii.gz`` and ``case.seg.dcm``), the first in :data:`LABEL_MAP_SUFFIXES` order is used.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from medseg.errors import DataError
from medseg.io.atomic import PARTIAL_TAG
from medseg.io.dicom_seg_read import is_dicom_seg, read_dicom_seg
from medseg.io.read import read_volume
from medseg.io.seg_nrrd import is_slicer_segmentation, read_slicer_segmentation
from medseg.io.volume import Volume
from medseg.types import PathLike

LABEL_MAP_SUFFIXES = (".nii.gz", ".nii", ".mha", ".nrrd", ".seg.nrrd", ".seg.dcm", ".dcm")
"""Label-map extensions, in order of preference for one case."""

_LONGEST_FIRST = sorted(LABEL_MAP_SUFFIXES, key=len, reverse=True)


def label_map_id(name: str) -> str | None:
    """Case id of a label-map file name (``case.seg.nrrd`` -> ``case``), or None."""
    lower = name.lower()
    for suffix in _LONGEST_FIRST:
        if lower.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return None


def _rank(name: str) -> int:
    lower = name.lower()
    return min(i for i, s in enumerate(LABEL_MAP_SUFFIXES) if lower.endswith(s))


def label_map_files(folder: PathLike) -> dict[str, Path]:
    """``case_id -> file`` for the label maps of a folder (hidden and partial files ignored)."""
    found: dict[str, Path] = {}
    for path in sorted(Path(folder).iterdir()):
        case_id = label_map_id(path.name)
        if case_id is None or path.name.startswith(".") or PARTIAL_TAG in path.name:
            continue
        if path.is_file() and (
            case_id not in found or _rank(path.name) < _rank(found[case_id].name)
        ):
            found[case_id] = path
    return found


def read_label_map(path: PathLike, *, label_names: Mapping[int, str] | None = None) -> Volume:
    """Read a label map of any supported format as an integer :class:`Volume`.

    Args:
        path: the file (see the module docstring for formats).
        label_names: ``{value: name}`` of the data set; segmentation objects (``.seg.nrrd``,
            DICOM SEG) map their segments by these names when they match (rule in
            :mod:`medseg.io.segments`).

    Returns:
        :class:`Volume` on the file's own grid (``(X, Y, Z)``, RAS mm).

    Raises:
        DataError: unreadable file, or a DICOM file that is not a Segmentation object.
    """
    source = Path(path)
    if not source.is_file():
        raise DataError("label map file does not exist", path=source)
    if source.name.lower().endswith(".dcm"):
        if not is_dicom_seg(source):
            raise DataError(
                "DICOM label maps must be Segmentation objects (SEG); this file is not one",
                path=source,
            )
        return read_dicom_seg(source, label_names=label_names)
    if is_slicer_segmentation(source):
        return read_slicer_segmentation(source, label_names=label_names)
    return read_volume(source)

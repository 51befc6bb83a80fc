"""Label maps from other tools: Slicer .seg.nrrd, DICOM SEG, MHA/NRRD; grids moved, not resampled."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import slicerio

from medseg.errors import DataError, GeometryError
from medseg.io.dicom_seg import write_dicom_seg
from medseg.io.grid import common_grid, onto_grid
from medseg.io.label_files import label_map_files, label_map_id, read_label_map
from medseg.io.nifti import read_nifti, write_nifti
from medseg.io.read import read_volume
from medseg.io.segments import Segment, segment_label_values
from medseg.io.volume import Volume
from tests.helpers import ct_series, write_highdicom_seg, write_slicer_seg

SLICERIO_DATA = Path(slicerio.__file__).parent / "data"  # real Slicer files shipped on PyPI
CHEST_NAMES = [
    "ribs",
    "cervical vertebral column",
    "thoracic vertebral column",
    "lumbar vertebral column",
    "right lung",
    "left lung",
    "tissue",
]


def _ct_case(synth_dir: Callable[..., Path]) -> tuple[Path, Volume, Volume]:
    root = synth_dir("ct", "dicom")
    series = ct_series(root, 0)
    return series, read_volume(series), read_nifti(root / "labels" / "SYNCT0000.nii.gz")


def test_real_slicer_files_read_on_their_ct_grid() -> None:
    ct = read_volume(SLICERIO_DATA / "CTChest4.nrrd")
    plain = read_label_map(SLICERIO_DATA / "Segmentation.seg.nrrd")
    assert plain.shape == ct.shape and np.allclose(plain.affine, ct.affine, atol=1e-6)
    raw = slicerio.read_segmentation(str(SLICERIO_DATA / "Segmentation.seg.nrrd"))
    for value, segment in enumerate(raw["segments"], start=1):  # LabelValue 1..7, single layer
        np.testing.assert_array_equal(plain.array == value, slicerio.segment_mask(raw, segment))
    # the layered (4D) file adds an overlapping sphere in a second layer
    layered = SLICERIO_DATA / "SegmentationOverlapping.seg.nrrd"
    named = read_label_map(layered, label_names=dict(enumerate(CHEST_NAMES, start=1)))
    np.testing.assert_array_equal(named.array, plain.array)  # by name: the sphere is left out
    numbered = read_label_map(layered)  # LabelValues repeat across layers: segment numbers
    raw4d = slicerio.read_segmentation(str(layered))
    sphere = slicerio.segment_mask(raw4d, raw4d["segments"][7])
    assert numbered.meta["overlap_voxels"] == int(np.count_nonzero(sphere & (plain.array > 0)))
    np.testing.assert_array_equal(numbered.array, np.where(sphere, 8, plain.array))


def test_layered_cropped_seg_nrrd_lands_on_the_source_grid(
    synth_dir: Callable[..., Path], tmp_path: Path
) -> None:
    _, _, label = _ct_case(synth_dir)
    organ, lesion = label.array >= 1, label.array == 2  # drawn overlapping, as in Slicer
    path = write_slicer_seg(
        label.affine, {"lesion": lesion, "organ": organ}, tmp_path / "a.seg.nrrd"
    )
    head = path.read_bytes()[:4000]
    assert b"kinds: list domain domain domain" in head and b"Segment1_Layer:=1" in head
    seg = read_label_map(path, label_names={1: "organ", 2: "lesion"})
    assert seg.shape != label.shape  # cropped to the segments' extent
    placed = onto_grid(seg, label.affine, label.shape)
    np.testing.assert_array_equal(placed.array, label.array)  # lesion wins over organ
    assert seg.meta["overlap_voxels"] == int(lesion.sum())


def test_dicom_seg_from_medseg_and_from_another_producer(
    synth_dir: Callable[..., Path], tmp_path: Path
) -> None:
    series, image, label = _ct_case(synth_dir)
    mine = write_dicom_seg(
        label, image.meta["files"], tmp_path / "m.seg.dcm", label_names={1: "organ", 2: "lesion"}
    ).path
    read = read_label_map(mine)  # highdicom stacks the frames its own way (here z reversed)
    np.testing.assert_array_equal(onto_grid(read, image.affine, image.shape).array, label.array)
    # another producer: segments in another order, empty frames left out
    other = write_highdicom_seg(
        series, label.array, {"lesion": 2, "organ": 1}, tmp_path / "o.dcm", omit_empty_frames=True
    )
    by_number = read_label_map(other)  # no names known: lesion is segment 1
    by_name = read_label_map(other, label_names={1: "Organ", 2: "LESION "})
    assert by_name.shape[2] < image.shape[2]  # only the slices with segments
    placed = onto_grid(by_name, image.affine, image.shape)
    np.testing.assert_array_equal(placed.array, label.array)
    swapped = onto_grid(by_number, image.affine, image.shape).array
    np.testing.assert_array_equal(swapped, np.choose(label.array, [0, 2, 1]))


def test_a_non_seg_dicom_file_is_a_clear_error(synth_dir: Callable[..., Path]) -> None:
    series, _, _ = _ct_case(synth_dir)
    with pytest.raises(DataError, match="must be Segmentation objects"):
        read_label_map(sorted(series.glob("*.dcm"))[0])


def test_grids_are_moved_never_resampled() -> None:
    rng = np.random.default_rng(0)
    array = rng.integers(0, 3, (6, 5, 4)).astype(np.uint8)
    affine = np.diag([2.0, 1.5, 3.0, 1.0])
    affine[:3, 3] = [10, -4, 7]
    ref = Volume(array, affine)
    flipped = Volume(  # x reversed and x/z swapped: the same world grid
        np.ascontiguousarray(array[::-1].transpose(2, 1, 0)),
        affine @ np.array([[0, 0, -1, 5], [0, 1, 0, 0], [1, 0, 0, 0], [0, 0, 0, 1]], float),
    )
    moved, same = common_grid(flipped, ref)
    assert same is ref
    np.testing.assert_array_equal(moved.array, array)
    np.testing.assert_allclose(moved.affine, affine)
    shifted = Volume(array, affine + np.array([[0, 0, 0, 0.5]] + [[0] * 4] * 3))  # 1/4 voxel
    with pytest.raises(GeometryError, match="fraction of a voxel"):
        common_grid(shifted, ref)
    with pytest.raises(GeometryError, match="voxel spacing"):
        common_grid(Volume(array, np.diag([1.0, 1.5, 3.0, 1.0])), ref)
    with pytest.raises(GeometryError, match="shape"):  # plain maps keep their extent
        common_grid(Volume(array[:, :, :3], affine), ref)


def test_partial_extent_grows_the_common_grid() -> None:
    affine = np.eye(4)
    ref = Volume(np.ones((4, 4, 2), np.uint8), affine, {"partial_extent": True})
    pred_affine = affine.copy()
    pred_affine[2, 3] = -1.0  # one slice below the reference's first
    pred = Volume(np.full((4, 4, 4), 2, np.uint8), pred_affine)
    a, b = common_grid(pred, ref)
    assert a.shape == b.shape == (4, 4, 4) and np.allclose(a.affine, pred_affine)
    assert (b.array[:, :, 0] == 0).all() and (b.array[:, :, 1:3] == 1).all()
    assert (b.array[:, :, 3] == 0).all() and (a.array == 2).all()


def test_names_and_numbers_of_segments() -> None:
    segments = [Segment(1, "Liver", 7), Segment(2, "tumour", 9), Segment(3, "vessel", 9)]
    assert segment_label_values(segments, {1: "liver", 2: "tumour"}) == {1: 1, 2: 2}
    assert segment_label_values(segments[:2]) == {1: 7, 2: 9}  # the tool's own values
    assert segment_label_values(segments) == {1: 1, 2: 2, 3: 3}  # values repeat: numbers
    assert segment_label_values(segments, {1: "kidney"}) == {1: 1, 2: 2, 3: 3}


def test_label_map_files_pair_names_and_prefer_nifti(tmp_path: Path) -> None:
    for name in ["a.nii.gz", "a.seg.dcm", "b.seg.nrrd", "c.mha", "d_0000.nii.gz", "x.json"]:
        (tmp_path / name).write_bytes(b"")
    assert label_map_id("case_001.seg.nrrd") == "case_001" and label_map_id("r.json") is None
    files = {k: v.name for k, v in label_map_files(tmp_path).items()}
    assert files == {
        "a": "a.nii.gz",
        "b": "b.seg.nrrd",
        "c": "c.mha",
        "d_0000": "d_0000.nii.gz",
    }


def test_mha_and_plain_nrrd_label_maps(tmp_path: Path) -> None:
    from medseg.io.read import write_volume

    volume = Volume(np.arange(24, dtype=np.uint8).reshape(2, 3, 4) % 3, np.diag([1, 2, 3, 1.0]))
    for suffix in (".mha", ".nrrd"):
        back = read_label_map(write_volume(volume, tmp_path / f"v{suffix}"))
        np.testing.assert_array_equal(back.array, volume.array)
        np.testing.assert_allclose(back.affine, volume.affine)
    write_nifti(volume, tmp_path / "v.nii.gz")
    assert read_label_map(tmp_path / "v.nii.gz").shape == volume.shape


def test_seg_of_unevenly_spaced_slices_is_refused_clearly(
    synth_dir: Callable[..., Path], tmp_path: Path
) -> None:
    import pydicom

    series, _, label = _ct_case(synth_dir)
    seg = write_highdicom_seg(series, label.array, {"organ": 1}, tmp_path / "u.dcm",
                              omit_empty_frames=False)  # fmt: skip
    ds = pydicom.dcmread(seg)
    for index, group in enumerate(ds.PerFrameFunctionalGroupsSequence):
        if index >= ds.NumberOfFrames // 2:  # the upper half moved by 1 mm: uneven steps
            position = group.PlanePositionSequence[0].ImagePositionPatient
            position[2] = float(position[2]) + 1.0
    ds.save_as(seg)
    with pytest.raises(DataError, match="regular 3D grid"):
        read_label_map(seg)

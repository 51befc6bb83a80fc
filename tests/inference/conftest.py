"""Fixtures for prediction tests.

Geometry tests use an *oracle* network on *label-encoded* scans: every synthetic scan is rewritten
so that its intensity is ``100 x label``, preprocessing leaves intensities alone (scheme ``none``)
and the oracle's logits are ``-(x - 100 k)^2``. Whatever the model, a wrong orientation, spacing
or inversion shows up as a misplaced label map.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from medseg.config.run import plan_run
from medseg.inference.predictor import Predictor
from medseg.io.geometry import ras_to_lps_affine
from medseg.io.nifti import read_nifti, write_nifti
from medseg.manifest.build import build_manifest
from medseg.manifest.schema import save_manifest
from medseg.synth.dicom_common import StudyInfo
from medseg.synth.dicom_writers import write_ct_series, write_oct_dicom
from medseg.synth.truth import Truth

REPO = Path(__file__).resolve().parents[2]


class Oracle(nn.Module):
    """Logits ``-(x - 100 k)^2 / 1000`` for classes k: recovers a label-encoded image exactly."""

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.register_buffer("centres", 100.0 * torch.arange(num_classes, dtype=torch.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = (1, -1) + (1,) * (x.dim() - 2)
        return -((x[:, :1] - self.centres.view(shape)) ** 2) / 1000.0


def _study(truth_case: object, patient: str) -> StudyInfo:
    return StudyInfo(
        patient_id=patient,
        patient_name="TEST^ORACLE",
        birth_date="19700101",
        sex="O",
        study_uid=f"1.2.3.{abs(hash(patient)) % 10**8}",
        study_date=truth_case.study_date,
    )  # type: ignore[attr-defined]


@pytest.fixture(scope="session")
def encoded(
    synth_dir: Callable[..., Path], tmp_path_factory: pytest.TempPathFactory
) -> Callable[[str], Path]:
    """``encoded(kind)``: a copy of the synthetic cohort whose images are ``100 x label``."""
    cache: dict[str, Path] = {}

    def make(kind: str) -> Path:
        if kind in cache:
            return cache[kind]
        src = synth_dir(kind, "nifti", patients=2)
        out = tmp_path_factory.mktemp(f"encoded_{kind}")
        shutil.copytree(src / "labels", out / "labels")
        shutil.copy(src / "truth.json", out / "truth.json")
        truth = Truth.load(src / "truth.json")
        for case in truth.cases:
            label = read_nifti(src / case.label)
            image = label.array.astype(np.int16) * 100
            lps = ras_to_lps_affine(label.affine)
            folder = out / "images" / case.case_id
            if kind == "ct":
                write_ct_series(image, lps, _study(case, case.case_id.split("_")[0]), folder)
            else:
                folder.mkdir(parents=True)
                write_oct_dicom(
                    image.astype(np.uint8),
                    lps,
                    _study(case, case.case_id.split("_")[0]),
                    folder / "oct.dcm",
                    laterality=case.laterality,
                )  # type: ignore[arg-type]
            write_nifti(
                label.with_array(image.astype(np.float32)), out / "nifti" / f"{case.case_id}.nii.gz"
            )
        manifest = out / "manifest.json"
        save_manifest(
            build_manifest(out / "images", manifest, labels_dir=out / "labels", n_folds=2).manifest,
            manifest,
        )
        cache[kind] = out
        return out

    return make


@pytest.fixture(scope="session")
def oracle_predictor(
    encoded: Callable[[str], Path], tmp_path_factory: pytest.TempPathFactory
) -> Callable[..., Predictor]:
    """``oracle_predictor(kind, *overrides)``: a Predictor planned on the encoded cohort."""

    def make(kind: str, *overrides: str) -> Predictor:
        root = encoded(kind)
        workflow = tmp_path_factory.mktemp("wf") / "wf.yaml"
        shutil.copy(REPO / "workflows" / "smoke.yaml", workflow)
        dims = ["task.dims=3d", "train.patch_size=[32, 32, 16]"] if kind == "ct" else []
        planned = plan_run(
            workflow,
            overrides=[
                f"manifest={root / 'manifest.json'}",
                "preprocess.intensity.scheme=none",
                *dims,
                *overrides,
            ],
            run_dir=tmp_path_factory.mktemp("run"),
        )
        return Predictor(
            planned.resolved,
            [Oracle(planned.resolved.num_classes)],
            device=torch.device("cpu"),
            checkpoints=[],
        )

    return make


@pytest.fixture(scope="session")
def trained_run(synth_dir: Callable[..., Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real (tiny, briefly trained) run folder for CLI tests; quality is irrelevant."""
    from medseg.training.loop import train

    root = synth_dir("oct", "dicom", patients=3)
    manifest = tmp_path_factory.mktemp("m") / "oct.json"
    save_manifest(
        build_manifest(root / "images", manifest, labels_dir=root / "labels", n_folds=2).manifest,
        manifest,
    )
    workflow = tmp_path_factory.mktemp("wf") / "smoke.yaml"
    shutil.copy(REPO / "workflows" / "smoke.yaml", workflow)
    run = tmp_path_factory.mktemp("trained")
    planned = plan_run(
        workflow,
        overrides=[f"manifest={manifest}", "train.epochs=1", "train.iterations_per_epoch=2"],
        run_dir=run,
    )
    train(planned.resolved, planned.manifest, planned.run_dir)
    return run


class OracleDetector(nn.Module):
    """A stand-in Mask R-CNN in eval mode: one detection per connected component of the voxels
    whose first channel is within 25 of ``value``, for each ``{value: class_id}``.

    Boxes are tight (StandardMode), masks the component sampled at the centres of an ``M^D`` RoI
    grid, scores ``0.5 + 0.4 * min(1, voxels / 100)`` (bigger lesions score higher, for FROC).
    """

    def __init__(self, classes: dict[float, int], mask_size: int = 14) -> None:
        super().__init__()
        self.classes = dict(classes)
        self.mask_size = mask_size

    def forward(self, images: torch.Tensor) -> list[dict[str, torch.Tensor]]:
        return [self._detect(image[0].detach().cpu().numpy()) for image in images]

    def _detect(self, x: np.ndarray) -> dict[str, torch.Tensor]:
        from scipy import ndimage

        boxes, labels, scores, masks = [], [], [], []
        full = np.ones((3,) * x.ndim, dtype=bool)
        for value, class_id in self.classes.items():
            components, _ = ndimage.label(np.abs(x - value) < 25, structure=full)
            for index, bounds in enumerate(ndimage.find_objects(components), start=1):
                local = components[bounds] == index
                cells = [
                    np.minimum(((np.arange(self.mask_size) + 0.5) * n / self.mask_size), n - 1)
                    for n in local.shape
                ]
                masks.append(local[np.ix_(*[c.astype(int) for c in cells])].astype(np.float32))
                boxes.append([s.start for s in bounds] + [s.stop for s in bounds])
                labels.append(class_id)
                scores.append(0.5 + 0.4 * min(1.0, local.sum() / 100))
        size = (self.mask_size,) * x.ndim
        return {
            "boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 2 * x.ndim),
            "labels": torch.tensor(labels, dtype=torch.long),
            "scores": torch.tensor(scores, dtype=torch.float32),
            "masks": torch.from_numpy(np.stack(masks)) if masks else torch.zeros((0, *size)),
        }


@pytest.fixture(scope="session")
def oracle_instance_predictor(
    encoded: Callable[[str], Path], tmp_path_factory: pytest.TempPathFactory
) -> Predictor:
    """A 3D Mask R-CNN Predictor on the encoded CT cohort whose network is :class:`OracleDetector`
    (lesion label 2 = intensity 200 -> class 1); 32^3 windows, so lesions cross window borders."""
    root = encoded("ct")
    workflow = tmp_path_factory.mktemp("wf") / "wf.yaml"
    shutil.copy(REPO / "workflows" / "smoke_maskrcnn.yaml", workflow)
    planned = plan_run(
        workflow,
        overrides=[
            f"manifest={root / 'manifest.json'}",
            "preprocess.intensity.scheme=none",
            "task.dims=3d",
            "train.patch_size=[32, 32, 32]",
            "infer.overlap=0.5",
        ],
        run_dir=tmp_path_factory.mktemp("run"),
    )
    return Predictor(
        planned.resolved, [OracleDetector({200.0: 1})], device=torch.device("cpu"), checkpoints=[]
    )


@pytest.fixture
def oracle_2d(tmp_path_factory: pytest.TempPathFactory) -> Callable[[Path], tuple[Predictor, Path]]:
    """``oracle_2d(root)``: (oracle Predictor, manifest) planned on a 2D data set of
    ``tests.data2d`` (images and labels folders) at its native spacing, intensities untouched."""

    def make(root: Path) -> tuple[Predictor, Path]:
        manifest = root / "manifest.json"
        built = build_manifest(root / "images", manifest, labels_dir=root / "labels", n_folds=2)
        save_manifest(built.manifest, manifest)
        workflow = tmp_path_factory.mktemp("wf") / "wf.yaml"
        shutil.copy(REPO / "workflows" / "smoke.yaml", workflow)
        planned = plan_run(
            workflow,
            overrides=[f"manifest={manifest}", "preprocess.intensity.scheme=none"],
            run_dir=tmp_path_factory.mktemp("run"),
        )
        oracle = Oracle(planned.resolved.num_classes)
        return Predictor(
            planned.resolved, [oracle], device=torch.device("cpu"), checkpoints=[]
        ), manifest

    return make

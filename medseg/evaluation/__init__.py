"""Evaluation of segmentations: voxel, surface and lesion metrics, per case and per cohort.

numpy/scipy only: importing this package never imports torch or MONAI. Distances are in mm and
volumes in mm³, computed from the voxel spacing. Empty-mask rules are in
:mod:`medseg.evaluation.metrics` and :mod:`medseg.evaluation.lesions`.
"""

from medseg.evaluation.evaluate import (
    CaseMetrics,
    EvaluationOptions,
    LesionEvaluation,
    PredictedInstances,
    evaluate_arrays,
    evaluate_case,
)
from medseg.evaluation.froc import FP_RATES, DetectionCurve, Froc, compute_froc
from medseg.evaluation.lesions import (
    LesionMatch,
    LesionScores,
    label_lesions,
    lesion_scores,
    match_lesions,
)
from medseg.evaluation.metrics import (
    ClassMetrics,
    SurfaceDistances,
    assd,
    compute_class_metrics,
    dice,
    hausdorff_distance,
    hd95,
    iou,
    nsd,
    surface_distances,
)

__all__ = [
    "FP_RATES",
    "CaseMetrics",
    "ClassMetrics",
    "DetectionCurve",
    "EvaluationOptions",
    "Froc",
    "LesionEvaluation",
    "LesionMatch",
    "LesionScores",
    "PredictedInstances",
    "SurfaceDistances",
    "assd",
    "compute_class_metrics",
    "compute_froc",
    "dice",
    "evaluate_arrays",
    "evaluate_case",
    "hausdorff_distance",
    "hd95",
    "iou",
    "label_lesions",
    "lesion_scores",
    "match_lesions",
    "nsd",
    "surface_distances",
]

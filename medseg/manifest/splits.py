"""Patient-level cross-validation folds and test split (deterministic)."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence

import numpy as np

from medseg.errors import ConfigError
from medseg.manifest.schema import Case


def assign_splits(
    cases: Sequence[Case], *, n_folds: int, seed: int = 0, test_fraction: float = 0.0
) -> list[Case]:
    """Return copies of ``cases`` with ``split`` and ``fold`` set, grouping by patient.

    Patients (not series) are shuffled with ``seed``; the first ``ceil(test_fraction x patients)``
    labelled patients form the test split; the others are assigned greedily to the fold with the
    fewest cases so folds stay balanced. Unlabelled cases go to the test split (inference only).
    A patient is never in two folds, nor in both splits. Without any labelled case (an
    inference-only manifest) every case goes to the test split and no fold is needed.

    Raises:
        ConfigError: some labelled patients, but fewer labelled training patients than folds.
    """
    if not 0.0 <= test_fraction < 1.0:
        raise ConfigError(f"--test-fraction must be in [0, 1), got {test_fraction}")
    by_patient: dict[str, list[Case]] = defaultdict(list)
    for case in cases:
        by_patient[case.patient_id].append(case)
    labelled = sorted(p for p, cs in by_patient.items() if any(c.label for c in cs))
    if not labelled:
        return [c.model_copy(update={"split": "test", "fold": None}) for c in cases]
    order = list(np.random.default_rng(seed).permutation(len(labelled)))
    shuffled = [labelled[i] for i in order]
    n_test = math.ceil(test_fraction * len(shuffled)) if test_fraction > 0 else 0
    train_patients = shuffled[n_test:]
    if len(train_patients) < n_folds:
        raise ConfigError(
            f"{n_folds} folds need at least {n_folds} labelled training patients, "
            f"found {len(train_patients)}",
            hint="lower --folds or --test-fraction, or add labelled cases",
        )
    fold_of: dict[str, int] = {}
    load = [0] * n_folds
    for patient in train_patients:
        fold = int(np.argmin(load))
        fold_of[patient] = fold
        load[fold] += sum(1 for c in by_patient[patient] if c.label)
    out = []
    for case in cases:
        if case.label and case.patient_id in fold_of:
            out.append(case.model_copy(update={"split": "train", "fold": fold_of[case.patient_id]}))
        else:
            out.append(case.model_copy(update={"split": "test", "fold": None}))
    return out

"""Folds are split by patient: no patient in two folds, deterministic, balanced."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from medseg.errors import ConfigError
from medseg.manifest.schema import Case
from medseg.manifest.splits import assign_splits


def _cases(patients: list[int]) -> list[Case]:
    return [
        Case(
            case_id=f"c{i}",
            patient_id=f"p{p}",
            images={"image": f"c{i}.nii.gz"},
            label=f"l{i}.nii.gz",
        )
        for i, p in enumerate(patients)
    ]


@settings(max_examples=60, deadline=None)
@given(
    patients=st.lists(st.integers(0, 12), min_size=1, max_size=40),
    k=st.integers(1, 6),
    seed=st.integers(0, 2**16),
    test_fraction=st.sampled_from([0.0, 0.2]),
)
def test_no_patient_in_two_folds(
    patients: list[int], k: int, seed: int, test_fraction: float
) -> None:
    cases = _cases(patients)
    n_train = len(set(patients)) - (
        math.ceil(test_fraction * len(set(patients))) if test_fraction else 0
    )
    if n_train < k:
        with pytest.raises(ConfigError):
            assign_splits(cases, n_folds=k, seed=seed, test_fraction=test_fraction)
        return
    out = assign_splits(cases, n_folds=k, seed=seed, test_fraction=test_fraction)
    homes: dict[str, set[tuple[str, int | None]]] = {}
    for case in out:
        homes.setdefault(case.patient_id, set()).add((case.split, case.fold))
    assert all(len(h) == 1 for h in homes.values())
    train_folds = {c.fold for c in out if c.split == "train"}
    assert train_folds == set(range(k))
    assert out == assign_splits(cases, n_folds=k, seed=seed, test_fraction=test_fraction)


def test_balanced_and_unlabelled_go_to_test() -> None:
    cases = [
        *_cases(list(range(10))),
        Case(case_id="u", patient_id="pu", images={"image": "u.nii.gz"}),
    ]
    out = assign_splits(cases, n_folds=5, seed=1)
    counts = [sum(c.fold == k for c in out) for k in range(5)]
    assert counts == [2, 2, 2, 2, 2]
    assert out[-1].split == "test" and out[-1].fold is None


def test_too_few_patients() -> None:
    with pytest.raises(ConfigError, match="5 folds need at least 5"):
        assign_splits(_cases([0, 1, 2]), n_folds=5)


def test_without_labels_every_case_is_for_inference_only() -> None:
    cases = [Case(case_id=f"u{i}", patient_id=f"p{i % 2}", images={"image": "x"}) for i in range(3)]
    out = assign_splits(cases, n_folds=5)
    assert [(c.split, c.fold) for c in out] == [("test", None)] * 3
    mixed = [*cases, *_cases([0])]  # one labelled patient still needs enough for the folds
    with pytest.raises(ConfigError, match="5 folds need at least 5"):
        assign_splits(mixed, n_folds=5)

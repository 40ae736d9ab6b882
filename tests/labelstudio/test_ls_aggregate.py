"""The annotator policy (ground truth, majority, ties) and Krippendorff's alpha."""

from __future__ import annotations

import math

import numpy as np
import pytest

from textcat_kit.errors import ConfigError
from textcat_kit.labelstudio.aggregate import agreement_report, check_tie_policy, decide
from textcat_kit.labelstudio.agreement import (
    binary_counts,
    coincidence_matrix,
    nominal_alpha,
    observed_agreement,
)
from textcat_kit.labelstudio.exports import Annotation

LABELS = ("a", "b", "c")


def ann(
    annotation_id: int, *choices: str, cancelled: bool = False, ground_truth: bool = False
) -> Annotation:
    return Annotation(
        annotation_id, f"user{annotation_id}", tuple(choices), cancelled, ground_truth
    )


def counts_from_ratings(ratings: list[list[int | None]], n_categories: int) -> np.ndarray:
    """Units x categories counts from a coders x units table with None for missing."""
    n_units = len(ratings[0])
    counts = np.zeros((n_units, n_categories), dtype=np.int64)
    for coder in ratings:
        for unit, value in enumerate(coder):
            if value is not None:
                counts[unit, value - 1] += 1
    return counts


def test_alpha_matches_krippendorffs_worked_example() -> None:
    """Krippendorff (2011), 'Computing Krippendorff's Alpha-Reliability', nominal: 0.743."""
    n = None
    ratings = [
        [1, 2, 3, 3, 2, 1, 4, 1, 2, n, n, n],
        [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, n, 3],
        [n, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, n],
        [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, n],
    ]
    counts = counts_from_ratings(ratings, 5)
    assert coincidence_matrix(counts).sum() == pytest.approx(40.0)  # pairable values
    assert nominal_alpha(counts) == pytest.approx(0.743, abs=5e-4)


def test_alpha_edge_cases() -> None:
    perfect = np.array([[2, 0], [0, 2], [3, 0]])
    assert nominal_alpha(perfect) == pytest.approx(1.0)
    assert observed_agreement(perfect) == pytest.approx(1.0)
    assert math.isnan(nominal_alpha(np.array([[2, 0], [3, 0]])))  # one category only
    assert math.isnan(nominal_alpha(np.array([[1, 0], [0, 1]])))  # nobody overlaps
    swapped = np.array([[1, 1], [1, 1]])
    assert nominal_alpha(swapped) < 0
    assert observed_agreement(swapped) == 0.0
    assert binary_counts(np.array([1, 0]), np.array([2, 3])).tolist() == [[1, 1], [3, 0]]


def test_unlabelled_and_skipped_reasons() -> None:
    assert decide([], labels=LABELS, exclusive=True).status == "unlabelled"
    cancelled = decide([ann(1, cancelled=True)], labels=LABELS, exclusive=True)
    assert (cancelled.status, cancelled.skip_reason) == ("skipped", "cancelled")
    empty = decide([ann(1), ann(2, cancelled=True)], labels=LABELS, exclusive=True)
    assert (empty.status, empty.skip_reason) == ("skipped", "empty_result")


def test_excluded_annotations_do_not_vote() -> None:
    decision = decide(
        [ann(1, "a"), ann(2, "b", cancelled=True), ann(3)], labels=LABELS, exclusive=True
    )
    assert (decision.labels, decision.resolution, decision.n_voters) == (("a",), "single", 1)
    assert decision.conflict is False


def test_ground_truth_wins_over_a_majority() -> None:
    decision = decide(
        [ann(1, "a"), ann(2, "a"), ann(3, "b", ground_truth=True)], labels=LABELS, exclusive=True
    )
    assert decision.labels == ("b",)
    assert decision.resolution == "ground_truth"
    assert decision.conflict is True


def test_exclusive_majority_and_unanimity() -> None:
    majority = decide([ann(1, "a"), ann(2, "b"), ann(3, "b")], labels=LABELS, exclusive=True)
    assert (majority.labels, majority.resolution) == (("b",), "majority")
    assert majority.votes == {"a": 1, "b": 2}
    unanimous = decide([ann(1, "c"), ann(2, "c")], labels=LABELS, exclusive=True)
    assert (unanimous.labels, unanimous.resolution, unanimous.conflict) == (
        ("c",),
        "unanimous",
        False,
    )


def test_exclusive_tie_policies() -> None:
    # The earliest annotation is 2 (ids, not list order, decide), and "c" is not tied.
    tied = [ann(5, "a"), ann(2, "b"), ann(9, "c"), ann(7, "a"), ann(3, "b")]
    dropped = decide(tied, labels=LABELS, exclusive=True, ties="drop")
    assert (dropped.status, dropped.resolution) == ("dropped", "tie_dropped")
    first = decide(tied, labels=LABELS, exclusive=True, ties="first")
    assert (first.labels, first.resolution) == (("b",), "tie_first")
    soft = decide(tied, labels=LABELS, exclusive=True, ties="soft")
    assert soft.labels == ()
    assert soft.soft == pytest.approx({"a": 0.4, "b": 0.4, "c": 0.2})


def test_multilabel_majority_per_label() -> None:
    decision = decide(
        [ann(1, "a", "b"), ann(2, "a"), ann(3, "a", "c")], labels=LABELS, exclusive=False
    )
    assert decision.labels == ("a",)
    assert decision.resolution == "majority"
    assert decision.votes == {"a": 3, "b": 1, "c": 1}


def test_multilabel_ties() -> None:
    annotations = [ann(1, "a", "b"), ann(2, "a", "c")]
    dropped = decide(annotations, labels=LABELS, exclusive=False, ties="drop")
    assert dropped.status == "dropped"
    first = decide(annotations, labels=LABELS, exclusive=False, ties="first")
    assert first.labels == ("a", "b")
    soft = decide(annotations, labels=LABELS, exclusive=False, ties="soft")
    assert soft.labels == ("a",)
    assert soft.soft == {"b": 0.5, "c": 0.5}


def test_multilabel_no_label_with_a_majority_is_a_tie() -> None:
    annotations = [ann(1, "a"), ann(2, "b"), ann(3, "c")]
    assert decide(annotations, labels=LABELS, exclusive=False).status == "dropped"
    first = decide(annotations, labels=LABELS, exclusive=False, ties="first")
    assert first.labels == ("a",)


def test_unknown_tie_policy() -> None:
    assert check_tie_policy("soft") == "soft"
    with pytest.raises(ConfigError, match=r"\[E130\].*'vote'.*drop, first, soft"):
        check_tie_policy("vote")


def test_agreement_report_exclusive_and_multilabel() -> None:
    exclusive = agreement_report(
        [[ann(1, "a"), ann(2, "a")], [ann(3, "b"), ann(4, "b")], [ann(5, "a")]],
        labels=LABELS,
        exclusive=True,
    )
    assert exclusive["tasks_with_2plus_annotators"] == 2
    assert exclusive["alpha"] == pytest.approx(1.0)
    assert exclusive["alpha_per_label"]["c"] is None  # nobody chose c: undefined
    multilabel = agreement_report(
        [[ann(1, "a", "b"), ann(2, "a")], [ann(3, "b"), ann(4, "c")], [ann(5, "c"), ann(6, "c")]],
        labels=LABELS,
        exclusive=False,
    )
    assert multilabel["alpha_per_label"]["a"] == pytest.approx(1.0)
    assert multilabel["alpha_per_label"]["b"] < 0
    assert -1.0 <= multilabel["alpha"] <= 1.0

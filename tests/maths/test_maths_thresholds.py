"""Thresholds: exactness against brute force, constraints, and generalisation of tuning."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.special import expit

from textcat_kit.maths.metrics import decide, prf_per_label
from textcat_kit.maths.thresholds import (
    TunedThresholds,
    abstain_threshold,
    best_global_threshold,
    best_threshold,
    coverage_accuracy_curve,
    tune_thresholds,
)

# --- brute force references ----------------------------------------------------------------


def _counts(scores: np.ndarray, positive: np.ndarray, threshold: float) -> tuple[int, int]:
    decided = scores >= threshold
    return int(np.sum(decided & positive)), int(np.sum(decided & ~positive))


def brute_force(scores, y, objective, beta, target):
    """Best value (and feasibility) over every possible cut, by direct enumeration."""
    positive = y >= 0.5
    n_pos = int(positive.sum())
    rows = []
    for threshold in [*np.unique(scores), np.inf]:
        tp, fp = _counts(scores, positive, threshold)
        precision = tp / (tp + fp) if tp + fp else 0.0
        recall = tp / n_pos if n_pos else 0.0
        b2 = beta * beta
        denominator = (1 + b2) * tp + b2 * (n_pos - tp) + fp
        fbeta = (1 + b2) * tp / denominator if denominator else 0.0
        rows.append((precision, recall, fbeta, tp + fp))
    if objective in ("f1", "fbeta"):
        return max(r[2] for r in rows), True
    if objective == "recall_at_precision":
        feasible = [r[1] for r in rows if r[3] > 0 and r[0] >= target]
        return (max(feasible), True) if feasible else (max(r[0] for r in rows), False)
    feasible = [r[0] for r in rows if r[1] >= target]
    return (max(feasible), True) if feasible else (max(r[1] for r in rows), False)


score_values = st.one_of(
    st.sampled_from([0.0, 0.1, 0.25, 0.5, 0.75, 1.0]), st.floats(min_value=0.0, max_value=1.0)
)


@settings(max_examples=150, deadline=None)
@given(
    data=st.lists(st.tuples(score_values, st.booleans()), min_size=1, max_size=40),
    objective=st.sampled_from(["f1", "fbeta", "recall_at_precision", "precision_at_recall"]),
    beta=st.sampled_from([0.5, 1.0, 2.0]),
    target=st.sampled_from([0.0, 0.3, 0.5, 2 / 3, 0.8, 1.0]),
)
def test_best_threshold_matches_brute_force(data, objective, beta, target):
    scores = np.array([s for s, _ in data])
    y = np.array([float(label) for _, label in data])
    result = best_threshold(scores, y, objective=objective, beta=beta, target=target)
    expected_value, expected_feasible = brute_force(
        scores, y, objective, beta if objective == "fbeta" else 1.0, target
    )
    assert result.feasible == expected_feasible
    if expected_feasible:
        assert result.value == pytest.approx(expected_value)
    elif objective == "recall_at_precision":
        assert result.precision == pytest.approx(expected_value)  # best effort: top precision
    else:
        assert result.recall == pytest.approx(expected_value)  # best effort: top recall
    # The returned threshold reproduces the reported decisions with `score >= t`.
    tp, fp = _counts(scores, y >= 0.5, result.threshold)
    assert result.precision == pytest.approx(tp / (tp + fp) if tp + fp else 0.0)
    assert result.recall == pytest.approx(tp / result.n_positives if result.n_positives else 0.0)


def test_threshold_sits_at_the_midpoint_between_distinct_scores():
    scores = np.array([0.9, 0.8, 0.4, 0.4, 0.1])
    y = np.array([1, 1, 0, 0, 0])
    result = best_threshold(scores, y)
    assert result.threshold == pytest.approx(0.6)
    assert result.value == 1.0


@pytest.mark.parametrize("seed", range(5))
def test_constrained_objectives_respect_their_target_when_feasible(seed):
    rng = np.random.default_rng(seed)
    y = (rng.random(400) < 0.3).astype(float)
    scores = np.clip(0.3 * y + 0.7 * rng.random(400), 0, 1)
    at_precision = best_threshold(scores, y, "recall_at_precision", target=0.8)
    assert at_precision.feasible and at_precision.precision >= 0.8
    at_recall = best_threshold(scores, y, "precision_at_recall", target=0.9)
    assert at_recall.feasible and at_recall.recall >= 0.9
    decided = decide(scores[:, None], at_precision.threshold)[:, 0].astype(bool)
    assert y[decided].mean() >= 0.8


def test_unreachable_precision_is_reported_as_infeasible_with_best_effort():
    scores = np.array([0.9, 0.8, 0.7, 0.6])
    y = np.array([0, 1, 0, 1])
    result = best_threshold(scores, y, "recall_at_precision", target=0.9)
    assert not result.feasible
    assert result.precision == pytest.approx(0.5)


def test_constrained_objectives_need_a_target():
    with pytest.raises(ValueError, match=r"\[E154\] 'target'.*recall_at_precision"):
        best_threshold(np.array([0.5]), np.array([1.0]), "recall_at_precision")
    with pytest.raises(ValueError, match=r"\[E013\].*threshold objective 'accuracy'"):
        best_threshold(np.array([0.5]), np.array([1.0]), "accuracy")  # type: ignore[arg-type]


# --- global threshold ----------------------------------------------------------------------


def _macro_f1(probs, gold, threshold):
    return prf_per_label(decide(probs, threshold), gold).macro_f


def test_best_global_threshold_maximises_macro_f1_over_its_grid_and_exactly():
    rng = np.random.default_rng(0)
    gold = (rng.random((300, 4)) < [0.4, 0.2, 0.1, 0.05]).astype(float)
    probs = np.clip(0.4 * gold + 0.6 * rng.random((300, 4)), 0, 1)
    grid = np.linspace(0.05, 0.95, 19)
    on_grid = best_global_threshold(probs, gold)
    assert on_grid in grid
    assert _macro_f1(probs, gold, on_grid) == pytest.approx(
        max(_macro_f1(probs, gold, t) for t in grid)
    )
    exact = best_global_threshold(probs, gold, grid="exact")
    every_cut = [*np.unique(probs), 1.5]
    assert _macro_f1(probs, gold, exact) == pytest.approx(
        max(_macro_f1(probs, gold, t) for t in every_cut)
    )


# --- tuning --------------------------------------------------------------------------------


def multilabel_with_rare_labels(seed: int, n_tune: int = 3000, n_test: int = 10000):
    """Three frequent labels and nine rare ones (~15 tuning positives) of equal difficulty.

    Scores are calibrated posteriors, so rare labels share their true best threshold and
    their per-label optimum on 15 positives is mostly noise.
    """
    rng = np.random.default_rng(seed)
    prevalence = np.array([0.2, 0.1, 0.05] + [0.005] * 9)
    prior = np.log(prevalence / (1 - prevalence))

    def sample(n_docs: int) -> tuple[np.ndarray, np.ndarray]:
        gold = rng.random((n_docs, prevalence.size)) < prevalence
        evidence = rng.normal(size=gold.shape) + 2.0 * gold
        return expit(prior + 2.0 * evidence - 2.0), gold.astype(float)

    return sample(n_tune), sample(n_test)


def test_tuned_thresholds_beat_naive_per_label_search_on_held_out_data():
    labels = [f"label_{j}" for j in range(12)]
    naive_scores, tuned_scores, global_scores = [], [], []
    for seed in range(10):
        (probs, gold), (test_probs, test_gold) = multilabel_with_rare_labels(seed, n_test=20000)
        naive = np.array([best_threshold(probs[:, j], gold[:, j]).threshold for j in range(12)])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a rare label may dip under min_positives
            tuned = tune_thresholds(probs, gold, labels, seed=seed)
        naive_scores.append(_macro_f1(test_probs, test_gold, naive))
        tuned_scores.append(_macro_f1(test_probs, test_gold, tuned.as_array(labels)))
        global_scores.append(_macro_f1(test_probs, test_gold, tuned.global_threshold))
    gains = np.array(tuned_scores) - np.array(naive_scores)
    # Measured: mean gain +0.012 macro-F1, 9 of 10 seeds better; the global threshold
    # alone is on par with the naive search here, and tuning beats it too (+0.010).
    assert gains.mean() > 0.005
    assert (gains > 0).sum() >= 7
    assert np.mean(tuned_scores) > np.mean(global_scores)


def test_rare_label_falls_back_to_the_global_threshold_and_warns_with_its_name():
    (probs, gold), _ = multilabel_with_rare_labels(0, n_test=1)
    gold[:, 5] = 0.0
    gold[:4, 5] = 1.0
    labels = [f"label_{j}" for j in range(11)] + ["grief"]
    labels[5] = "pride"
    with pytest.warns(UserWarning, match=r"\[W001\] Label 'pride' has 4 positive") as record:
        tuned = tune_thresholds(probs, gold, labels, min_positives=5)
    assert not any("'grief'" in str(w.message) for w in record)  # grief has >= 5 positives
    info = tuned.per_label["pride"]
    assert info.fallback is not None and info.n_positives == 4
    assert tuned.thresholds["pride"] == tuned.global_threshold
    assert np.isnan(info.raw) and info.weight == 0.0


def test_without_shrinkage_or_folds_tuning_is_the_exact_per_label_search():
    (probs, gold), _ = multilabel_with_rare_labels(1, n_test=1)
    labels = [str(j) for j in range(12)]
    tuned = tune_thresholds(probs, gold, labels, shrinkage=None, n_folds=1, min_positives=1)
    for j, label in enumerate(labels):
        assert tuned.thresholds[label] == best_threshold(probs[:, j], gold[:, j]).threshold


def test_shrinkage_pulls_each_label_towards_global_by_its_evidence():
    (probs, gold), _ = multilabel_with_rare_labels(2, n_test=1)
    labels = [str(j) for j in range(12)]
    tuned = tune_thresholds(probs, gold, labels, shrinkage=20.0, min_positives=5)
    for info in tuned.per_label.values():
        assert info.weight == pytest.approx(info.n_positives / (info.n_positives + 20.0))
        assert info.raw == pytest.approx(np.mean(info.fold_thresholds))
        low, high = sorted([info.raw, tuned.global_threshold])
        assert low - 1e-12 <= info.final <= high + 1e-12
    all_global = tune_thresholds(probs, gold, labels, shrinkage=float("inf"), min_positives=5)
    assert set(all_global.thresholds.values()) == {all_global.global_threshold}


def test_constrained_tuning_meets_the_target_per_label_without_shrinkage():
    (probs, gold), _ = multilabel_with_rare_labels(3, n_test=1)
    labels = [str(j) for j in range(12)]
    tuned = tune_thresholds(
        probs[:, :3],
        gold[:, :3],
        labels[:3],
        objective="recall_at_precision",
        target=0.7,
        shrinkage=None,
        n_folds=1,
    )
    prf = prf_per_label(decide(probs[:, :3], tuned.as_array(labels[:3])), gold[:, :3])
    for j, label in enumerate(labels[:3]):
        assert tuned.per_label[label].feasible == (prf.precision[j] >= 0.7)
        if tuned.per_label[label].feasible:
            assert prf.precision[j] >= 0.7


def test_tuned_thresholds_round_trip_through_json():
    (probs, gold), _ = multilabel_with_rare_labels(4, n_test=1)
    labels = [f"l{j}" for j in range(12)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tuned = tune_thresholds(probs, gold, labels, min_positives=16)
        everything_global = tune_thresholds(probs, gold, labels, shrinkage=float("inf"))
    for original in (tuned, everything_global):
        data = json.loads(json.dumps(original.to_dict(), allow_nan=False))
        restored = TunedThresholds.from_dict(data)
        assert restored.to_dict() == original.to_dict()
        np.testing.assert_array_equal(restored.as_array(labels), original.as_array(labels))
    assert everything_global.to_dict()["shrinkage_k"] == "inf"


def test_tuning_validates_its_settings():
    probs, gold = np.full((20, 2), 0.5), np.zeros((20, 2))
    gold[:10] = 1.0
    with pytest.raises(ValueError, match=r"\[E157\].*1 name\(s\).*2 column\(s\)"):
        tune_thresholds(probs, gold, ["only_one"])
    with pytest.raises(ValueError, match=r"\[E154\] 'n_folds'.*shrinkage='auto'"):
        tune_thresholds(probs, gold, ["a", "b"], n_folds=1)
    with pytest.raises(ValueError, match=r"\[E013\].*shrinkage 'big'"):
        tune_thresholds(probs, gold, ["a", "b"], shrinkage="big")  # type: ignore[arg-type]
    tuned = tune_thresholds(probs, gold, ["a", "b"], min_positives=2)
    with pytest.raises(ValueError, match=r"\[E154\] 'labels'.*'c'"):
        tuned.as_array(["a", "c"])


# --- abstention ----------------------------------------------------------------------------


def test_abstain_threshold_hand_computed():
    top_probs = np.array([0.95, 0.9, 0.8, 0.7, 0.6])
    correct = np.array([1, 1, 0, 1, 0])
    result = abstain_threshold(top_probs, correct, target_precision=0.75)
    # Keeping >= 0.7 gives 3 right of 4; keeping >= 0.6 would give 3 of 5.
    assert result.threshold == 0.7
    assert result.precision == pytest.approx(0.75)
    assert result.coverage == pytest.approx(0.8)
    assert result.feasible


@pytest.mark.parametrize("seed", range(10))
def test_abstain_threshold_is_the_smallest_meeting_the_target(seed):
    rng = np.random.default_rng(seed)
    top_probs = np.round(rng.uniform(0.3, 1.0, 200), 2)
    correct = (rng.random(200) < top_probs).astype(float)
    result = abstain_threshold(top_probs, correct, target_precision=0.85)
    meets = [t for t in np.unique(top_probs) if correct[top_probs >= t].mean() >= 0.85]
    assert result.feasible == bool(meets)
    if meets:
        assert result.threshold == min(meets)
        assert correct[top_probs >= result.threshold].mean() >= 0.85


def test_abstain_threshold_infeasible_keeps_the_most_accurate_set():
    result = abstain_threshold(np.array([0.9, 0.8, 0.7]), np.array([0, 1, 1]), 0.95)
    assert not result.feasible
    assert result.precision == pytest.approx(2 / 3) and result.threshold == 0.7


def test_coverage_accuracy_curve():
    top_probs = np.array([0.9, 0.9, 0.6, 0.3])
    correct = np.array([1, 0, 1, 0])
    coverage, acc, thresholds = coverage_accuracy_curve(top_probs, correct)
    np.testing.assert_allclose(coverage, [0.5, 0.75, 1.0])
    np.testing.assert_allclose(acc, [0.5, 2 / 3, 0.5])
    np.testing.assert_allclose(thresholds, [0.9, 0.6, 0.3])

"""Metrics: hand-computed values and agreement with scikit-learn."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.calibration import calibration_curve
from sklearn.metrics import brier_score_loss, precision_recall_fscore_support, roc_auc_score
from sklearn.metrics import log_loss as sk_log_loss

from textcat_kit.maths.metrics import (
    accuracy,
    brier_score,
    classwise_ece,
    decide,
    ece,
    log_loss,
    macro_auc,
    prf_per_label,
    reliability_curve,
    top_label_ece,
)


def random_exclusive(seed: int, n_docs: int = 200, n_labels: int = 4):
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(n_docs, n_labels)) * 2
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    gold_index = rng.integers(0, n_labels, n_docs)
    return probs, np.eye(n_labels)[gold_index], gold_index


def random_multilabel(seed: int, n_docs: int = 300, n_labels: int = 5):
    rng = np.random.default_rng(seed)
    gold = (rng.random((n_docs, n_labels)) < 0.3).astype(float)
    probs = np.clip(0.35 * gold + rng.random((n_docs, n_labels)) * 0.65, 0, 1)
    return probs, gold


# --- ECE -----------------------------------------------------------------------------------


def test_ece_uniform_hand_computed():
    confidence = np.array([0.1, 0.2, 0.6, 0.7, 0.95])
    correct = np.array([0, 1, 1, 0, 1])
    # Bin (0, .5]: mean conf .15, acc .5 -> gap .35 (2 docs); bin (.5, 1]: .75 vs 2/3 (3 docs)
    expected = 2 / 5 * 0.35 + 3 / 5 * abs(0.75 - 2 / 3)
    assert ece(confidence, correct, n_bins=2) == pytest.approx(expected)


def test_ece_quantile_differs_from_uniform_as_computed_by_hand():
    confidence = np.array([0.05, 0.1, 0.15, 0.2, 0.3, 0.9])
    correct = np.array([0, 0, 0, 1, 1, 1])
    # Quantile: median edge .175 -> {.05,.1,.15} (acc 0) and {.2,.3,.9} (acc 1), 3 docs each.
    quantile = 0.5 * abs(0.1 - 0.0) + 0.5 * abs((0.2 + 0.3 + 0.9) / 3 - 1.0)
    # Uniform: (0, .5] holds five docs (mean .16, acc .4), (.5, 1] holds .9 (acc 1).
    uniform = 5 / 6 * abs(0.16 - 0.4) + 1 / 6 * abs(0.9 - 1.0)
    assert ece(confidence, correct, n_bins=2, strategy="quantile") == pytest.approx(quantile)
    assert ece(confidence, correct, n_bins=2, strategy="uniform") == pytest.approx(uniform)


def test_bins_are_right_closed_and_cover_zero_and_one():
    curve = reliability_curve(np.array([0.0, 0.5, 0.5000001, 1.0]), np.ones(4), n_bins=2)
    # 0.0 and 0.5 share the first bin, 0.5000001 and 1.0 the second.
    np.testing.assert_array_equal(curve.bin_count, [2, 2])
    np.testing.assert_allclose(curve.bin_confidence, [0.25, 0.75000005])


def test_reliability_curve_drops_empty_bins():
    curve = reliability_curve(np.array([0.01, 0.02, 0.99]), np.array([0, 0, 1]), n_bins=10)
    np.testing.assert_array_equal(curve.bin_count, [2, 1])
    np.testing.assert_allclose(curve.bin_accuracy, [0.0, 1.0])


@pytest.mark.parametrize("strategy", ["uniform", "quantile"])
def test_reliability_curve_matches_sklearn_calibration_curve(strategy):
    rng = np.random.default_rng(3)
    confidence = rng.random(500) ** 2
    correct = (rng.random(500) < confidence).astype(float)
    curve = reliability_curve(confidence, correct, n_bins=8, strategy=strategy)
    prob_true, prob_pred = calibration_curve(correct, confidence, n_bins=8, strategy=strategy)
    np.testing.assert_allclose(curve.bin_accuracy, prob_true)
    np.testing.assert_allclose(curve.bin_confidence, prob_pred)


def test_ece_is_zero_when_accuracy_equals_confidence_in_every_bin():
    confidence = np.array([0.25] * 4 + [0.75] * 4)
    correct = np.array([1, 0, 0, 0, 1, 1, 1, 0])
    assert ece(confidence, correct, n_bins=4) == pytest.approx(0.0)


def test_top_label_ece_uses_argmax_and_its_gold():
    probs, gold, gold_index = random_exclusive(0)
    top = probs.max(axis=1)
    correct = probs.argmax(axis=1) == gold_index
    assert top_label_ece(probs, gold) == pytest.approx(ece(top, correct))


def test_top_label_ece_multilabel_counts_any_gold_label_as_correct():
    probs = np.array([[0.9, 0.8], [0.3, 0.6]])
    gold = np.array([[1.0, 1.0], [0.0, 0.0]])
    # Doc 0: top .9 correct; doc 1: top .6 wrong; ten bins keep them apart.
    assert top_label_ece(probs, gold, n_bins=10) == pytest.approx(0.5 * 0.1 + 0.5 * 0.6)


def test_classwise_ece_is_the_mean_of_per_label_ece():
    probs, gold = random_multilabel(1)
    per_label = [ece(probs[:, j], gold[:, j], strategy="quantile") for j in range(5)]
    assert classwise_ece(probs, gold) == pytest.approx(np.mean(per_label))


def test_soft_gold_counts_as_positive_from_one_half():
    probs = np.array([[0.8], [0.2]])
    assert classwise_ece(probs, np.array([[0.6], [0.4]]), n_bins=2) == pytest.approx(
        classwise_ece(probs, np.array([[1.0], [0.0]]), n_bins=2)
    )


# --- proper scores -------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_brier_matches_sklearn(seed):
    probs, gold, gold_index = random_exclusive(seed)
    expected = brier_score_loss(gold_index, probs, labels=range(4), scale_by_half=False)
    assert brier_score(probs, gold, exclusive=True) == pytest.approx(expected)
    ml_probs, ml_gold = random_multilabel(seed)
    per_label = [brier_score_loss(ml_gold[:, j], ml_probs[:, j]) for j in range(5)]
    assert brier_score(ml_probs, ml_gold, exclusive=False) == pytest.approx(np.mean(per_label))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_log_loss_matches_sklearn(seed):
    probs, gold, gold_index = random_exclusive(seed)
    expected = sk_log_loss(gold_index, probs, labels=range(4))
    assert log_loss(probs, gold, exclusive=True) == pytest.approx(expected)
    ml_probs, ml_gold = random_multilabel(seed)
    per_label = [sk_log_loss(ml_gold[:, j], ml_probs[:, j], labels=[0, 1]) for j in range(5)]
    assert log_loss(ml_probs, ml_gold, exclusive=False) == pytest.approx(np.mean(per_label))


def test_log_loss_is_finite_for_confident_mistakes():
    probs = np.array([[1.0, 0.0], [0.0, 1.0]])
    gold = np.array([[0.0, 1.0], [0.0, 1.0]])
    assert log_loss(probs, gold, exclusive=True) == pytest.approx(-np.log(1e-12) / 2)
    assert np.isfinite(log_loss(probs, gold, exclusive=False))


# --- decisions and PRF ---------------------------------------------------------------------


def test_prf_matches_sklearn_with_zero_division_zero():
    probs, gold = random_multilabel(4)
    decisions = decide(probs, np.array([0.5, 0.6, 0.7, 0.99, 1.01]))  # last label: none
    prf = prf_per_label(decisions, gold)
    p, r, f, support = precision_recall_fscore_support(gold, decisions, zero_division=0)
    np.testing.assert_allclose(prf.precision, p)
    np.testing.assert_allclose(prf.recall, r)
    np.testing.assert_allclose(prf.f1, f)
    np.testing.assert_array_equal(prf.support, support)
    assert prf.f1[-1] == 0.0
    for average in ("macro", "micro"):
        p, r, f, _ = precision_recall_fscore_support(
            gold, decisions, average=average, zero_division=0
        )
        prefix = average[:5]
        assert getattr(prf, f"{prefix}_p") == pytest.approx(p)
        assert getattr(prf, f"{prefix}_r") == pytest.approx(r)
        assert getattr(prf, f"{prefix}_f") == pytest.approx(f)


def test_prf_without_any_positive_is_zero_not_nan():
    prf = prf_per_label(np.zeros((3, 2)), np.zeros((3, 2)))
    assert prf.macro_f == 0.0 and prf.micro_p == 0.0 and not np.isnan(prf.f1).any()


def test_decide_uses_greater_or_equal_and_per_label_thresholds():
    probs = np.array([[0.5, 0.3], [0.49, 0.31]])
    np.testing.assert_array_equal(decide(probs, 0.5), [[1, 0], [0, 0]])
    np.testing.assert_array_equal(decide(probs, np.array([0.49, 0.31])), [[1, 0], [1, 1]])


def test_decide_rejects_wrong_number_of_thresholds():
    with pytest.raises(ValueError, match=r"\[E158\].*2 label"):
        decide(np.zeros((3, 2)), np.array([0.5, 0.5, 0.5]))


# --- ranking and accuracy ------------------------------------------------------------------


def test_macro_auc_matches_sklearn_and_skips_one_class_labels():
    probs, gold = random_multilabel(5)
    expected = roc_auc_score(gold, probs, average="macro")
    assert macro_auc(probs, gold) == pytest.approx(expected)
    with_constant = np.column_stack([gold, np.zeros(gold.shape[0])])
    probs_extra = np.column_stack([probs, np.full(gold.shape[0], 0.1)])
    assert macro_auc(probs_extra, with_constant) == pytest.approx(expected)


def test_macro_auc_is_nan_when_no_label_has_both_classes():
    assert np.isnan(macro_auc(np.array([[0.2, 0.9]]), np.array([[1.0, 0.0]])))


def test_accuracy_is_argmax_agreement():
    probs = np.array([[0.7, 0.3], [0.4, 0.6], [0.9, 0.1]])
    gold = np.array([[1, 0], [1, 0], [1, 0]])
    assert accuracy(probs, gold) == pytest.approx(2 / 3)


# --- validation ----------------------------------------------------------------------------


def test_shape_mismatch_names_both_arrays():
    with pytest.raises(ValueError, match=r"\[E151\] 'probs' has shape \(3, 2\).*'gold'"):
        brier_score(np.zeros((3, 2)), np.zeros((3, 3)), exclusive=False)


def test_one_dimensional_probs_are_rejected_with_a_hint():
    with pytest.raises(ValueError, match=r"\[E150\] 'probs' must be a 2-D array.*x\[:, None\]"):
        classwise_ece(np.zeros(3), np.zeros(3))


def test_out_of_range_and_nan_scores_are_rejected_with_their_position():
    with pytest.raises(ValueError, match=r"\[E153\] 'probs'.*\(1, 0\).*logits"):
        log_loss(np.array([[0.2], [3.0]]), np.zeros((2, 1)), exclusive=False)
    with pytest.raises(ValueError, match=r"\[E153\] 'confidence'.*non-finite"):
        ece(np.array([0.1, np.nan]), np.array([1, 0]))


def test_mismatched_confidence_and_correct_lengths_are_rejected():
    with pytest.raises(ValueError, match=r"\[E151\] 'confidence'"):
        ece(np.array([0.1, 0.2]), np.array([1]))


def test_exclusive_metrics_reject_docs_without_gold_label():
    with pytest.raises(ValueError, match=r"\[E155\] Row 1 of 'gold'"):
        accuracy(np.array([[0.6, 0.4], [0.5, 0.5]]), np.array([[1.0, 0.0], [0.0, 0.0]]))


def test_empty_input_and_bad_settings_are_rejected():
    with pytest.raises(ValueError, match=r"\[E152\]"):
        brier_score(np.zeros((0, 2)), np.zeros((0, 2)), exclusive=False)
    with pytest.raises(ValueError, match=r"\[E013\].*binning strategy"):
        ece(np.array([0.1]), np.array([1]), strategy="log")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"\[E154\] 'n_bins'"):
        ece(np.array([0.1]), np.array([1]), n_bins=0)

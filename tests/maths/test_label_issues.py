"""Confident learning (maths/label_issues.py) and uncertainty sampling (active_learning)."""

from __future__ import annotations

import numpy as np
import pytest

from textcat_kit.errors import DataError
from textcat_kit.maths.active_learning import (
    default_label_cap,
    predicted_label,
    select_diverse,
    uncertainty,
)
from textcat_kit.maths.label_issues import (
    confident_joint,
    find_label_issues,
    find_multilabel_issues,
    inject_exclusive_noise,
    inject_multilabel_noise,
    label_quality,
    per_class_thresholds,
    precision_recall_at_k,
)


def synthetic_exclusive(n: int, n_labels: int, strength: float, seed: int) -> tuple:
    rng = np.random.default_rng(seed)
    true = rng.integers(n_labels, size=n)
    logits = rng.normal(size=(n, n_labels))
    logits[np.arange(n), true] += strength
    probs = np.exp(logits)
    probs /= probs.sum(axis=1, keepdims=True)
    return true, probs


def test_thresholds_and_confident_joint_by_hand() -> None:
    probs = np.array(
        [
            [0.9, 0.1],  # given 0, confidently 0
            [0.7, 0.3],  # given 0
            [0.2, 0.8],  # given 0, but confidently 1
            [0.1, 0.9],  # given 1
            [0.4, 0.6],  # given 1, below t_1 = 0.75 and below t_0 = 0.6: not counted
        ]
    )
    given = np.array([0, 0, 0, 1, 1])
    t = per_class_thresholds(probs, given)
    np.testing.assert_allclose(t, [(0.9 + 0.7 + 0.2) / 3, (0.9 + 0.6) / 2])
    joint = confident_joint(probs, given)
    np.testing.assert_array_equal(joint.counts, [[2, 1], [0, 1]])
    assert joint.true_estimate.tolist() == [0, 0, 1, 1, -1]
    # rows calibrated to the number of docs given each label (3 and 2)
    np.testing.assert_allclose(joint.calibrated, [[2, 1], [0, 2]])
    np.testing.assert_allclose(joint.joint.sum(), 1.0)
    assert joint.noise_rate() == pytest.approx(1 / 5)
    found = find_label_issues(probs, given)
    assert found.order.tolist() == [2]
    assert found.suggested[2] == 1


def test_exclusive_noise_is_found_and_agreeing_labels_never_flagged() -> None:
    true, probs = synthetic_exclusive(3000, 10, 3.0, seed=0)
    noisy, flipped = inject_exclusive_noise(true, 10, 0.1, seed=1)
    assert len(flipped) == 300 and (noisy[flipped] != true[flipped]).all()
    assert (np.delete(noisy, flipped) == np.delete(true, flipped)).all()
    for rank_by in ("self_confidence", "normalized_margin"):
        found = find_label_issues(probs, noisy, rank_by=rank_by)
        precision, recall = precision_recall_at_k(found.order, flipped, len(flipped))
        assert precision >= 0.75 and recall >= 0.75, (rank_by, precision, recall)
        assert not found.is_issue[probs.argmax(axis=1) == noisy].any()
        quality = label_quality(probs, noisy, rank_by)
        assert np.all(np.diff(quality[found.order]) >= 0)  # most likely wrong first
    # a model that knows nothing finds (almost) nothing
    flat = np.full_like(probs, 0.1)
    assert len(find_label_issues(flat, noisy).order) == 0


def test_filters_nest() -> None:
    true, probs = synthetic_exclusive(2000, 5, 2.0, seed=3)
    noisy, _ = inject_exclusive_noise(true, 5, 0.1, seed=4)
    pbnr = find_label_issues(probs, noisy, filter_by="prune_by_noise_rate").is_issue
    cj = find_label_issues(probs, noisy, filter_by="confident_joint").is_issue
    both = find_label_issues(probs, noisy, filter_by="both").is_issue
    assert (both == (pbnr & cj)).all()
    assert both.sum() <= min(pbnr.sum(), cj.sum())


def test_confusable_noise_goes_to_the_confusable_label() -> None:
    given = np.repeat(np.arange(4), 50)
    confusable = np.zeros((4, 4))
    confusable[0, 3] = confusable[1, 2] = confusable[2, 1] = confusable[3, 0] = 5.0
    noisy, flipped = inject_exclusive_noise(
        given, 4, 0.2, seed=0, confusable=confusable, confusable_share=1.0
    )
    assert (noisy[flipped] == confusable[given[flipped]].argmax(axis=1)).all()
    again, flipped_again = inject_exclusive_noise(
        given, 4, 0.2, seed=0, confusable=confusable, confusable_share=1.0
    )
    assert (again == noisy).all() and (flipped_again == flipped).all()


def test_multilabel_toggles_are_found() -> None:
    rng = np.random.default_rng(0)
    gold = (rng.random((2000, 8)) < 0.2).astype(float)
    logits = rng.normal(size=gold.shape) + (2 * gold - 1) * 3.0
    probs = 1 / (1 + np.exp(-logits))
    noisy, toggled = inject_multilabel_noise(gold, 0.05, seed=2)
    n_pos = int(gold.sum())
    assert len(toggled) == round(0.05 * n_pos)
    removed = gold[toggled[:, 0], toggled[:, 1]] == 1
    assert removed.sum() == len(toggled) // 2
    assert ((noisy != gold).sum()) == len(toggled)
    found = find_multilabel_issues(probs, noisy)
    precision, recall = precision_recall_at_k(found.pairs, toggled, len(toggled))
    assert precision >= 0.8 and recall >= 0.8
    # docs are ordered by their worst flagged pair
    worst = found.doc_quality[found.doc_order]
    assert np.all(np.diff(worst) >= 0)
    assert set(found.doc_order.tolist()) == set(found.pairs[:, 0].tolist())


def test_bad_inputs_are_coded() -> None:
    probs = np.full((3, 2), 0.5)
    with pytest.raises(DataError, match=r"\[E400\]"):
        find_label_issues(probs, np.array([0, 1, 2]))
    with pytest.raises(DataError, match=r"\[E400\]"):
        find_label_issues(probs, np.array([0.0, 1.0, 1.0]))
    with pytest.raises(DataError, match=r"\[E401\]"):
        find_multilabel_issues(probs, np.zeros((3, 3)))
    with pytest.raises(ValueError, match=r"\[E153\]"):
        find_label_issues(probs * 3, np.array([0, 1, 1]))


def test_precision_recall_at_k() -> None:
    assert precision_recall_at_k(np.array([1, 2, 3, 4]), np.array([2, 4, 9]), 3) == (
        pytest.approx(1 / 3 * 1),
        pytest.approx(1 / 3),
    )
    # fewer ranked than k: precision over what was ranked
    assert precision_recall_at_k(np.array([2]), np.array([2, 4]), 2) == (1.0, 0.5)
    pairs = np.array([[0, 1], [3, 2]])
    assert precision_recall_at_k(pairs, np.array([[3, 2]]), 1) == (0.0, 0.0)
    assert precision_recall_at_k(pairs, np.array([[3, 2]]), 2) == (0.5, 1.0)


def test_uncertainty_values() -> None:
    probs = np.array([[0.5, 0.5, 0.0], [1.0, 0.0, 0.0], [0.6, 0.3, 0.1]])
    np.testing.assert_allclose(uncertainty(probs, exclusive=True), [1.0, 0.0, 0.7])
    np.testing.assert_allclose(
        uncertainty(probs, exclusive=True, strategy="least_confident"), [0.5, 0.0, 0.4]
    )
    entropy = uncertainty(probs, exclusive=True, strategy="entropy")
    assert entropy[1] == 0.0 and entropy[0] == pytest.approx(np.log(2) / np.log(3))
    multi = np.array([[0.9, 0.5], [0.99, 0.01]])
    np.testing.assert_allclose(uncertainty(multi, exclusive=False), [1.0, 0.02])
    assert uncertainty(multi, exclusive=False, strategy="entropy")[0] == pytest.approx(1.0)
    assert predicted_label(multi, exclusive=False).tolist() == [1, 0]


def test_select_diverse_caps_then_fills() -> None:
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4])
    predicted = np.array([0, 0, 0, 1, 1, 2])
    assert select_diverse(scores, predicted, 3, max_per_label=1).tolist() == [0, 3, 5]
    assert select_diverse(scores, predicted, 4, max_per_label=1).tolist() == [0, 3, 5, 1]
    assert select_diverse(scores, predicted, 3).tolist() == [0, 1, 2]
    clusters = np.array([0, 1, 0, 1, 0, 1])
    assert select_diverse(scores, predicted, 2, clusters=clusters, max_per_cluster=1).tolist() == [
        0,
        1,
    ]
    assert select_diverse(scores, predicted, 99).shape == (6,)
    assert default_label_cap(200, 77) == 6 and default_label_cap(1, 77) == 1


def test_per_label_rank_puts_both_directions_on_one_scale() -> None:
    rng = np.random.default_rng(5)
    # label 0 frequent and well predicted, label 1 rare and weakly predicted
    gold = np.stack([rng.random(3000) < 0.5, rng.random(3000) < 0.03], axis=1).astype(float)
    strength = np.array([4.0, 1.5])
    probs = 1 / (1 + np.exp(-(rng.normal(size=gold.shape) + (2 * gold - 1) * strength)))
    noisy, toggled = inject_multilabel_noise(gold, 0.05, seed=6)
    plain = find_multilabel_issues(probs, noisy)
    ranked = find_multilabel_issues(probs, noisy, per_label_rank=True)
    assert (plain.is_issue == ranked.is_issue).all()  # same issues, another order
    assert ranked.pair_quality.min() > 0 and ranked.pair_quality.max() <= 1
    for label in (0, 1):
        for state in (0, 1):
            members = noisy[:, label] == state
            q = ranked.pair_quality[members, label]
            assert q.max() == pytest.approx(1.0)  # a rank among its own kind of pairs
    p_plain, _ = precision_recall_at_k(plain.pairs, toggled, len(toggled))
    p_ranked, _ = precision_recall_at_k(ranked.pairs, toggled, len(toggled))
    assert p_ranked >= 0.4 and p_plain >= 0.4, (p_ranked, p_plain)

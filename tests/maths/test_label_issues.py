"""Confident learning (maths/label_issues.py) and uncertainty sampling (active_learning)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from textcat_kit.errors import DataError
from textcat_kit.maths.active_learning import (
    default_label_cap,
    predicted_label,
    select_diverse,
    uncertainty,
)
from textcat_kit.maths.calibration import PerLabelCalibration
from textcat_kit.maths.label_issues import (
    _best_swaps,
    _swap_mass,
    confident_joint,
    count_distribution,
    find_label_issues,
    find_multilabel_issues,
    inject_exclusive_noise,
    inject_multilabel_noise,
    label_quality,
    per_class_thresholds,
    pool_probabilities,
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


def synthetic_multilabel(
    n: int, n_labels: int, rate: float, strength: float, seed: int, at_least_one: bool = False
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(raw scores, cross-fitted Platt-calibrated scores, noisy labels, toggled pairs):
    5% of the given pairs toggled, scores from a model of the clean labels, calibrated on
    the noisy ones as ``cv`` does."""
    rng = np.random.default_rng(seed)
    gold = rng.random((n, n_labels)) < rate
    if at_least_one:  # every text has a label, as in GoEmotions
        empty = ~gold.any(axis=1)
        gold[empty, rng.integers(n_labels, size=int(empty.sum()))] = True
    logits = rng.normal(size=gold.shape) + (2 * gold - 1) * strength
    raw = 1 / (1 + np.exp(-logits))
    noisy, toggled = inject_multilabel_noise(gold.astype(float), 0.05, seed=seed + 1)
    half = np.arange(n) % 2 == 0
    calibrated = np.empty_like(raw)
    names = [str(j) for j in range(n_labels)]
    for fit, apply in ((half, ~half), (~half, half)):
        calibrator = PerLabelCalibration(method="platt").fit(raw[fit], noisy[fit], names)
        calibrated[apply] = calibrator.transform(raw[apply])
    return raw, calibrated, noisy, toggled


def test_multilabel_toggles_are_found() -> None:
    rng = np.random.default_rng(0)
    gold = (rng.random((2000, 8)) < 0.2).astype(float)
    noisy, toggled = inject_multilabel_noise(gold, 0.05, seed=2)
    n_pos = int(gold.sum())
    assert len(toggled) == round(0.05 * n_pos)
    removed = gold[toggled[:, 0], toggled[:, 1]] == 1
    assert removed.sum() == len(toggled) // 2
    assert ((noisy != gold).sum()) == len(toggled)
    _, probs, noisy, toggled = synthetic_multilabel(4000, 8, 0.2, 3.0, seed=0)
    for method in ("label_set", "per_label"):
        found = find_multilabel_issues(probs, noisy, method=method)
        precision, recall = precision_recall_at_k(found.pairs, toggled, len(toggled))
        assert precision >= 0.85 and recall >= 0.75, (method, precision, recall)
        assert set(found.doc_order.tolist()) == set(found.pairs[:, 0].tolist())
        assert found.is_issue.sum() == len(found.pairs)
        # pairs most likely wrong first, docs ordered by their quality
        assert np.all(np.diff(found.pair_quality[found.pairs[:, 0], found.pairs[:, 1]]) >= 0)
        assert np.all(np.diff(found.doc_quality[found.doc_order]) >= 0)
    found = find_multilabel_issues(probs, noisy)
    assert found.method == "label_set" and found.noise is not None
    assert found.noise.converged and found.noise.n_errors > 0.2 * len(toggled)
    assert found.noise.remove_rate > found.noise.add_rate  # equal counts, fewer positives
    # the flagged cells are where the most probable set differs from the given one
    assert len(found.pairs) <= 1.5 * len(toggled)
    assert 0.0 <= found.pair_quality.min() and found.pair_quality.max() <= 1.0
    assert 0.0 < found.noise_rate() < 0.5


def test_label_set_uses_how_many_labels_a_text_has() -> None:
    # every text has >= 1 label and the model is weak: the count tells dropped labels
    _, probs, noisy, toggled = synthetic_multilabel(4000, 8, 0.2, 1.5, seed=3, at_least_one=True)
    label_set = find_multilabel_issues(probs, noisy)
    per_label = find_multilabel_issues(probs, noisy, method="per_label")
    p_set, _ = precision_recall_at_k(label_set.pairs, toggled, len(toggled))
    p_label, _ = precision_recall_at_k(per_label.pairs, toggled, len(toggled))
    assert p_set >= p_label + 0.03, (p_set, p_label)
    # where the counts carry no extra information it is per-cell self-confidence
    _, probs, noisy, toggled = synthetic_multilabel(4000, 8, 0.2, 3.0, seed=4)
    k = len(toggled)
    p_set, _ = precision_recall_at_k(find_multilabel_issues(probs, noisy).pairs, toggled, k)
    p_label, _ = precision_recall_at_k(
        find_multilabel_issues(probs, noisy, method="per_label").pairs, toggled, k
    )
    assert p_set >= p_label - 0.02, (p_set, p_label)


def test_a_text_stripped_of_its_only_label_gets_one_suggestion() -> None:
    rng = np.random.default_rng(7)
    n, n_labels = 600, 4
    given = np.zeros((n, n_labels))
    given[np.arange(n), rng.integers(n_labels, size=n)] = 1.0  # one label per text
    probs = np.where(given == 1, 0.8, 0.07)
    given[0] = 0.0  # text 0 lost its label; the model gives 0.6 / 0.3 to labels 2 / 1
    probs[0] = [0.05, 0.3, 0.6, 0.05]
    found = find_multilabel_issues(probs, given)
    assert found.doc_order[0] == 0
    assert found.pairs[0].tolist() == [0, 2]
    assert found.is_issue[0].tolist() == [False, False, True, False]
    assert found.is_issue.sum() == 1
    assert found.pair_quality[0, 2] < found.pair_quality[0, 1] < found.pair_quality[0, 0]
    # the same text in a corpus where texts without labels are common is left alone
    common = given.copy()
    common[1:200] = 0.0
    assert not find_multilabel_issues(probs, common).is_issue[0].any()


def flipped_multilabel(
    n: int, n_labels: int, strength: float, seed: int, kind: str = "flip"
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(calibrated scores, noisy labels, broken cells): every text has >= 1 label, 5% of
    the given labels broken by ``kind``, a model of the clean labels calibrated on the
    noisy ones (cross-fitted, as ``cv`` does)."""
    rng = np.random.default_rng(seed)
    gold = rng.random((n, n_labels)) < 0.12
    empty = ~gold.any(axis=1)
    gold[empty, rng.integers(n_labels, size=int(empty.sum()))] = True
    noisy, broken = inject_multilabel_noise(gold.astype(float), 0.05, seed + 1, kind=kind)  # type: ignore[arg-type]
    raw = 1 / (1 + np.exp(-(rng.normal(size=gold.shape) + (2 * gold - 1) * strength)))
    half = np.arange(n) % 2 == 0
    calibrated = np.empty_like(raw)
    names = [str(j) for j in range(n_labels)]
    for fit, apply in ((half, ~half), (~half, half)):
        calibrator = PerLabelCalibration(method="platt").fit(raw[fit], noisy[fit], names)
        calibrated[apply] = calibrator.transform(raw[apply])
    return calibrated, noisy, broken


def test_flip_noise_keeps_counts_and_changes_two_cells_per_flip() -> None:
    rng = np.random.default_rng(0)
    gold = (rng.random((500, 6)) < 0.3).astype(float)
    noisy, changed = inject_multilabel_noise(gold, 0.1, seed=1, kind="flip")
    assert len(changed) == 2 * (round(0.1 * gold.sum()) // 2)
    assert ((noisy != gold).sum()) == len(changed)
    np.testing.assert_array_equal(noisy.sum(axis=1), gold.sum(axis=1))
    lost = gold[changed[:, 0], changed[:, 1]] == 1
    assert lost.sum() == len(changed) // 2  # one given label out, one new label in
    again, changed_again = inject_multilabel_noise(gold, 0.1, seed=1, kind="flip")
    assert (again == noisy).all() and (changed_again == changed).all()
    with pytest.raises(ValueError, match="kind"):
        inject_multilabel_noise(gold, 0.1, seed=1, kind="swap")  # type: ignore[arg-type]


def test_swap_neighbours_find_flipped_labels() -> None:
    # a flip keeps the label count: without swaps the posterior must explain it by a drop
    # and an add, each against the count; with swaps it is one event of its own rate
    found = {True: [], False: []}
    per_label = []
    for seed in (0, 1):
        probs, noisy, broken = flipped_multilabel(4000, 10, 1.5, seed)
        k = len(broken)
        for swaps in (True, False):
            issues = find_multilabel_issues(probs, noisy, swaps=swaps)
            found[swaps].append(precision_recall_at_k(issues.pairs, broken, k)[0])
            assert issues.noise is not None
            if swaps:
                assert issues.noise.flip_rate > 0.005, issues.noise.flip_rate
            else:
                assert issues.noise.flip_rate == 0.0
        plain = find_multilabel_issues(probs, noisy, method="per_label")
        per_label.append(precision_recall_at_k(plain.pairs, broken, k)[0])
    assert np.mean(found[True]) >= np.mean(found[False]) + 0.15, found
    assert np.mean(found[True]) >= np.mean(per_label) + 0.1, (found, per_label)


def test_swap_neighbours_change_little_without_flips() -> None:
    # toggles only (drops and adds): EM puts the flip rate near 0 and the ranking stays
    for seed in (2, 3):
        probs, noisy, broken = flipped_multilabel(4000, 10, 1.5, seed, kind="toggle")
        k = len(broken)
        with_swaps = find_multilabel_issues(probs, noisy)
        without = find_multilabel_issues(probs, noisy, swaps=False)
        assert with_swaps.noise is not None and with_swaps.noise.flip_rate < 0.002
        p_with = precision_recall_at_k(with_swaps.pairs, broken, k)[0]
        p_without = precision_recall_at_k(without.pairs, broken, k)[0]
        assert abs(p_with - p_without) <= 0.02, (p_with, p_without)


def test_swap_mass_matches_enumeration() -> None:
    rng = np.random.default_rng(5)
    n_labels = 5
    positive = rng.random((6, n_labels)) < 0.4
    positive[0] = True  # nothing to swap in
    positive[1] = False  # nothing to swap out
    toggle = rng.normal(scale=3.0, size=positive.shape)
    pairs = rng.normal(size=(n_labels, n_labels))
    pairs = (pairs + pairs.T) / 2
    np.fill_diagonal(pairs, 0.0)
    mass = _swap_mass(toggle, positive, pairs)
    for i in range(len(positive)):
        ratios = {
            (a, b): np.exp(toggle[i, a] + toggle[i, b] - pairs[a, b])
            for a in np.flatnonzero(positive[i])
            for b in np.flatnonzero(~positive[i])
        }
        total = sum(ratios.values())
        if not ratios:
            assert mass.log_total[i] == -np.inf
            continue
        np.testing.assert_allclose(np.exp(mass.log_total[i]), total, rtol=1e-10)
        leaves = [sum(v for (a, _), v in ratios.items() if a == j) / total for j in range(n_labels)]
        joins = [sum(v for (_, b), v in ratios.items() if b == j) / total for j in range(n_labels)]
        np.testing.assert_allclose(mass.leaves[i], leaves, atol=1e-12)
        np.testing.assert_allclose(mass.joins[i], joins, atol=1e-12)
    # the best single swap agrees with the enumeration too
    gain, out, into = _best_swaps(toggle, positive, pairs)
    for i in range(2, len(positive)):
        best = max(
            ((a, b) for a in np.flatnonzero(positive[i]) for b in np.flatnonzero(~positive[i])),
            key=lambda ab: toggle[i, ab[0]] + toggle[i, ab[1]] - pairs[ab[0], ab[1]],
        )
        assert (out[i], into[i]) == best
    assert gain[0] == -np.inf and gain[1] == -np.inf


def test_one_label_texts_with_the_wrong_label_get_the_right_one() -> None:
    # one label per text everywhere: dropping the label or adding a second both cost the
    # count; only a swap reaches the label the model is sure of
    rng = np.random.default_rng(8)
    n, n_labels = 800, 4
    true = rng.integers(n_labels, size=n)
    given = np.zeros((n, n_labels))
    given[np.arange(n), true] = 1.0
    probs = np.where(given == 1, 0.95, 0.01)  # a sharp model of the true labels
    wrong_docs = np.arange(0, n, 20)  # 40 texts: the annotator chose the next label
    given[wrong_docs] = 0.0
    given[wrong_docs, (true[wrong_docs] + 1) % n_labels] = 1.0
    found = find_multilabel_issues(probs, given)
    assert found.noise is not None and found.noise.flip_rate > 0.01
    assert set(found.doc_order.tolist()) == set(wrong_docs.tolist())
    for doc in wrong_docs.tolist():
        assert set(np.flatnonzero(found.is_issue[doc]).tolist()) == {
            true[doc],
            (true[doc] + 1) % n_labels,
        }
    # the two cells of a flip are each more likely wrong than with single toggles only
    plain = find_multilabel_issues(probs, given, swaps=False)
    cells = (wrong_docs, true[wrong_docs])
    assert (found.pair_quality[cells] < plain.pair_quality[cells]).all()


def test_uncalibrated_scores_still_list_issues() -> None:
    # raw scores: EM can find no noise the scores cannot already explain; the cells whose
    # toggled set the model prefers are listed, in the same order
    raw, _, noisy, toggled = synthetic_multilabel(2000, 8, 0.2, 3.0, seed=0)
    found = find_multilabel_issues(raw, noisy)
    precision, recall = precision_recall_at_k(found.pairs, toggled, len(toggled))
    assert precision >= 0.8 and recall >= 0.8, (precision, recall)


def test_count_distribution_matches_enumeration() -> None:
    rng = np.random.default_rng(1)
    probs = rng.random((3, 5))
    q = count_distribution(probs, 5)
    for row in range(3):
        exact = np.zeros(6)
        for subset in itertools.product((0, 1), repeat=5):
            y = np.array(subset)
            exact[y.sum()] += np.prod(np.where(y == 1, probs[row], 1 - probs[row]))
        np.testing.assert_allclose(q[row] / q[row].sum(), exact, rtol=1e-10)
    # truncated at max_count: the lower counts are exact; hundreds of labels stay finite
    ratio = count_distribution(probs, 2)[0] / q[0, :3]
    np.testing.assert_allclose(ratio, ratio[0])
    many = count_distribution(np.full((2, 400), 0.999), 10)
    assert np.isfinite(many).all() and many.max() == 1.0
    wide = rng.random((50, 300)) < 0.01
    found = find_multilabel_issues(np.where(wide, 0.9, 0.002), wide.astype(float))
    assert np.isfinite(found.pair_quality).all()


def test_bad_inputs_are_coded() -> None:
    probs = np.full((3, 2), 0.5)
    with pytest.raises(DataError, match=r"\[E400\]"):
        find_label_issues(probs, np.array([0, 1, 2]))
    with pytest.raises(DataError, match=r"\[E400\]"):
        find_label_issues(probs, np.array([0.0, 1.0, 1.0]))
    with pytest.raises(DataError, match=r"\[E401\]"):
        find_multilabel_issues(probs, np.zeros((3, 3)))
    with pytest.raises(DataError, match=r"\[E401\]"):
        find_multilabel_issues(probs, np.zeros((3, 3)), method="per_label")
    with pytest.raises(ValueError, match="method"):
        find_multilabel_issues(probs, np.zeros((3, 2)), method="joint")  # type: ignore[arg-type]
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
    plain = find_multilabel_issues(probs, noisy, method="per_label")
    ranked = find_multilabel_issues(probs, noisy, method="per_label", per_label_rank=True)
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


def independent_members(
    n: int, n_labels: int, strength: float, n_members: int, seed: int
) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    """Several models of the same clean multi-label data whose errors are independent
    (each its own noise on the logits), each calibrated on the noisy labels as ``cv``
    does: (members' calibrated scores, noisy labels, toggled pairs)."""
    rng = np.random.default_rng(seed)
    gold = rng.random((n, n_labels)) < 0.2
    empty = ~gold.any(axis=1)
    gold[empty, rng.integers(n_labels, size=int(empty.sum()))] = True
    noisy, toggled = inject_multilabel_noise(gold.astype(float), 0.05, seed=seed + 1)
    half = np.arange(n) % 2 == 0
    names = [str(j) for j in range(n_labels)]
    members = []
    for _ in range(n_members):
        raw = 1 / (1 + np.exp(-(rng.normal(size=gold.shape) + (2 * gold - 1) * strength)))
        calibrated = np.empty_like(raw)
        for fit, apply in ((half, ~half), (~half, half)):
            calibrator = PerLabelCalibration(method="platt").fit(raw[fit], noisy[fit], names)
            calibrated[apply] = calibrator.transform(raw[apply])
        members.append(calibrated)
    return members, noisy, toggled


def test_pool_probabilities_is_the_normalised_geometric_mean() -> None:
    rng = np.random.default_rng(0)
    a, b = rng.uniform(0.01, 0.99, size=(2, 50, 4))
    pooled = pool_probabilities([a, b], exclusive=False)
    expected = np.sqrt(a * b) / (np.sqrt(a * b) + np.sqrt((1 - a) * (1 - b)))
    np.testing.assert_allclose(pooled, expected, rtol=1e-9)
    np.testing.assert_allclose(pool_probabilities([a], exclusive=False), a)
    np.testing.assert_allclose(pool_probabilities([a, a, a], exclusive=False), a)
    # a confident "no" of one member outweighs a lukewarm "yes" of the other
    assert pool_probabilities([np.array([[0.6]]), np.array([[0.05]])], False)[0, 0] < 0.25
    ea, eb = a / a.sum(axis=1, keepdims=True), b / b.sum(axis=1, keepdims=True)
    pooled = pool_probabilities([ea, eb], exclusive=True)
    expected = np.sqrt(ea * eb) / np.sqrt(ea * eb).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(pooled, expected, rtol=1e-9)
    np.testing.assert_allclose(pooled.sum(axis=1), 1.0)
    with pytest.raises(DataError, match=r"\[E415\].*shapes"):
        pool_probabilities([a, a[:, :3]], exclusive=False)
    with pytest.raises(DataError, match=r"\[E415\]"):
        pool_probabilities([], exclusive=True)


def test_pooling_models_with_independent_errors_ranks_better() -> None:
    members, noisy, toggled = independent_members(4000, 8, 1.5, 3, seed=5)
    k = len(toggled)
    alone = [
        precision_recall_at_k(find_multilabel_issues(m, noisy).pairs, toggled, k)[0]
        for m in members
    ]
    pooled = find_multilabel_issues(pool_probabilities(members, exclusive=False), noisy)
    p_pooled, _ = precision_recall_at_k(pooled.pairs, toggled, k)
    assert p_pooled >= max(alone) + 0.05, (p_pooled, alone)
    # exclusive: the same for flipped labels
    rng = np.random.default_rng(6)
    true = rng.integers(5, size=3000)
    noisy_idx, flipped = inject_exclusive_noise(true, 5, 0.1, seed=7)
    exclusive_members = []
    for _ in range(3):
        logits = rng.normal(size=(3000, 5)) * 1.5
        logits[np.arange(3000), true] += 1.5
        probs = np.exp(logits)
        exclusive_members.append(probs / probs.sum(axis=1, keepdims=True))
    n = len(flipped)
    alone = [
        precision_recall_at_k(find_label_issues(m, noisy_idx).order, flipped, n)[0]
        for m in exclusive_members
    ]
    pooled_order = find_label_issues(pool_probabilities(exclusive_members, True), noisy_idx).order
    assert precision_recall_at_k(pooled_order, flipped, n)[0] >= max(alone) + 0.05

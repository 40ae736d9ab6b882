"""A model that learned nothing is reported (textcat_kit.diagnostics)."""

from __future__ import annotations

import numpy as np

from textcat_kit.diagnostics import banner, diagnose, per_label_auc, trivial_baseline


def _one_hot(index: np.ndarray, n_labels: int) -> np.ndarray:
    out = np.zeros((len(index), n_labels))
    out[np.arange(len(index)), index] = 1.0
    return out


def test_collapsed_exclusive_model_is_degenerate() -> None:
    rng = np.random.default_rng(0)
    gold_index = (rng.random(400) < 0.13).astype(int)  # 13% positive, like the set
    gold = _one_hot(gold_index, 2)
    # constant prediction of the majority class, perfectly "calibrated" on the prior
    probs = np.tile([0.87, 0.13], (400, 1))
    result = diagnose(probs, gold, ["neg", "pos"], exclusive=True)
    codes = {f.code for f in result.findings}
    assert result.degenerate
    assert {"W004", "W005", "W007"} <= codes
    assert "LEARNED NOTHING" in banner(result)
    assert result.n_predicted_classes == 1


def test_good_model_is_not_degenerate() -> None:
    rng = np.random.default_rng(1)
    gold_index = rng.integers(0, 4, size=500)
    logits = rng.normal(size=(500, 4)) + 3.0 * _one_hot(gold_index, 4)
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    result = diagnose(probs, _one_hot(gold_index, 4), list("abcd"), exclusive=True)
    assert not result.degenerate
    assert result.findings == []
    assert banner(result) == ""
    assert result.macro_f > result.baseline_macro_f


def test_random_scores_have_no_ranking_signal() -> None:
    rng = np.random.default_rng(2)
    gold_index = rng.integers(0, 3, size=600)
    probs = rng.dirichlet(np.ones(3), size=600)
    result = diagnose(probs, _one_hot(gold_index, 3), list("abc"), exclusive=True)
    assert result.degenerate
    assert "W005" in {f.code for f in result.findings}


def test_multilabel_one_dead_label_is_a_warning_not_degenerate() -> None:
    rng = np.random.default_rng(3)
    gold = (rng.random((800, 3)) < 0.3).astype(float)
    probs = np.clip(0.2 + 0.6 * gold + rng.normal(scale=0.1, size=gold.shape), 0, 1)
    probs[:, 2] = rng.random(800)  # label c: pure noise
    result = diagnose(probs, gold, list("abc"), exclusive=False)
    assert not result.degenerate
    (finding,) = result.findings
    assert finding.code == "W006" and finding.labels == ["c"]


def test_multilabel_constant_decisions_are_degenerate() -> None:
    rng = np.random.default_rng(4)
    gold = (rng.random((300, 4)) < 0.25).astype(float)
    probs = np.full(gold.shape, 0.1)  # nothing ever crosses 0.5
    result = diagnose(probs, gold, list("abcd"), exclusive=False)
    assert result.degenerate
    assert "W004" in {f.code for f in result.findings}


def test_per_label_auc_matches_sklearn() -> None:
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(5)
    actual = rng.random((200, 3)) < 0.4
    probs = np.round(rng.random((200, 3)), 1)  # ties on purpose
    ours = per_label_auc(probs, actual)
    for j in range(3):
        assert abs(ours[j] - roc_auc_score(actual[:, j], probs[:, j])) < 1e-12


def test_trivial_baseline_rules() -> None:
    gold = _one_hot(np.array([0] * 8 + [1] * 2), 2) >= 0.5
    value, rule = trivial_baseline(gold, exclusive=True)
    # majority: F1 of class 0 = 2*8/(16+2) = 0.889, class 1 = 0 -> 0.444; priors mean = 0.5
    assert rule.startswith("labels at random") and abs(value - 0.5) < 1e-12


def test_multilabel_low_scores_are_judged_at_the_best_global_threshold() -> None:
    """Scores that never reach 0.5 but rank well are not degenerate before tuning."""
    rng = np.random.default_rng(6)
    gold = (rng.random((600, 5)) < 0.1).astype(float)
    probs = np.clip(0.05 + 0.25 * gold + rng.normal(scale=0.03, size=gold.shape), 0, 1)
    result = diagnose(probs, gold, list("abcde"), exclusive=False)
    assert not result.degenerate, result.messages
    assert result.macro_f > 0.9

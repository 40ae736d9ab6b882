"""The monitor's statistics on simulated data where the truth is known."""

from __future__ import annotations

import numpy as np
import pytest

from textcat_kit.monitoring import MonitorSettings, compare, stats
from textcat_kit.monitoring.profile import (
    ReferenceProfile,
    build_reference_profile,
    category_counts,
)


def calibrated_sample(
    rng: np.random.Generator, n: int, n_labels: int, prior: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities and labels drawn from them: calibrated by construction."""
    prior = np.ones(n_labels) / n_labels if prior is None else prior
    centre = rng.choice(n_labels, n, p=prior)
    alpha = np.full((n, n_labels), 0.3)
    alpha[np.arange(n), centre] = 4.0
    probs = np.array([rng.dirichlet(a) for a in alpha])
    gold_idx = np.array([rng.choice(n_labels, p=p) for p in probs])
    gold = np.zeros_like(probs)
    gold[np.arange(n), gold_idx] = 1.0
    return probs, gold


def top_decisions(probs: np.ndarray) -> np.ndarray:
    decided = np.zeros(probs.shape, dtype=bool)
    decided[np.arange(len(probs)), probs.argmax(axis=1)] = True
    return decided


def test_psi_and_js_are_zero_for_equal_distributions_and_grow_with_shift() -> None:
    counts = np.array([50, 30, 20])
    assert stats.psi(counts, counts * 3) == pytest.approx(0.0, abs=1e-12)
    assert stats.js_distance(counts, counts) == pytest.approx(0.0, abs=1e-7)
    small, large = np.array([45, 32, 23]), np.array([10, 20, 70])
    assert 0 < stats.psi(counts, small) < stats.psi(counts, large)
    assert 0 < stats.js_distance(counts, small) < stats.js_distance(counts, large) <= 1.0
    # disjoint supports: JS distance (base 2) is exactly 1
    assert stats.js_distance(np.array([5, 0]), np.array([0, 5])) == pytest.approx(1.0)


def test_simulated_chi2_pvalue_is_uniform_under_the_null() -> None:
    rng = np.random.default_rng(0)
    p = rng.dirichlet(np.ones(30))
    pvalues = [
        stats.label_shift(
            rng.multinomial(600, p), rng.multinomial(300, p), n_simulations=400, seed=i
        ).chi2_pvalue
        for i in range(150)
    ]
    # ~5% below 0.05 when nothing changed (binomial 150 x 0.05: 7.5 +- 2.7)
    assert 1 <= sum(pv < 0.05 for pv in pvalues) <= 17


def test_label_shift_is_detected_with_sparse_counts() -> None:
    rng = np.random.default_rng(1)
    p = np.ones(77) / 77
    q = p.copy()
    q[:5] *= 4
    q /= q.sum()
    shift = stats.label_shift(rng.multinomial(1000, p), rng.multinomial(500, q))
    assert shift.chi2_pvalue < 0.001
    assert shift.psi > shift.psi_null_quantile


def test_expected_accuracy_matches_realised_accuracy_of_calibrated_probs() -> None:
    rng = np.random.default_rng(2)
    errors = []
    covered = 0
    for _ in range(30):
        probs, gold = calibrated_sample(rng, 400, 6)
        est = stats.expected_accuracy(probs, exclusive=True)
        realised = float((probs.argmax(1) == gold.argmax(1)).mean())
        errors.append(est.value - realised)
        covered += est.low <= realised <= est.high
    assert abs(np.mean(errors)) < 0.01  # unbiased
    assert covered >= 25  # the 95% band holds the realised accuracy


def test_expected_macro_f1_band_holds_the_realised_f1() -> None:
    rng = np.random.default_rng(3)
    covered = 0
    for i in range(20):
        probs, gold = calibrated_sample(rng, 500, 5)
        decided = top_decisions(probs)
        est = stats.expected_macro_f1(probs, decided, exclusive=True, n_draws=100, seed=i)
        realised = stats.realised_macro_f1(decided, gold)
        assert abs(est.value - realised) < 0.08
        covered += est.low <= realised <= est.high
    assert covered >= 16


def test_expected_macro_f1_follows_a_window_where_most_labels_are_absent() -> None:
    """Labels neither decided nor likely to occur do not count, as in the realised F1."""
    rng = np.random.default_rng(11)
    estimates, realised = [], []
    for _ in range(10):
        probs3, gold3 = calibrated_sample(rng, 400, 3)
        # 20 labels of which 17 are (almost) never possible in this window
        probs = np.concatenate([probs3, np.full((400, 17), 1e-5)], axis=1)
        probs /= probs.sum(axis=1, keepdims=True)
        gold = np.concatenate([gold3, np.zeros((400, 17))], axis=1)
        decided = top_decisions(probs)
        estimates.append(stats.cbpe_macro_f1(probs, decided))
        realised.append(stats.realised_macro_f1(decided, gold))
    assert abs(np.mean(estimates) - np.mean(realised)) < 0.03
    assert np.mean(realised) > 0.5  # an average over all 20 labels would be below 0.15


def test_multilabel_expected_accuracy_is_hamming_accuracy() -> None:
    rng = np.random.default_rng(4)
    probs = rng.random((2000, 4))
    gold = rng.random(probs.shape) < probs
    decided = probs >= 0.5
    est = stats.expected_accuracy(probs, exclusive=False, decided=decided)
    assert est.value == pytest.approx(float((decided == gold).mean()), abs=0.01)


def _profile(rng: np.random.Generator, n_labels: int = 8) -> ReferenceProfile:
    probs, gold = calibrated_sample(rng, 1500, n_labels)
    return build_reference_profile(
        probs,
        labels=[f"l{i}" for i in range(n_labels)],
        exclusive=True,
        decided=top_decisions(probs),
        gold=gold,
    )


def test_compare_is_quiet_in_distribution_and_alerts_on_shift() -> None:
    rng = np.random.default_rng(5)
    profile = _profile(rng)
    settings = MonitorSettings(n_simulations=2000, n_draws=50)
    false_alarms = 0
    for _ in range(10):
        probs, _gold = calibrated_sample(rng, 500, 8)
        false_alarms += compare(profile, probs, top_decisions(probs), settings)["alert"]
    assert false_alarms <= 1
    prior = np.array([0.65, 0.05, 0.05, 0.05, 0.05, 0.05, 0.05, 0.05])
    probs, _gold = calibrated_sample(rng, 500, 8, prior)
    report = compare(profile, probs, top_decisions(probs), settings)
    assert report["alert"]
    assert "label_chi2_pvalue" in report["alerts"]
    # low-confidence data: confidence shift and an expected-accuracy drop
    flat = rng.dirichlet(np.ones(8) * 3, 500)
    report = compare(profile, flat, top_decisions(flat), settings)
    assert {"confidence_ks_pvalue", "expected_accuracy"} <= set(report["alerts"])


def test_settings_refuse_a_simulation_too_small_for_alpha() -> None:
    from textcat_kit.errors import ConfigError

    with pytest.raises(ConfigError, match="E309"):
        MonitorSettings(alpha=0.001, n_simulations=500).validate()


def test_profile_round_trips_and_counts_abstentions(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from textcat_kit.errors import ConfigError
    from textcat_kit.monitoring import read_reference_profile, write_reference_profile

    rng = np.random.default_rng(6)
    probs, gold = calibrated_sample(rng, 300, 4)
    decided = top_decisions(probs) & (probs.max(axis=1, keepdims=True) >= 0.5)
    profile = build_reference_profile(
        probs, labels=list("abcd"), exclusive=True, decided=decided, gold=gold
    )
    assert profile.category_counts == category_counts(decided).tolist()
    assert profile.abstain_rate == pytest.approx((~decided.any(axis=1)).mean())
    write_reference_profile(tmp_path, profile)
    loaded = read_reference_profile(tmp_path)
    assert loaded.labels == profile.labels and loaded.category_counts == profile.category_counts
    assert loaded.confidences == pytest.approx(profile.confidences, abs=1e-6)
    assert loaded.expected_accuracy == pytest.approx(profile.expected_accuracy, abs=1e-9)
    with pytest.raises(Exception, match="E023"):
        write_reference_profile(tmp_path, profile)  # never overwritten unless asked
    write_reference_profile(tmp_path, profile, overwrite=True)
    (tmp_path / "monitor_reference.json").write_text('{"version": 1}')
    with pytest.raises(ConfigError, match="E311"):
        read_reference_profile(tmp_path)
    with pytest.raises(ConfigError, match="E310"):
        read_reference_profile(tmp_path / "missing")

"""Label-prior shift correction on simulated data where the true posteriors are known.

The simulation is a label-shift world by construction: each label has a fixed Gaussian
class-conditional p(x | y); a window changes only the label priors. The exact posteriors
under any prior follow from Bayes' rule, so the reference probabilities are perfectly
calibrated for the reference prior, and the truth for the shifted window is known.
"""

from __future__ import annotations

import numpy as np
import pytest

from textcat_kit.monitoring import MonitorSettings, compare, prior_shift, stats
from textcat_kit.monitoring.profile import ReferenceProfile, build_reference_profile


class GaussianWorld:
    """K labels, x | y ~ N(mu_y, I) in ``dim`` dimensions; posteriors by Bayes' rule."""

    def __init__(self, rng: np.random.Generator, n_labels: int, dim: int, spread: float) -> None:
        self.rng = rng
        self.mu = rng.normal(size=(n_labels, dim)) * spread
        self.n_labels = n_labels

    def sample(self, n: int, prior: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        y = self.rng.choice(self.n_labels, n, p=prior)
        return self.mu[y] + self.rng.normal(size=(n, self.mu.shape[1])), y

    def posterior(self, x: np.ndarray, prior: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore"):  # a prior of 0 rules its label out
            log_prior = np.log(prior)
        logit = -0.5 * ((x[:, None, :] - self.mu[None]) ** 2).sum(-1) + log_prior
        logit -= logit.max(axis=1, keepdims=True)
        p = np.exp(logit)
        return np.asarray(p / p.sum(axis=1, keepdims=True))


def shifted_prior(prior: np.ndarray, towards: np.ndarray, share: float) -> np.ndarray:
    out = (1.0 - share) * prior
    out[towards] += share / len(towards)
    return out


def hardest(world: GaussianWorld, prior: np.ndarray, k: int) -> np.ndarray:
    x, y = world.sample(20000, prior)
    right = world.posterior(x, prior).argmax(axis=1) == y
    return np.argsort([right[y == j].mean() for j in range(world.n_labels)])[:k]


def test_adjust_to_prior_is_bayes_rule_exclusive() -> None:
    rng = np.random.default_rng(0)
    world = GaussianWorld(rng, 6, 3, 1.0)
    ref = rng.dirichlet(np.ones(6) * 3)
    new = rng.dirichlet(np.ones(6))
    x, _ = world.sample(500, ref)
    adjusted = prior_shift.adjust_to_prior(world.posterior(x, ref), ref, new, exclusive=True)
    np.testing.assert_allclose(adjusted, world.posterior(x, new), atol=1e-9)


def test_adjust_to_prior_is_bayes_rule_per_label_for_multilabel() -> None:
    rng = np.random.default_rng(1)
    # one binary problem per label: logit of P(label | x) = s + log(pi / (1 - pi))
    scores = rng.normal(size=(400, 5)) * 2
    ref = rng.uniform(0.05, 0.6, 5)
    new = rng.uniform(0.01, 0.9, 5)

    def bern(pi: np.ndarray) -> np.ndarray:
        return np.asarray(1 / (1 + np.exp(-(scores + np.log(pi / (1 - pi))))))

    adjusted = prior_shift.adjust_to_prior(bern(ref), ref, new, exclusive=False)
    np.testing.assert_allclose(adjusted, bern(new), atol=1e-9)


def test_em_leaves_the_reference_itself_unchanged() -> None:
    rng = np.random.default_rng(2)
    world = GaussianWorld(rng, 8, 3, 1.2)
    prior = rng.dirichlet(np.ones(8) * 2)
    x, _ = world.sample(800, prior)
    probs = world.posterior(x, prior)
    ref = prior_shift.reference_prior(probs, exclusive=True)
    assert ref.sum() == pytest.approx(1.0)
    est = prior_shift.estimate_prior(probs, ref, exclusive=True)
    assert est.converged and est.n_iter == 1
    np.testing.assert_allclose(est.adjusted, probs, atol=1e-9)


def test_em_recovers_a_shifted_prior() -> None:
    rng = np.random.default_rng(3)
    world = GaussianWorld(rng, 5, 2, 1.5)
    ref = np.full(5, 0.2)
    new = np.array([0.6, 0.25, 0.1, 0.05, 0.0])
    x, y = world.sample(6000, new)
    probs = world.posterior(x, ref)
    est = prior_shift.estimate_prior(probs, ref, exclusive=True)
    assert est.converged
    # the sampling noise of the label shares of 6000 docs is ~0.006
    np.testing.assert_allclose(est.prior, np.bincount(y, minlength=5) / len(y), atol=0.03)
    assert prior_shift.prior_distance(ref, est.prior, exclusive=True) > 0.35
    # the adjusted probabilities are close to the true posteriors of the window
    assert np.abs(est.adjusted - world.posterior(x, new)).mean() < 0.02


def test_smoothing_pulls_the_estimate_towards_the_reference() -> None:
    rng = np.random.default_rng(4)
    world = GaussianWorld(rng, 5, 2, 1.5)
    ref = np.full(5, 0.2)
    x, _ = world.sample(500, np.array([0.8, 0.05, 0.05, 0.05, 0.05]))
    probs = world.posterior(x, ref)
    distances = [
        prior_shift.prior_distance(
            ref,
            prior_shift.estimate_prior(probs, ref, exclusive=True, strength=s).prior,
            exclusive=True,
        )
        for s in (0.0, 50.0, 500.0, 1e6)
    ]
    assert distances == sorted(distances, reverse=True)
    assert distances[0] > 0.4 and distances[-1] < 0.01


def test_likelihood_ratio_sits_at_its_noise_level_without_shift_and_far_above_with_one() -> None:
    rng = np.random.default_rng(10)
    world = GaussianWorld(rng, 6, 2, 1.5)
    ref = np.full(6, 1 / 6)
    noise = prior_shift.noise_level(6, 500, None, exclusive=True)
    assert noise == 5  # chi-square with n_labels - 1 degrees of freedom: mean 5
    unshifted = []
    for _ in range(40):
        x, _ = world.sample(500, ref)
        est = prior_shift.estimate_prior(world.posterior(x, ref), ref, exclusive=True, shrink=True)
        unshifted.append(est.statistic)
        assert est.em_prior is not None and est.shrinkage < 1.0
    assert 0.6 * noise < np.mean(unshifted) < 1.5 * noise
    x, _ = world.sample(500, shifted_prior(ref, np.array([0]), 0.5))
    est = prior_shift.estimate_prior(world.posterior(x, ref), ref, exclusive=True, shrink=True)
    assert est.statistic > 20 * noise and est.shrinkage > 0.95
    # a noisy reference (estimated from as many docs as the window) doubles the noise level
    assert prior_shift.noise_level(6, 500, 500, exclusive=True) == 10
    assert prior_shift.shrinkage(4.0, 5.0) == 0.0 and prior_shift.shrinkage(50.0, 5.0) == 0.9


def test_corrected_expected_accuracy_tracks_a_strong_prior_shift() -> None:
    """The plain CBPE estimate lags the truth when the mix moves to hard labels; the
    corrected one follows it, and neither drifts on in-distribution windows."""
    rng = np.random.default_rng(5)
    world = GaussianWorld(rng, 20, 4, 1.1)
    ref = rng.dirichlet(np.ones(20) * 5)
    hard = hardest(world, ref, 4)
    x_ref, _ = world.sample(2000, ref)
    ref_prior = prior_shift.reference_prior(world.posterior(x_ref, ref), exclusive=True)
    for share, plain_lags in ((0.0, False), (0.5, True), (1.0, True)):
        errors_plain, errors_corrected = [], []
        for _ in range(5):
            x, y = world.sample(1000, shifted_prior(ref, hard, share))
            probs = world.posterior(x, ref)
            top = probs.argmax(axis=1)
            true = float((top == y).mean())
            est = prior_shift.estimate_prior(probs, ref_prior, exclusive=True)
            corrected = stats.expected_accuracy(est.adjusted, exclusive=True, top=top).value
            errors_plain.append(stats.expected_accuracy(probs, exclusive=True).value - true)
            errors_corrected.append(corrected - true)
        assert abs(np.mean(errors_corrected)) < 0.025, (share, errors_corrected)
        assert bool(np.mean(errors_plain) > 0.06) is plain_lags, (share, errors_plain)


def test_multilabel_prevalence_shift_is_corrected_per_label() -> None:
    rng = np.random.default_rng(6)
    n_labels = 4
    ref = np.array([0.3, 0.2, 0.1, 0.4])
    new = np.array([0.9, 0.02, 0.6, 0.05])

    def window(pi: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
        """Label-shift per label: x | y ~ N(+-1, 1); posteriors at the reference prior."""
        y = rng.random((n, n_labels)) < pi
        x = np.where(y, 1.0, -1.0) + rng.normal(size=y.shape)
        logit = 2 * x + np.log(ref / (1 - ref))  # log N(x;1,1) / N(x;-1,1) = 2x
        return 1 / (1 + np.exp(-logit)), y

    probs_ref, _ = window(ref, 4000)
    ref_prior = prior_shift.reference_prior(probs_ref, exclusive=False)
    np.testing.assert_allclose(ref_prior, ref, atol=0.03)
    probs, y = window(new, 4000)
    est = prior_shift.estimate_prior(probs, ref_prior, exclusive=False)
    np.testing.assert_allclose(est.prior, y.mean(axis=0), atol=0.03)
    decided = probs >= 0.5
    true = float((decided == y).mean())
    plain = stats.expected_accuracy(probs, exclusive=False, decided=decided).value
    corrected = stats.expected_accuracy(est.adjusted, exclusive=False, decided=decided).value
    assert abs(corrected - true) < 0.01 < abs(plain - true)


def test_compare_corrects_a_multilabel_window() -> None:
    rng = np.random.default_rng(12)
    ref = np.array([0.3, 0.2, 0.1, 0.4, 0.25])

    def window(pi: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
        y = rng.random((n, 5)) < pi
        x = np.where(y, 1.0, -1.0) + rng.normal(size=y.shape)
        return 1 / (1 + np.exp(-(2 * x + np.log(ref / (1 - ref))))), y

    probs, y = window(ref, 2000)
    profile = build_reference_profile(
        probs, labels=list("abcde"), exclusive=False, decided=probs >= 0.5, gold=y
    )
    probs, y = window(np.array([0.9, 0.02, 0.6, 0.05, 0.25]), 1000)
    decided = probs >= 0.5
    report = compare(profile, probs, decided, MonitorSettings(n_draws=30), gold=y)
    acc = report["figures"]["expected_accuracy"]
    true = report["observed"]["accuracy"]
    assert report["task"] == "multilabel" and report["prior_shift"]["status"] == "adjusted"
    assert abs(acc["value"] - true) < 0.015 < abs(acc["unadjusted"] - true)
    moved = {row["label"] for row in report["prior_shift"]["largest_changes"][:3]}
    assert moved == {"a", "c", "d"}


def _world_profile(
    world: GaussianWorld, prior: np.ndarray, n: int = 1500, with_prior: bool = True
) -> ReferenceProfile:
    x, y = world.sample(n, prior)
    probs = world.posterior(x, prior)
    decided = np.zeros(probs.shape, dtype=bool)
    decided[np.arange(n), probs.argmax(axis=1)] = True
    gold = np.zeros(probs.shape)
    gold[np.arange(n), y] = 1.0
    profile = build_reference_profile(
        probs,
        labels=[f"l{j}" for j in range(world.n_labels)],
        exclusive=True,
        decided=decided,
        gold=gold,
    )
    if not with_prior:
        profile.label_prior = None
    return profile


def test_compare_reports_the_corrected_estimate_and_the_estimated_priors() -> None:
    rng = np.random.default_rng(7)
    world = GaussianWorld(rng, 10, 3, 1.2)
    ref = np.full(10, 0.1)
    profile = _world_profile(world, ref)
    assert profile.label_prior is not None and len(profile.label_prior) == 10
    hard = hardest(world, ref, 2)
    x, y = world.sample(1000, shifted_prior(ref, hard, 1.0))
    probs = world.posterior(x, ref)
    decided = np.zeros(probs.shape, dtype=bool)
    decided[np.arange(1000), probs.argmax(axis=1)] = True
    settings = MonitorSettings(n_draws=30)
    report = compare(profile, probs, decided, settings)
    true = float((probs.argmax(axis=1) == y).mean())
    acc = report["figures"]["expected_accuracy"]
    assert report["prior_shift"]["status"] == "adjusted"
    # the two hard labels are mostly mistaken for others: the plain estimate is far off
    assert abs(acc["value"] - true) < 0.05 and acc["unadjusted"] - true > 0.15
    assert report["prior_shift"]["shrinkage"] > 0.9  # a strong shift keeps its EM move
    assert {c["label"] for c in report["prior_shift"]["largest_changes"][:2]} == {
        f"l{j}" for j in hard
    }
    assert "expected_accuracy" in report["alerts"]
    # switched off, or an old profile without priors: the plain CBPE figures, and why
    off = compare(profile, probs, decided, MonitorSettings(n_draws=30, prior_correction=False))
    assert off["prior_shift"]["status"] == "off"
    assert off["figures"]["expected_accuracy"]["value"] == pytest.approx(acc["unadjusted"])
    old = compare(_world_profile(world, ref, with_prior=False), probs, decided, settings)
    assert old["prior_shift"]["status"] == "unavailable"
    assert "monitor-reference" in old["prior_shift"]["reason"]


def test_compare_stays_quiet_in_distribution_with_the_correction() -> None:
    rng = np.random.default_rng(8)
    world = GaussianWorld(rng, 12, 3, 1.3)
    ref = rng.dirichlet(np.ones(12) * 4)
    profile = _world_profile(world, ref, n=2000)
    settings = MonitorSettings(n_draws=30)
    errors = []
    for _ in range(8):
        x, y = world.sample(600, ref)
        probs = world.posterior(x, ref)
        decided = np.zeros(probs.shape, dtype=bool)
        decided[np.arange(600), probs.argmax(axis=1)] = True
        report = compare(profile, probs, decided, settings)
        assert "expected_accuracy" not in report["alerts"]
        errors.append(
            report["figures"]["expected_accuracy"]["value"]
            - float((probs.argmax(axis=1) == y).mean())
        )
    assert abs(np.mean(errors)) < 0.02


def test_profile_keeps_label_prior_and_rejects_a_bad_one(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import json

    from textcat_kit.errors import ConfigError
    from textcat_kit.monitoring import read_reference_profile, write_reference_profile

    rng = np.random.default_rng(9)
    world = GaussianWorld(rng, 4, 2, 1.0)
    profile = _world_profile(world, np.full(4, 0.25), n=300)
    write_reference_profile(tmp_path, profile)
    loaded = read_reference_profile(tmp_path)
    assert loaded.label_prior == pytest.approx(profile.label_prior, abs=1e-7)
    data = json.loads((tmp_path / "monitor_reference.json").read_text())
    data["label_prior"] = [0.5, 0.5]
    (tmp_path / "monitor_reference.json").write_text(json.dumps(data))
    with pytest.raises(ConfigError, match="E311.*label_prior"):
        read_reference_profile(tmp_path)
    del data["label_prior"]  # profiles written before the field existed still load
    (tmp_path / "monitor_reference.json").write_text(json.dumps(data))
    assert read_reference_profile(tmp_path).label_prior is None

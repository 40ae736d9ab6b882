"""Compare current predictions with the reference profile: figures, corridors, alerts.

Each figure has a corridor; a figure outside it raises an alert:

==================  =====================================================================
figure              corridor (defaults in :class:`MonitorSettings`)
==================  =====================================================================
label_psi           <= max(psi_min, PSI that sampling noise reaches with prob. alpha)
label_js            <= max(js_min, JS distance noise reaches with prob. alpha)
label_chi2_pvalue   >= alpha (simulated chi-square test of the 2 x K count table)
confidence_ks_pv.   >= alpha (two-sample Kolmogorov–Smirnov test, top-label confidence)
abstain_rate        no change that is both significant (Fisher p < alpha) and >= min_change
expected_accuracy   >= reference - max_drop, unless the band still reaches the reference
expected_macro_f1   as expected_accuracy
==================  =====================================================================

The expected scores are computed from the probabilities re-weighted to the window's own
label priors, estimated by EM and shrunk towards the reference by what sampling noise
explains (:mod:`.prior_shift`; ``prior_correction``, ``prior_shrink``): calibrated
probabilities are calibrated for the reference label mix, and under a label-prior shift
they over-state how often the decisions are right. The unadjusted CBPE figures stay in
each figure as ``unadjusted`` and the estimated priors in the report's ``prior_shift``.

The noise-aware corridors matter: with 77 labels and a window of 500 predictions, PSI
between two samples of the *same* distribution is around 0.2, right where the usual
"0.1 / 0.25" rule of thumb would call it drift.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from ..errors import ConfigError, Errors
from . import prior_shift, stats
from .profile import ReferenceProfile, category_counts

PRIOR_STRENGTH = 0.0
"""Default pseudo-documents smoothing the window's estimated priors towards the reference."""


@dataclass(frozen=True)
class MonitorSettings:
    """Corridor settings of the monitor (see the module docstring)."""

    alpha: float = 0.001
    psi_min: float = 0.1
    js_min: float = 0.1
    min_abstain_change: float = 0.02
    max_drop: float = 0.03
    min_docs: int = 100
    n_simulations: int = 2000
    n_draws: int = 200
    seed: int = 0
    prior_correction: bool = True
    prior_strength: float = PRIOR_STRENGTH
    prior_shrink: bool = True
    prior_max_iter: int = 1000

    def validate(self) -> MonitorSettings:
        checks = [
            ("alpha", 0.0 < self.alpha < 1.0, "in (0, 1)"),
            ("max_drop", 0.0 <= self.max_drop <= 1.0, "in [0, 1]"),
            ("min_docs", self.min_docs >= 2, ">= 2"),
            ("prior_strength", self.prior_strength >= 0.0, ">= 0"),
            ("prior_max_iter", self.prior_max_iter >= 1, ">= 1"),
            (
                "n_simulations",
                self.n_simulations >= 100 and 1.0 / (self.n_simulations + 1) < self.alpha,
                ">= 100 and > 1 / alpha - 1 (a simulated p-value cannot be smaller than "
                "1 / (n_simulations + 1))",
            ),
        ]
        for option, ok, rule in checks:
            if not ok:
                raise ConfigError(
                    Errors.E309.format(option=option, rule=rule, value=getattr(self, option))
                )
        return self


def _figure(
    value: float, low: float | None, high: float | None, alert: bool, **extra: Any
) -> dict[str, Any]:
    return {"value": value, "corridor": [low, high], "alert": bool(alert), **extra}


def compare(
    profile: ReferenceProfile,
    probs: np.ndarray,
    decided: np.ndarray,
    settings: MonitorSettings | None = None,
    *,
    gold: np.ndarray | None = None,
) -> dict[str, Any]:
    """Figures of the current ``probs`` / 0/1 ``decided`` against ``profile``.

    ``gold`` (0/1 matrix), when the current data happen to have labels, adds the realised
    accuracy and macro-F1 next to the estimates (used to validate the estimates).
    """
    settings = (settings or MonitorSettings()).validate()
    probs = np.asarray(probs, dtype=np.float64)
    decided = np.asarray(decided, dtype=bool)
    n = probs.shape[0]
    if n < settings.min_docs:
        raise ConfigError(Errors.E313.format(source="current data", n=n, minimum=settings.min_docs))
    ref_counts = np.asarray(profile.category_counts, dtype=np.int64)
    cur_counts = category_counts(decided)
    shift = stats.label_shift(
        ref_counts,
        cur_counts,
        alpha=settings.alpha,
        n_simulations=settings.n_simulations,
        seed=settings.seed,
    )
    psi_high = max(settings.psi_min, shift.psi_null_quantile)
    js_high = max(settings.js_min, shift.js_null_quantile)
    confidences = probs.max(axis=1)
    ks_stat, ks_p = stats.ks_test(np.asarray(profile.confidences), confidences)
    k_ref = int(round(profile.abstain_rate * profile.n_docs))
    ref_rate, cur_rate, abstain_p = stats.rate_change(profile.n_docs, k_ref, n, int(cur_counts[-1]))
    correction, est_probs = prior_correction(profile, probs, settings)
    top = probs.argmax(axis=1)
    acc = stats.expected_accuracy(est_probs, exclusive=profile.exclusive, decided=decided, top=top)
    f1 = stats.expected_macro_f1(
        est_probs,
        decided,
        exclusive=profile.exclusive,
        n_draws=settings.n_draws,
        seed=settings.seed,
    )
    acc_raw = stats.expected_accuracy(probs, exclusive=profile.exclusive, decided=decided)
    f1_raw = stats.cbpe_macro_f1(probs, decided)

    def drop_alert(estimate: stats.Estimate, reference: float) -> bool:
        return estimate.value < reference - settings.max_drop and estimate.high < reference

    abstain_alert = abstain_p < settings.alpha and abs(cur_rate - ref_rate) >= (
        settings.min_abstain_change
    )
    figures: dict[str, dict[str, Any]] = {
        "label_psi": _figure(shift.psi, None, psi_high, shift.psi > psi_high),
        "label_js": _figure(shift.js_distance, None, js_high, shift.js_distance > js_high),
        "label_chi2_pvalue": _figure(
            shift.chi2_pvalue,
            settings.alpha,
            None,
            shift.chi2_pvalue < settings.alpha,
            statistic=shift.chi2,
        ),
        "confidence_ks_pvalue": _figure(
            ks_p,
            settings.alpha,
            None,
            ks_p < settings.alpha,
            statistic=ks_stat,
            reference_mean=float(np.mean(profile.confidences)),
            current_mean=float(confidences.mean()),
        ),
        "abstain_rate": _figure(
            cur_rate,
            max(0.0, ref_rate - settings.min_abstain_change),
            min(1.0, ref_rate + settings.min_abstain_change),
            abstain_alert,
            reference=ref_rate,
            pvalue=abstain_p,
        ),
        "expected_accuracy": _figure(
            acc.value,
            profile.expected_accuracy - settings.max_drop,
            None,
            drop_alert(acc, profile.expected_accuracy),
            band=[acc.low, acc.high],
            reference=profile.expected_accuracy,
            unadjusted=acc_raw.value,
            unadjusted_band=[acc_raw.low, acc_raw.high],
        ),
        "expected_macro_f1": _figure(
            f1.value,
            profile.expected_macro_f1 - settings.max_drop,
            None,
            drop_alert(f1, profile.expected_macro_f1),
            band=[f1.low, f1.high],
            reference=profile.expected_macro_f1,
            unadjusted=f1_raw,
        ),
    }
    alerts = [name for name, fig in figures.items() if fig["alert"]]
    categories = profile.categories
    report: dict[str, Any] = {
        "n_docs": n,
        "reference": {
            "n_docs": profile.n_docs,
            "source": profile.source,
            "expected_accuracy": profile.expected_accuracy,
            "observed_accuracy": profile.observed_accuracy,
            "expected_macro_f1": profile.expected_macro_f1,
            "observed_macro_f1": profile.observed_macro_f1,
        },
        "task": "exclusive" if profile.exclusive else "multilabel",
        "figures": figures,
        "alerts": alerts,
        "alert": bool(alerts),
        "prior_shift": correction,
        "label_distribution": {
            "categories": categories,
            "reference": ref_counts.tolist(),
            "current": cur_counts.tolist(),
        },
        "settings": asdict(settings),
    }
    if gold is not None:
        gold_b = np.asarray(gold) >= 0.5
        if profile.exclusive:
            realised = float((probs.argmax(axis=1) == gold_b.argmax(axis=1)).mean())
        else:
            realised = float((decided == gold_b).mean())
        report["observed"] = {
            "accuracy": realised,
            "macro_f1": stats.realised_macro_f1(decided, gold_b),
        }
    return report


def prior_correction(
    profile: ReferenceProfile, probs: np.ndarray, settings: MonitorSettings
) -> tuple[dict[str, Any], np.ndarray]:
    """The window's label priors (EM) and its probabilities re-weighted to them.

    Returns the ``prior_shift`` section of the report and the probabilities the expected
    scores are computed from: re-weighted when the correction is on and the profile has
    the reference priors, the given ones otherwise (the section says why).
    """
    if not settings.prior_correction:
        return {"status": "off", "reason": "prior_correction is off in the settings"}, probs
    if profile.label_prior is None:
        return {
            "status": "unavailable",
            "reason": (
                "the reference profile has no label_prior (written by an older version); "
                "rebuild it with `textcat-kit tune` or `textcat-kit monitor-reference "
                "MODEL DEV.spacy --overwrite` to correct the expected scores for a "
                "label-prior shift"
            ),
        }, probs
    reference = np.asarray(profile.label_prior, dtype=np.float64)
    est = prior_shift.estimate_prior(
        probs,
        reference,
        exclusive=profile.exclusive,
        strength=settings.prior_strength,
        max_iter=settings.prior_max_iter,
        shrink=settings.prior_shrink,
        reference_docs=profile.n_docs,
    )
    change = est.prior - prior_shift.clip_prior(reference, exclusive=profile.exclusive)
    largest = np.argsort(-np.abs(change))[:10]
    section: dict[str, Any] = {
        "status": "adjusted",
        "method": "EM (Saerens et al. 2002)"
        + (", shrunk towards the reference" if settings.prior_shrink else ""),
        "strength": settings.prior_strength,
        "n_iter": est.n_iter,
        "converged": est.converged,
        "likelihood_ratio": est.statistic,
        "noise_level": est.noise_level,
        "shrinkage": est.shrinkage,
        "distance": prior_shift.prior_distance(reference, est.prior, exclusive=profile.exclusive),
        "largest_changes": [
            {
                "label": profile.labels[j],
                "reference": float(reference[j]),
                "estimated": float(est.prior[j]),
            }
            for j in largest
        ],
        "reference_prior": [float(x) for x in reference],
        "estimated_prior": [float(x) for x in est.prior],
    }
    return section, est.adjusted

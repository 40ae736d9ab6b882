"""Drift statistics and label-free performance estimates (NumPy/SciPy in, floats out).

No spaCy here: these functions take counts, confidences and probability matrices, so they
are tested on their own and shared by ``textcat-kit monitor`` and the live window of
``textcat-kit serve``.

Definitions follow the monitoring tools' documentation (see docs/monitoring.md):

* **PSI** (population stability index) ``sum_k (c_k - r_k) * ln(c_k / r_k)`` over category
  shares, both shares smoothed with ``eps`` so an empty category stays finite;
* **Jensen–Shannon distance** (square root of the JS divergence, base 2, in [0, 1]) as
  Evidently uses for categorical columns;
* **chi-square test** of the 2 x K table (reference counts, current counts); its p-value is
  computed by simulation (random splits of the pooled counts), which stays valid with the
  many small expected counts a 77-label classifier has, where the chi-square approximation
  is not;
* **Kolmogorov–Smirnov** two-sample test of the top-label confidences;
* **CBPE** (NannyML's confidence-based performance estimation): with calibrated
  probabilities the chance that a prediction is right is its probability, so the expected
  confusion matrix of a set of predictions — and any metric built from it — follows without
  labels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

DEFAULT_EPS = 1e-4


def shares(counts: np.ndarray, eps: float = DEFAULT_EPS) -> np.ndarray:
    """Category shares of ``counts``, floored at ``eps`` and renormalised."""
    counts = np.asarray(counts, dtype=np.float64)
    total = counts.sum(axis=-1, keepdims=True)
    p = counts / np.where(total > 0, total, 1.0)
    p = np.maximum(p, eps)
    return p / p.sum(axis=-1, keepdims=True)


def psi(reference: np.ndarray, current: np.ndarray, eps: float = DEFAULT_EPS) -> np.ndarray:
    """Population stability index between count vectors (the last axis is the category)."""
    r = shares(reference, eps)
    c = shares(current, eps)
    return np.asarray(((c - r) * np.log(c / r)).sum(axis=-1))


def js_distance(reference: np.ndarray, current: np.ndarray) -> np.ndarray:
    """Jensen–Shannon distance (base 2, in [0, 1]) between count vectors (last axis)."""
    r = shares(reference, 0.0)
    c = shares(current, 0.0)
    m = 0.5 * (r + c)

    def kl(p: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            terms = np.where(p > 0, p * np.log2(p / np.where(m > 0, m, 1.0)), 0.0)
        return terms.sum(axis=-1)

    return np.asarray(np.sqrt(np.clip(0.5 * kl(r) + 0.5 * kl(c), 0.0, 1.0)))


def chi2_statistic(reference: np.ndarray, current: np.ndarray) -> np.ndarray:
    """Pearson's chi-square statistic of the 2 x K table (last axis = category)."""
    ref = np.asarray(reference, dtype=np.float64)
    cur = np.asarray(current, dtype=np.float64)
    pooled = ref + cur
    n_ref = ref.sum(axis=-1, keepdims=True)
    n_cur = cur.sum(axis=-1, keepdims=True)
    total = n_ref + n_cur
    with np.errstate(divide="ignore", invalid="ignore"):
        e_ref = pooled * n_ref / total
        e_cur = pooled * n_cur / total
        t = np.where(e_ref > 0, (ref - e_ref) ** 2 / e_ref, 0.0) + np.where(
            e_cur > 0, (cur - e_cur) ** 2 / e_cur, 0.0
        )
    return np.asarray(t.sum(axis=-1))


@dataclass(frozen=True)
class LabelShift:
    """Predicted-label distribution of the current data against the reference."""

    psi: float
    js_distance: float
    chi2: float
    chi2_pvalue: float
    psi_null_quantile: float
    """PSI that random splits of the pooled data exceed with probability ``alpha``: the PSI
    that sampling noise alone reaches at these sample sizes."""
    js_null_quantile: float


def label_shift(
    reference: np.ndarray,
    current: np.ndarray,
    *,
    alpha: float = 0.001,
    n_simulations: int = 2000,
    seed: int = 0,
) -> LabelShift:
    """PSI, JS distance and a simulated chi-square test of two category count vectors.

    Under "no shift" both samples come from one distribution; given the pooled counts the
    current sample is then a multivariate hypergeometric draw of its size. Drawing it
    ``n_simulations`` times gives the null distribution of every statistic here, so the
    p-value and the noise quantiles are exact up to simulation error, whatever the counts.
    """
    ref = np.asarray(reference, dtype=np.int64)
    cur = np.asarray(current, dtype=np.int64)
    pooled = ref + cur
    n_cur = int(cur.sum())
    rng = np.random.default_rng(seed)
    sim_cur = rng.multivariate_hypergeometric(pooled, n_cur, size=n_simulations)
    sim_ref = pooled[None, :] - sim_cur
    observed = float(chi2_statistic(ref, cur))
    sim_chi2 = chi2_statistic(sim_ref, sim_cur)
    pvalue = (1.0 + float((sim_chi2 >= observed - 1e-9).sum())) / (n_simulations + 1.0)
    return LabelShift(
        psi=float(psi(ref, cur)),
        js_distance=float(js_distance(ref, cur)),
        chi2=observed,
        chi2_pvalue=pvalue,
        psi_null_quantile=float(np.quantile(psi(sim_ref, sim_cur), 1.0 - alpha)),
        js_null_quantile=float(np.quantile(js_distance(sim_ref, sim_cur), 1.0 - alpha)),
    )


def ks_test(reference: np.ndarray, current: np.ndarray) -> tuple[float, float]:
    """Two-sample Kolmogorov–Smirnov statistic and p-value."""
    result = stats.ks_2samp(np.asarray(reference), np.asarray(current))
    return float(result.statistic), float(result.pvalue)


def rate_change(n_ref: int, k_ref: int, n_cur: int, k_cur: int) -> tuple[float, float, float]:
    """(reference rate, current rate, Fisher exact p-value) of ``k`` events out of ``n``."""
    table = [[k_ref, n_ref - k_ref], [k_cur, n_cur - k_cur]]
    pvalue = float(stats.fisher_exact(table).pvalue) if n_ref and n_cur else 1.0
    return k_ref / max(n_ref, 1), k_cur / max(n_cur, 1), pvalue


@dataclass(frozen=True)
class Estimate:
    """A label-free estimate with a band that holds the realised value with ``level``."""

    value: float
    low: float
    high: float


def expected_accuracy(
    probs: np.ndarray,
    *,
    exclusive: bool,
    decided: np.ndarray | None = None,
    level: float = 0.95,
    top: np.ndarray | None = None,
) -> Estimate:
    """CBPE accuracy: the mean probability that each decision is right.

    Exclusive: the model's top label ``top`` (default: the argmax of ``probs``) is right
    with probability ``probs[i, top_i]``; the accuracy of ``n`` docs is a sum of
    independent Bernoulli draws, so the band is the normal approximation of that
    Poisson-binomial (variance ``sum p(1-p) / n^2``). ``top`` matters when ``probs`` were
    re-weighted to another label prior (:mod:`.prior_shift`): the decisions are still the
    model's, only the chance that each is right changed.
    Multi-label: the per-label (Hamming) accuracy of the 0/1 ``decided`` matrix.
    """
    probs = np.asarray(probs, dtype=np.float64)
    n = probs.shape[0]
    if n == 0:
        return Estimate(float("nan"), float("nan"), float("nan"))
    if exclusive:
        idx = probs.argmax(axis=1) if top is None else np.asarray(top, dtype=np.int64)
        p = probs[np.arange(n), idx]
    else:
        if decided is None:
            decided = probs >= 0.5
        p = np.where(np.asarray(decided, dtype=bool), probs, 1.0 - probs).ravel()
    value = float(p.mean())
    sd = float(np.sqrt((p * (1.0 - p)).sum()) / p.size)
    z = float(stats.norm.ppf(0.5 + level / 2.0))
    return Estimate(value, max(0.0, value - z * sd), min(1.0, value + z * sd))


def cbpe_macro_f1(probs: np.ndarray, decided: np.ndarray) -> float:
    """CBPE macro-F1 of the 0/1 ``decided`` matrix (the value of :func:`expected_macro_f1`).

    Per label, F1 of the expected confusion counts (NannyML): ``TP = sum_decided p``,
    ``FP = sum_decided (1 - p)``, ``FN = sum_not decided p``. The average runs over the
    labels the realised macro-F1 (:func:`realised_macro_f1`) counts, those decided or
    present in the gold labels: a decided label always counts; a label never decided has
    F1 0 and counts with the probability that it occurs at all, ``1 - prod(1 - p)``.
    (Averaging over every label instead, as when all labels occur, would put an F1 of 0
    for each label absent from a window whose mix has shifted to a few labels.)
    """
    probs = np.clip(np.asarray(probs, dtype=np.float64), 0.0, 1.0)
    dec = np.asarray(decided, dtype=bool)
    if probs.shape[0] == 0:
        return float("nan")
    tp = (probs * dec).sum(axis=0)
    fp = ((1.0 - probs) * dec).sum(axis=0)
    fn = (probs * ~dec).sum(axis=0)
    f1 = _f1(tp, fp, fn)
    with np.errstate(divide="ignore"):
        occurs = -np.expm1(np.log1p(-np.minimum(probs, 1.0 - 1e-12)).sum(axis=0))
    weight = np.where(dec.any(axis=0), 1.0, occurs)
    total = float(weight.sum())
    return float((f1 * weight).sum() / total) if total > 0 else float("nan")


def expected_macro_f1(
    probs: np.ndarray,
    decided: np.ndarray,
    *,
    exclusive: bool,
    n_draws: int = 200,
    level: float = 0.95,
    seed: int = 0,
) -> Estimate:
    """CBPE macro-F1 of the 0/1 ``decided`` matrix with a simulated band.

    The value is :func:`cbpe_macro_f1` (NannyML's estimator, averaged over the labels the
    realised macro-F1 counts). The band comes from drawing the
    unknown labels from the calibrated probabilities (one label per doc when exclusive,
    independent labels otherwise) ``n_draws`` times and taking the central ``level`` range
    of the realised macro-F1.
    """
    probs = np.asarray(probs, dtype=np.float64)
    dec = np.asarray(decided, dtype=bool)
    n, n_labels = probs.shape
    if n == 0:
        return Estimate(float("nan"), float("nan"), float("nan"))
    value = cbpe_macro_f1(probs, dec)
    rng = np.random.default_rng(seed)
    draws = np.empty(n_draws)
    if exclusive:
        cum = np.cumsum(probs / probs.sum(axis=1, keepdims=True), axis=1)
        cum[:, -1] = 1.0
        dec_f = dec.astype(np.float64)
        for d in range(n_draws):
            u = rng.random(n)
            y = (cum < u[:, None]).sum(axis=1)
            gold = np.zeros((n, n_labels))
            gold[np.arange(n), np.minimum(y, n_labels - 1)] = 1.0
            draws[d] = _draw_macro_f1(dec_f, gold)
    else:
        dec_f = dec.astype(np.float64)
        for d in range(n_draws):
            sampled = (rng.random(probs.shape) < probs).astype(np.float64)
            draws[d] = _draw_macro_f1(dec_f, sampled)
    lo, hi = np.nanquantile(draws, [0.5 - level / 2.0, 0.5 + level / 2.0])
    return Estimate(value, float(min(lo, value)), float(max(hi, value)))


def _draw_macro_f1(decided: np.ndarray, gold: np.ndarray) -> float:
    tp = (decided * gold).sum(axis=0)
    fp = (decided * (1.0 - gold)).sum(axis=0)
    fn = ((1.0 - decided) * gold).sum(axis=0)
    present = (tp + fn) > 0
    f1 = _f1(tp, fp, fn)
    return float(f1[present | ((tp + fp) > 0)].mean()) if f1.size else float("nan")


def _f1(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray) -> np.ndarray:
    denom = 2 * tp + fp + fn
    return np.where(denom > 0, 2 * tp / np.where(denom > 0, denom, 1.0), 0.0)


def realised_macro_f1(decided: np.ndarray, gold: np.ndarray) -> float:
    """Macro-F1 of 0/1 decisions against 0/1 gold, over labels that are gold or decided."""
    return _draw_macro_f1(np.asarray(decided, np.float64), np.asarray(gold, np.float64))

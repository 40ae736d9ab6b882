"""Calibration and classification metrics on plain NumPy arrays.

Conventions shared by the whole subpackage:

* ``probs`` is a float array (n_docs, n_labels) of scores in [0, 1]. For exclusive tasks
  its rows sum to 1.
* ``gold`` has the same shape and holds 0/1 values, or soft values in [0, 1]. Metrics
  count a gold value >= 0.5 as positive; for exclusive tasks the gold label of a doc is
  the argmax of its row (which must be >= 0.5).
* ``confidence`` / ``correct`` are 1-D arrays of the same length: a predicted probability
  and whether the prediction it belongs to was right (0/1 or bool).

Binning follows ``sklearn.calibration.calibration_curve``: a bin is the half-open interval
``(lower, upper]`` (the first one also holds exactly 0), so a confidence of 1.0 falls in the
top bin. ``"uniform"`` bins have equal width on [0, 1]; ``"quantile"`` bins have edges at the
quantiles of ``confidence``, so they hold about the same number of docs. Tied confidences
always share a bin, and empty bins are dropped.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from ..errors import DataError
from ..errors import Errors as MathsErrors
from .validation import (
    binarize,
    check_choice,
    check_probs,
    check_probs_gold,
    check_range,
    check_scores_targets,
    gold_index,
)

BinStrategy = Literal["uniform", "quantile"]


@dataclass(frozen=True)
class ReliabilityCurve:
    """Per-bin mean confidence, accuracy and size of a reliability diagram (empty bins dropped)."""

    bin_confidence: np.ndarray
    bin_accuracy: np.ndarray
    bin_count: np.ndarray


@dataclass(frozen=True)
class PRF:
    """Precision, recall, F1 and support per label, plus their macro and micro averages.

    Macro averages are unweighted means over all labels (labels without support count,
    with 0.0, as in ``sklearn.metrics.precision_recall_fscore_support``); micro averages
    pool the true/false positives of all labels. Any 0/0 is 0.0.
    """

    precision: np.ndarray
    recall: np.ndarray
    f1: np.ndarray
    support: np.ndarray
    macro_p: float
    macro_r: float
    macro_f: float
    micro_p: float
    micro_r: float
    micro_f: float


def bin_edges(confidence: np.ndarray, n_bins: int, strategy: BinStrategy) -> np.ndarray:
    """The ``n_bins + 1`` bin edges on [0, 1] for ``strategy`` (see the module docstring)."""
    check_range(n_bins, "n_bins", 1, np.inf)
    check_choice(strategy, "binning strategy", ("uniform", "quantile"))
    if strategy == "uniform":
        return np.linspace(0.0, 1.0, n_bins + 1)
    edges = np.quantile(confidence, np.linspace(0.0, 1.0, n_bins + 1))
    edges[0], edges[-1] = 0.0, 1.0
    return edges


def reliability_curve(
    confidence: np.ndarray,
    correct: np.ndarray,
    n_bins: int = 15,
    strategy: BinStrategy = "uniform",
) -> ReliabilityCurve:
    """Bin predictions by confidence and return each non-empty bin's confidence and accuracy.

    This is the data of a reliability diagram: a calibrated model has
    ``bin_accuracy == bin_confidence`` in every bin.
    """
    conf, corr = check_scores_targets(confidence, correct, "confidence", "correct")
    edges = bin_edges(conf, n_bins, strategy)
    bin_ids = np.searchsorted(edges[1:-1], conf, side="left")
    counts = np.bincount(bin_ids, minlength=n_bins)
    sum_conf = np.bincount(bin_ids, weights=conf, minlength=n_bins)
    sum_correct = np.bincount(bin_ids, weights=corr, minlength=n_bins)
    keep = counts > 0
    return ReliabilityCurve(
        bin_confidence=sum_conf[keep] / counts[keep],
        bin_accuracy=sum_correct[keep] / counts[keep],
        bin_count=counts[keep],
    )


def ece(
    confidence: np.ndarray,
    correct: np.ndarray,
    n_bins: int = 15,
    strategy: BinStrategy = "uniform",
) -> float:
    """Expected calibration error: bin-size-weighted mean of |accuracy - confidence|."""
    curve = reliability_curve(confidence, correct, n_bins, strategy)
    gaps = np.abs(curve.bin_accuracy - curve.bin_confidence)
    return float(np.sum(curve.bin_count * gaps) / np.sum(curve.bin_count))


def top_label_ece(
    probs: np.ndarray,
    gold: np.ndarray,
    n_bins: int = 15,
    strategy: BinStrategy = "uniform",
) -> float:
    """ECE of the top prediction: confidence = max prob, correct = that label is gold.

    For multi-label tasks this asks "when the model's most likely label has score p, is
    it a gold label a fraction p of the time?"; docs with several gold labels count as
    correct if the top label is any of them.
    """
    probs, gold = check_probs_gold(probs, gold)
    top = np.argmax(probs, axis=1)
    rows = np.arange(probs.shape[0])
    correct = binarize(gold[rows, top]).astype(np.float64)
    return ece(probs[rows, top], correct, n_bins, strategy)


def classwise_ece(
    probs: np.ndarray,
    gold: np.ndarray,
    n_bins: int = 15,
    strategy: BinStrategy = "quantile",
) -> float:
    """Mean over labels of the per-label ECE (confidence = prob of the label, correct = gold).

    This is the calibration error that matters for per-label thresholds and multi-label
    scores. Quantile bins are the default because most per-label scores crowd near 0.
    """
    probs, gold = check_probs_gold(probs, gold)
    positive = binarize(gold).astype(np.float64)
    per_label = [ece(probs[:, j], positive[:, j], n_bins, strategy) for j in range(probs.shape[1])]
    return float(np.mean(per_label))


def brier_score(probs: np.ndarray, gold: np.ndarray, exclusive: bool) -> float:
    """Brier score (lower is better).

    ``exclusive=True``: mean over docs of the sum over labels of (prob - one-hot gold)^2,
    the multi-class Brier score of Brier (1950) (range [0, 2]). ``exclusive=False``: mean
    over all doc-label pairs of (prob - gold)^2, i.e. the mean of the per-label binary Brier
    scores (range [0, 1]), so a multi-label score does not grow with the number of labels.
    """
    probs, gold = check_probs_gold(probs, gold)
    if exclusive:
        target = np.zeros_like(probs)
        target[np.arange(probs.shape[0]), gold_index(gold)] = 1.0
        return float(np.mean(np.sum((probs - target) ** 2, axis=1)))
    target = binarize(gold).astype(np.float64)
    return float(np.mean((probs - target) ** 2))


def log_loss(probs: np.ndarray, gold: np.ndarray, exclusive: bool, eps: float = 1e-12) -> float:
    """Negative log-likelihood of the gold labels (lower is better).

    ``exclusive=True``: categorical NLL, mean over docs of -log p(gold label).
    ``exclusive=False``: binary NLL averaged over all doc-label pairs. Probabilities are
    clipped to [eps, 1 - eps] so a confident mistake costs a large, finite amount.
    """
    probs, gold = check_probs_gold(probs, gold)
    eps = check_range(eps, "eps", 0.0, 0.5, low_open=True)
    clipped = np.clip(probs, eps, 1.0 - eps)
    if exclusive:
        gold_probs = clipped[np.arange(probs.shape[0]), gold_index(gold)]
        return float(-np.mean(np.log(gold_probs)))
    target = binarize(gold)
    return float(-np.mean(np.where(target, np.log(clipped), np.log1p(-clipped))))


def _safe_divide(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """Element-wise ``numerator / denominator`` with 0.0 wherever the denominator is 0."""
    numerator = np.asarray(numerator, dtype=np.float64)
    denominator = np.asarray(denominator, dtype=np.float64)
    out = np.zeros(np.broadcast(numerator, denominator).shape)
    np.divide(numerator, denominator, out=out, where=denominator > 0)
    return out


def prf_per_label(decisions: np.ndarray, gold: np.ndarray) -> PRF:
    """Precision, recall and F1 of 0/1 ``decisions`` (n_docs, n_labels) against ``gold``."""
    decided, gold = check_probs_gold(decisions, gold, "decisions")
    predicted = decided >= 0.5
    actual = binarize(gold)
    true_pos = np.sum(predicted & actual, axis=0)
    false_pos = np.sum(predicted & ~actual, axis=0)
    false_neg = np.sum(~predicted & actual, axis=0)
    precision = _safe_divide(true_pos, true_pos + false_pos)
    recall = _safe_divide(true_pos, true_pos + false_neg)
    f1 = _safe_divide(2 * true_pos, 2 * true_pos + false_pos + false_neg)
    tp, fp, fn = true_pos.sum(), false_pos.sum(), false_neg.sum()
    return PRF(
        precision=precision,
        recall=recall,
        f1=f1,
        support=actual.sum(axis=0),
        macro_p=float(precision.mean()),
        macro_r=float(recall.mean()),
        macro_f=float(f1.mean()),
        micro_p=float(_safe_divide(tp, tp + fp)),
        micro_r=float(_safe_divide(tp, tp + fn)),
        micro_f=float(_safe_divide(2 * tp, 2 * tp + fp + fn)),
    )


def decide(probs: np.ndarray, thresholds: np.ndarray | float) -> np.ndarray:
    """0/1 decisions ``probs >= threshold``, with one threshold per label or one for all."""
    probs = check_probs(probs)
    limits = np.asarray(thresholds, dtype=np.float64)
    if limits.ndim == 0:
        limits = np.full(probs.shape[1], float(limits))
    if limits.shape != (probs.shape[1],) or not np.all(np.isfinite(limits)):
        raise DataError(MathsErrors.E158.format(shape=limits.shape, n_labels=probs.shape[1]))
    return (probs >= limits[None, :]).astype(np.int64)


def macro_auc(probs: np.ndarray, gold: np.ndarray) -> float:
    """Mean ROC AUC over the labels whose gold column has both classes.

    Labels with only positives or only negatives have no defined AUC and are skipped;
    if no label qualifies the result is NaN (never an exception), so it can be logged.
    """
    # Imported here: scikit-learn (with SciPy and pandas) is seconds of import that the
    # serving and scoring processes, which load this module through the pipeline, never use.
    from sklearn.metrics import roc_auc_score

    probs, gold = check_probs_gold(probs, gold)
    actual = binarize(gold)
    aucs = [
        roc_auc_score(actual[:, j], probs[:, j])
        for j in range(probs.shape[1])
        if 0 < actual[:, j].sum() < actual.shape[0]
    ]
    return float(np.mean(aucs)) if aucs else float("nan")


def accuracy(probs: np.ndarray, gold: np.ndarray) -> float:
    """Fraction of docs whose argmax prob is the argmax gold label (exclusive tasks)."""
    probs, gold = check_probs_gold(probs, gold)
    return float(np.mean(np.argmax(probs, axis=1) == gold_index(gold)))

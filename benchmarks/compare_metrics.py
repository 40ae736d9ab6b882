"""Scores of one system on a test split, with decision rules applied alike to every system.

Every system in the comparison hands over the same thing: a probability matrix
(n_docs, n_labels) for dev and for test. The decision rules are fitted on dev only and
applied to test in exactly the same way for all systems, so no system wins by its
threshold policy:

* exclusive tasks: ``argmax``; and ``abstain`` (keep the top label only when its
  probability reaches the threshold tuned on dev to ``abstain_precision``; see
  :func:`textcat_kit.maths.thresholds.abstain_threshold`);
* multi-label tasks: ``0.5``; ``global (dev)``, the single threshold with the best dev
  macro-F1 (:func:`textcat_kit.maths.thresholds.best_global_threshold`); and
  ``per-label (dev)``, cross-fitted shrunk per-label thresholds
  (:func:`textcat_kit.maths.thresholds.tune_thresholds`, the decision component's
  defaults).

ECE: exclusive tasks use the top-label ECE, multi-label tasks the class-wise ECE, both
with 15 equal-width bins. Plain NumPy, no spaCy.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np

from textcat_kit.maths import metrics
from textcat_kit.maths.thresholds import abstain_threshold, best_global_threshold, tune_thresholds

ECE_BINS = 15
DEFAULT_ABSTAIN_PRECISION = 0.95

Rule = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class ScoreRow:
    """One line of the accuracy table: a system's scores under one decision rule on test.

    ``accuracy`` is the share of test docs whose decided label set equals the gold set
    (for exclusive tasks: the decided label is the gold label; an abstention counts as
    wrong). ``coverage`` is the share of docs that got at least one label and
    ``kept_precision`` the accuracy among them. ``ece`` belongs to the scores, not to
    the rule, and is repeated on every row of the same scores.
    """

    system: str
    scores: str
    rule: str
    accuracy: float
    macro_f: float
    micro_f: float
    ece: float
    coverage: float
    kept_precision: float
    setting: str = ""

    def to_dict(self) -> dict[str, float | str]:
        return asdict(self)


def calibration_error(probs: np.ndarray, gold: np.ndarray, exclusive: bool) -> float:
    """Top-label ECE (exclusive) or class-wise ECE (multi-label), 15 equal-width bins."""
    if exclusive:
        return metrics.top_label_ece(probs, gold, n_bins=ECE_BINS, strategy="uniform")
    return metrics.classwise_ece(probs, gold, n_bins=ECE_BINS, strategy="uniform")


def argmax_decisions(probs: np.ndarray) -> np.ndarray:
    """One-hot of the top label of each row."""
    decided = np.zeros(probs.shape, dtype=np.int64)
    if probs.shape[0]:
        decided[np.arange(probs.shape[0]), probs.argmax(axis=1)] = 1
    return decided


def abstain_decisions(probs: np.ndarray, threshold: float) -> np.ndarray:
    """One-hot of the top label where its probability reaches ``threshold``, else no label."""
    decided = argmax_decisions(probs)
    decided[probs.max(axis=1) < threshold] = 0
    return decided


def decision_scores(decided: np.ndarray, gold: np.ndarray) -> dict[str, float]:
    """Accuracy (exact label set), macro/micro F1, coverage and precision on covered docs."""
    prf = metrics.prf_per_label(decided, gold)
    positive = np.asarray(gold >= 0.5)
    chosen = np.asarray(decided >= 1)
    exact = np.asarray(np.all(chosen == positive, axis=1))
    covered = np.asarray(chosen.any(axis=1))
    n_docs = exact.shape[0]
    return {
        "accuracy": float(exact.mean()) if n_docs else 0.0,
        "macro_f": prf.macro_f,
        "micro_f": prf.micro_f,
        "coverage": float(covered.mean()) if n_docs else 0.0,
        "kept_precision": float(exact[covered].mean()) if covered.any() else 0.0,
    }


def fit_decision_rules(
    dev_probs: np.ndarray,
    dev_gold: np.ndarray,
    exclusive: bool,
    abstain_precision: float = DEFAULT_ABSTAIN_PRECISION,
) -> dict[str, tuple[Rule, str]]:
    """Decision rules fitted on dev: name -> (rule applied to test probs, fitted setting)."""
    if exclusive:
        top = dev_probs.max(axis=1)
        correct = dev_probs.argmax(axis=1) == dev_gold.argmax(axis=1)
        abstain = abstain_threshold(top, correct, abstain_precision).threshold
        return {
            "argmax": (argmax_decisions, ""),
            f"abstain (dev precision {abstain_precision:g})": (
                lambda probs: abstain_decisions(probs, abstain),
                f"threshold {abstain:.3f}",
            ),
        }
    global_t = best_global_threshold(dev_probs, dev_gold)
    labels = [str(j) for j in range(dev_probs.shape[1])]
    with warnings.catch_warnings():
        # Rare labels fall back to the global threshold with a warning; expected here.
        warnings.simplefilter("ignore", UserWarning)
        tuned = tune_thresholds(dev_probs, dev_gold, labels).as_array(labels)
    return {
        "0.5": (lambda probs: metrics.decide(probs, 0.5), ""),
        "global (dev)": (lambda probs: metrics.decide(probs, global_t), f"{global_t:.2f}"),
        "per-label (dev)": (
            lambda probs: metrics.decide(probs, tuned),
            f"median {float(np.median(tuned)):.2f}",
        ),
    }


def score_system(
    system: str,
    scores: str,
    dev_probs: np.ndarray,
    dev_gold: np.ndarray,
    test_probs: np.ndarray,
    test_gold: np.ndarray,
    exclusive: bool,
    abstain_precision: float = DEFAULT_ABSTAIN_PRECISION,
) -> list[ScoreRow]:
    """Rows of ``system``'s ``scores`` (e.g. "raw") under every dev-fitted decision rule."""
    ece = calibration_error(test_probs, test_gold, exclusive)
    rows = []
    rules = fit_decision_rules(dev_probs, dev_gold, exclusive, abstain_precision)
    for rule_name, (rule, setting) in rules.items():
        figures = decision_scores(rule(test_probs), test_gold)
        rows.append(_row(system, scores, rule_name, setting, ece, figures))
    return rows


def score_decided(
    system: str,
    scores: str,
    rule: str,
    test_probs: np.ndarray,
    decided: np.ndarray,
    test_gold: np.ndarray,
    exclusive: bool,
) -> ScoreRow:
    """The row of decisions a pipeline took itself (our decision component)."""
    return _row(
        system,
        scores,
        rule,
        "",
        calibration_error(test_probs, test_gold, exclusive),
        decision_scores(decided, test_gold),
    )


def _row(
    system: str, scores: str, rule: str, setting: str, ece: float, figures: dict[str, float]
) -> ScoreRow:
    return ScoreRow(
        system=system,
        scores=scores,
        rule=rule,
        accuracy=figures["accuracy"],
        macro_f=figures["macro_f"],
        micro_f=figures["micro_f"],
        ece=ece,
        coverage=figures["coverage"],
        kept_precision=figures["kept_precision"],
        setting=setting,
    )

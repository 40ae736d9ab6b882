"""Did the model learn anything? Checks run after training, in ``tune`` and in ``evaluate``.

A classifier that predicts the majority class for every text gets a tiny ECE and exits 0 like
any other run, so calibration figures alone can present a useless model as a success. These
checks look at what the scores *rank* and what the decisions *choose*, against baselines that
need no model at all:

- **single class**: the decisions pick the same label set for every doc while the gold data
  has several (argmax for exclusive tasks; the given decisions for multi-label ones);
- **no ranking signal**: a label's ROC AUC is not above 0.5 by more than the noise of a
  random ranking (two standard errors of the null AUC, Hanley & McNeil 1982); all labels
  together (the mean AUC against its own null) decide whether the whole model is degenerate;
- **below a trivial baseline**: the decided macro-F1 is not above the best of three rules
  that ignore the text: always the majority label, every label (multi-label), or labels
  drawn at random with their priors (expected macro-F1 = mean prior).

Pure NumPy; no spaCy. ``tune``, ``evaluate`` and ``textcat-kit train`` call :func:`diagnose`
and print its messages at the end of the run and store :meth:`Diagnosis.to_dict` in their
JSON output.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

from .errors import Warnings
from .maths import metrics
from .maths.thresholds import best_global_threshold

MIN_POSITIVES_FOR_AUC = 5
"""Labels with fewer gold positives (or negatives) are not judged on AUC: too noisy."""


@dataclass(frozen=True)
class Finding:
    """One coded problem: ``code`` (e.g. ``W004``), the affected labels, the message."""

    code: str
    message: str
    labels: list[str] = field(default_factory=list)
    degenerate: bool = False


@dataclass(frozen=True)
class Diagnosis:
    """What :func:`diagnose` found. ``degenerate`` means: do not use this model."""

    degenerate: bool
    findings: list[Finding]
    macro_f: float
    baseline_macro_f: float
    baseline_rule: str
    n_predicted_classes: int

    @property
    def messages(self) -> list[str]:
        return [finding.message for finding in self.findings]

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def _null_auc_se(n_pos: np.ndarray, n_neg: np.ndarray) -> np.ndarray:
    """Standard error of the AUC of a random ranking (Mann-Whitney U under H0)."""
    return np.sqrt((n_pos + n_neg + 1.0) / (12.0 * np.maximum(n_pos * n_neg, 1.0)))


def per_label_auc(probs: np.ndarray, actual: np.ndarray) -> np.ndarray:
    """ROC AUC per label from ranks (ties get mid-ranks); NaN where a class is missing."""
    n_docs, n_labels = probs.shape
    out = np.full(n_labels, np.nan)
    for j in range(n_labels):
        pos = actual[:, j]
        n_pos = int(pos.sum())
        n_neg = n_docs - n_pos
        if n_pos == 0 or n_neg == 0:
            continue
        order = np.argsort(probs[:, j], kind="mergesort")
        ranks = np.empty(n_docs, dtype=np.float64)
        sorted_scores = probs[order, j]
        # mid-ranks for ties
        _, first, counts = np.unique(sorted_scores, return_index=True, return_counts=True)
        mid = first + (counts - 1) / 2.0 + 1.0
        ranks[order] = np.repeat(mid, counts)
        out[j] = (ranks[pos].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg)
    return out


def _macro_f(decided: np.ndarray, actual: np.ndarray, present: np.ndarray) -> float:
    """Macro-F1 of 0/1 ``decided`` over the labels ``present`` in the gold data."""
    if not present.any() or not len(decided):
        return 0.0
    f1 = metrics.prf_per_label(decided.astype(np.float64), actual.astype(np.float64)).f1
    return float(f1[present].mean())


_GRID = np.linspace(0.01, 0.99, 99)


def _best_global_threshold(probs: np.ndarray, actual: np.ndarray) -> float:
    """The single threshold (on a fine grid) with the best macro-F1 on this data.

    Used for multi-label scores checked before any threshold was tuned: judging them at 0.5
    would call a model degenerate whose scores are merely low (many labels, rare positives).
    """
    if not len(probs) or not actual.any():
        return 0.5
    return best_global_threshold(probs, actual.astype(np.float64), grid=_GRID)


def trivial_baseline(actual: np.ndarray, exclusive: bool) -> tuple[float, str]:
    """Best macro-F1 (over labels present in ``actual``) of rules that ignore the text."""
    n_docs, n_labels = actual.shape
    present: np.ndarray = np.asarray(actual.any(axis=0))
    if n_docs == 0 or not present.any():
        return 0.0, "none"
    priors = actual.mean(axis=0)
    candidates: dict[str, float] = {}
    majority = np.zeros_like(actual)
    majority[:, int(priors.argmax())] = True
    candidates["always the majority label"] = _macro_f(majority, actual, present)
    candidates["labels at random with their priors (expected)"] = float(priors[present].mean())
    if not exclusive:
        candidates["every label for every text"] = _macro_f(np.ones_like(actual), actual, present)
    rule = max(candidates, key=lambda name: candidates[name])
    return candidates[rule], rule


def diagnose(
    probs: np.ndarray,
    gold: np.ndarray,
    labels: Sequence[str],
    exclusive: bool,
    decisions: np.ndarray | None = None,
    *,
    where: str = "dev",
) -> Diagnosis:
    """Check scores ``probs`` and 0/1 ``decisions`` (n_docs, n_labels) against ``gold``.

    ``decisions`` default to argmax (exclusive) or, for multi-label scores, the single global
    threshold that is best on this data (the most favourable reading of scores nobody has
    tuned yet). Macro averages run over the labels present in ``gold``. ``where`` names the
    data in messages.
    """
    probs = np.asarray(probs, dtype=np.float64)
    actual = np.asarray(gold, dtype=np.float64) >= 0.5
    n_docs, n_labels = probs.shape
    if decisions is None:
        if exclusive:
            decided = np.zeros_like(actual)
            if n_docs:
                decided[np.arange(n_docs), probs.argmax(axis=1)] = True
        else:
            decided = probs >= _best_global_threshold(probs, actual)
    else:
        decided = np.asarray(decisions) >= 0.5
    present: np.ndarray = np.asarray(actual.any(axis=0))
    findings: list[Finding] = []

    # 1. one class / one label set for every doc
    if exclusive and n_docs:
        predicted_sets = {int(j) for j in probs.argmax(axis=1)}
    else:
        predicted_sets = {row.tobytes() for row in decided}  # type: ignore[misc]
    n_predicted = len(predicted_sets)
    gold_sets = {row.tobytes() for row in actual}
    if n_docs >= 2 and n_predicted == 1 and len(gold_sets) > 1:
        if exclusive:
            only = labels[next(iter(predicted_sets))]  # type: ignore[index]
            what = f"'{only}' for every text"
        else:
            chosen = [labels[j] for j in np.nonzero(decided[0])[0]]
            what = f"the same labels {chosen} for every text"
        findings.append(
            Finding(
                "W004",
                Warnings.W004.format(where=where, n_docs=n_docs, what=what),
                degenerate=True,
            )
        )

    # 2. ranking signal per label and overall
    auc = per_label_auc(probs, actual)
    n_pos = actual.sum(axis=0).astype(np.float64)
    n_neg = n_docs - n_pos
    judged = (n_pos >= MIN_POSITIVES_FOR_AUC) & (n_neg >= MIN_POSITIVES_FOR_AUC) & ~np.isnan(auc)
    se = _null_auc_se(n_pos, n_neg)
    flat = judged & (auc - 0.5 < 2.0 * se)
    if judged.any():
        mean_auc = float(auc[judged].mean())
        mean_se = float(np.sqrt(np.sum(se[judged] ** 2)) / judged.sum())
        if mean_auc - 0.5 < 2.0 * mean_se:
            findings.append(
                Finding(
                    "W005",
                    Warnings.W005.format(
                        where=where, auc=mean_auc, n_labels=int(judged.sum()), limit=2.0 * mean_se
                    ),
                    degenerate=True,
                )
            )
        elif flat.any():
            flat_labels = [labels[j] for j in np.nonzero(flat)[0]]
            shown = ", ".join(f"{labels[j]} ({auc[j]:.2f})" for j in np.nonzero(flat)[0][:10])
            findings.append(
                Finding(
                    "W006",
                    Warnings.W006.format(
                        where=where,
                        n=len(flat_labels),
                        n_judged=int(judged.sum()),
                        shown=shown,
                        more=" …" if len(flat_labels) > 10 else "",
                    ),
                    labels=flat_labels,
                )
            )

    # 3. decided macro-F1 against rules that ignore the text
    macro_f = _macro_f(decided, actual, present)
    baseline, rule = trivial_baseline(actual, exclusive)
    if n_docs and present.sum() >= 2 and macro_f <= baseline + 1e-9:
        findings.append(
            Finding(
                "W007",
                Warnings.W007.format(where=where, macro_f=macro_f, baseline=baseline, rule=rule),
                degenerate=True,
            )
        )
    return Diagnosis(
        degenerate=any(f.degenerate for f in findings),
        findings=findings,
        macro_f=macro_f,
        baseline_macro_f=baseline,
        baseline_rule=rule,
        n_predicted_classes=n_predicted,
    )


def banner(diagnosis: Diagnosis) -> str:
    """The loud one-paragraph summary printed last and put at the top of report.md."""
    if not diagnosis.degenerate:
        return ""
    return Warnings.W008.format(
        reasons="; ".join(f.code for f in diagnosis.findings if f.degenerate)
    )

"""Decision thresholds: exact per-label search, a global threshold, and tuning that generalises.

A threshold ``t`` turns a score into a decision ``score >= t``. Every search here is exact:
on sorted scores, the counts of true and false positives for every distinct cut come from
cumulative sums (O(n log n)), and the chosen threshold is the midpoint between the lowest
accepted distinct score and the next lower one, so ``score >= t`` reproduces the chosen
decisions on the tuning data and sits in the middle of the gap on new data.

Why per-label tuning needs more than an exact search: the F1-optimal cut of a label with a
dozen positives is decided by one or two docs, and on new data it is mostly noise. On
GoEmotions (28 labels, 5,426 dev docs, rare labels with 13 dev positives) a naive
per-label search on dev has been seen to lose to the best single global threshold on
test. Which of the two wins depends on the model, though: with a TF-IDF + logistic
regression baseline the naive search can win clearly, because its labels' best cuts
really differ.
:func:`tune_thresholds` therefore estimates each label's threshold by cross-fitting,
shrinks it towards the global threshold by an amount chosen from the data in
proportion to the label's evidence, and falls back to the global threshold below a
minimum number of positives.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np

from ..errors import ConfigError, DataError, Errors, Warnings
from .validation import (
    binarize,
    check_choice,
    check_probs_gold,
    check_range,
    check_scores_targets,
)

Objective = Literal["f1", "fbeta", "recall_at_precision", "precision_at_recall"]
OBJECTIVES: tuple[str, ...] = ("f1", "fbeta", "recall_at_precision", "precision_at_recall")
CONSTRAINED_OBJECTIVES: tuple[str, ...] = ("recall_at_precision", "precision_at_recall")

#: Default candidates of :func:`best_global_threshold`: a coarse grid like ``spacy find-threshold``.
DEFAULT_GLOBAL_GRID = np.linspace(0.05, 0.95, 19)


@dataclass(frozen=True)
class ThresholdResult:
    """The threshold chosen by :func:`best_threshold` and what it achieves on the data.

    ``value`` is the objective at ``threshold`` (F-beta; recall for
    ``recall_at_precision``; precision for ``precision_at_recall``). ``feasible`` is False
    when a constrained objective's target could not be met; the threshold is then the
    best effort (highest precision, resp. highest recall).
    """

    threshold: float
    value: float
    precision: float
    recall: float
    n_positives: int
    feasible: bool


@dataclass(frozen=True)
class CutCounts:
    """True / false positives of every distinct cut of a score column, highest cut first.

    Index 0 accepts nothing; index i accepts the i highest distinct scores; the last
    index accepts everything. ``thresholds[i]`` reproduces cut i with ``score >= t``;
    ``distinct_scores[i - 1]`` is the lowest score cut i accepts.
    """

    thresholds: np.ndarray
    distinct_scores: np.ndarray
    true_pos: np.ndarray
    false_pos: np.ndarray
    n_positives: int


def _midpoints(high: np.ndarray, low: np.ndarray) -> np.ndarray:
    """Thresholds in (low, high]: the midpoints, or ``high`` where the two are adjacent floats."""
    mid = (high + low) / 2.0
    return np.where((low < mid) & (mid <= high), mid, high)


def _cut_thresholds(distinct_desc: np.ndarray) -> np.ndarray:
    """Thresholds for "accept none", then each distinct score (descending) as lowest accepted.

    Interior cuts use midpoints; "accept all" uses the midpoint to 0 and "accept none"
    the midpoint to 1 (or just above 1), as if 0 and 1 were the next candidates.
    """
    top = distinct_desc[:1]
    accept_none = _midpoints(np.ones(1), top) if top[0] < 1.0 else np.nextafter(np.ones(1), 2.0)
    lower = np.append(distinct_desc[1:], 0.0)
    return np.concatenate([accept_none, _midpoints(distinct_desc, lower)])


def cut_counts(scores: np.ndarray, positive: np.ndarray) -> CutCounts:
    """Exact TP/FP counts for every distinct cut of ``scores`` (1-D) against bool ``positive``."""
    order = np.argsort(-scores, kind="stable")
    sorted_scores = scores[order]
    sorted_pos = positive[order].astype(np.int64)
    group_ends = np.append(np.flatnonzero(np.diff(sorted_scores) != 0), sorted_scores.size - 1)
    true_pos = np.concatenate([[0], np.cumsum(sorted_pos)[group_ends]])
    accepted = np.concatenate([[0], group_ends + 1])
    distinct_scores = sorted_scores[group_ends]
    return CutCounts(
        thresholds=_cut_thresholds(distinct_scores),
        distinct_scores=distinct_scores,
        true_pos=true_pos,
        false_pos=accepted - true_pos,
        n_positives=int(sorted_pos.sum()),
    )


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """Element-wise ratio with 0.0 where the denominator is 0 (the zero-division rule)."""
    numerator = np.asarray(numerator, dtype=np.float64)
    denominator = np.asarray(denominator, dtype=np.float64)
    out = np.zeros(np.broadcast(numerator, denominator).shape)
    np.divide(numerator, denominator, out=out, where=denominator > 0)
    return out


def fbeta_from_counts(
    true_pos: np.ndarray, false_pos: np.ndarray, n_positives: float | np.ndarray, beta: float
) -> np.ndarray:
    """F-beta from counts: (1+b²)TP / ((1+b²)TP + b²FN + FP), 0.0 when undefined."""
    beta2 = beta * beta
    false_neg = np.asarray(n_positives) - true_pos
    return _ratio(
        (1.0 + beta2) * true_pos, (1.0 + beta2) * true_pos + beta2 * false_neg + false_pos
    )


def _check_objective(objective: str, beta: float, target: float | None) -> float | None:
    check_choice(objective, "threshold objective", OBJECTIVES)
    check_range(beta, "beta", 0.0, np.inf, low_open=True)
    if objective in CONSTRAINED_OBJECTIVES:
        if target is None:
            raise ConfigError(
                Errors.E154.format(
                    name="target",
                    value=None,
                    rule=f"objective '{objective}' needs a target in [0, 1]",
                )
            )
        return check_range(target, "target", 0.0, 1.0)
    return None


def _select(
    counts: CutCounts, objective: str, beta: float, target: float | None
) -> ThresholdResult:
    """Pick the best cut of ``counts`` for ``objective`` (ties: highest threshold)."""
    tp, fp = counts.true_pos, counts.false_pos
    precision = _ratio(tp, tp + fp)
    recall = _ratio(tp, np.full(tp.shape, counts.n_positives))
    feasible = True
    if objective in ("f1", "fbeta"):
        values = fbeta_from_counts(tp, fp, counts.n_positives, 1.0 if objective == "f1" else beta)
        index = int(np.argmax(values))
    else:
        assert target is not None
        if objective == "recall_at_precision":
            ok = (tp + fp > 0) & (precision >= target)
            primary, secondary = recall, precision
        else:
            ok = recall >= target
            primary, secondary = precision, recall
        feasible = bool(ok.any())
        if not feasible:
            # Best effort: the closest one can get to the constraint, then the objective.
            primary, secondary = secondary, primary
            ok = np.ones_like(ok)
        # np.lexsort sorts by the last key first; -index makes ties pick the highest cut.
        candidates = np.flatnonzero(ok)
        keys = (-candidates, secondary[candidates], primary[candidates])
        index = int(candidates[np.lexsort(keys)[-1]])
        values = recall if objective == "recall_at_precision" else precision
    return ThresholdResult(
        threshold=float(counts.thresholds[index]),
        value=float(values[index]),
        precision=float(precision[index]),
        recall=float(recall[index]),
        n_positives=counts.n_positives,
        feasible=feasible,
    )


def best_threshold(
    scores: np.ndarray,
    y: np.ndarray,
    objective: Objective = "f1",
    beta: float = 1.0,
    target: float | None = None,
) -> ThresholdResult:
    """The exact best threshold of one label's ``scores`` against gold ``y`` (>= 0.5 positive).

    Objectives: ``"f1"``; ``"fbeta"`` (F-beta with ``beta``; beta > 1 favours recall);
    ``"recall_at_precision"`` (highest recall with precision >= ``target``);
    ``"precision_at_recall"`` (highest precision with recall >= ``target``). Ties go to the
    highest threshold (fewest positive decisions).
    """
    scores, y = check_scores_targets(scores, y)
    target = _check_objective(objective, beta, target)
    return _select(cut_counts(scores, binarize(y)), objective, beta, target)


def _macro_fbeta_curve(
    probs: np.ndarray, positive: np.ndarray, thresholds: np.ndarray, beta: float
) -> np.ndarray:
    """Macro F-beta over labels at each of ``thresholds`` (exact, via sorted scores)."""
    total = np.zeros(thresholds.shape[0])
    n_docs = probs.shape[0]
    for j in range(probs.shape[1]):
        order = np.argsort(probs[:, j], kind="stable")
        sorted_scores = probs[order, j]
        cum_pos = np.concatenate([[0], np.cumsum(positive[order, j])])
        n_below = np.searchsorted(sorted_scores, thresholds, side="left")
        true_pos = cum_pos[-1] - cum_pos[n_below]
        false_pos = (n_docs - n_below) - true_pos
        total += fbeta_from_counts(true_pos, false_pos, int(cum_pos[-1]), beta)
    return total / probs.shape[1]


def best_global_threshold(
    probs: np.ndarray,
    gold: np.ndarray,
    grid: np.ndarray | Literal["exact"] | None = None,
    beta: float = 1.0,
) -> float:
    """The single threshold for all labels that maximises macro F-beta (default F1).

    ``grid`` lists the candidate thresholds (default ``np.linspace(0.05, 0.95, 19)``, the
    kind of grid ``spacy find-threshold`` scans); ``"exact"`` searches every distinct cut of
    all scores, placed at midpoints as in :func:`best_threshold`. Ties go to the lowest
    threshold.
    """
    probs, gold = check_probs_gold(probs, gold)
    check_range(beta, "beta", 0.0, np.inf, low_open=True)
    if grid is None:
        candidates = DEFAULT_GLOBAL_GRID
    elif isinstance(grid, str):
        check_choice(grid, "grid", ("exact",))
        candidates = _cut_thresholds(np.unique(probs)[::-1])[::-1]
    else:
        candidates = np.asarray(grid, dtype=np.float64)
        if candidates.ndim != 1 or candidates.size == 0 or not np.all(np.isfinite(candidates)):
            raise ConfigError(
                Errors.E154.format(
                    name="grid", value=candidates.shape, rule="pass a non-empty 1-D array"
                )
            )
    curve = _macro_fbeta_curve(probs, binarize(gold), candidates, beta)
    return float(candidates[int(np.argmax(curve))])


# --- per-label tuning that generalises -----------------------------------------------------

#: Candidate shrinkage strengths k for ``shrinkage="auto"`` (inf = use the global threshold).
SHRINKAGE_GRID: tuple[float, ...] = (0.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, np.inf)


@dataclass
class LabelThreshold:
    """How one label's threshold was chosen (all thresholds apply as ``score >= t``).

    ``raw`` is the label's own estimate (mean of the fold-optimal thresholds, or the
    exact optimum when ``n_folds == 1``; NaN when the label fell back), ``weight`` the
    share of ``raw`` in ``final = weight * raw + (1 - weight) * global``, ``fallback``
    why the label uses the global threshold (None if it does not), and ``feasible``
    whether ``final`` meets a constrained objective's target on the tuning data.
    """

    n_positives: int
    raw: float
    weight: float
    final: float
    fallback: str | None = None
    feasible: bool = True
    fold_thresholds: list[float] = field(default_factory=list)


@dataclass
class TunedThresholds:
    """Per-label thresholds from :func:`tune_thresholds`, with how each was obtained.

    ``shrinkage_k`` is the shrinkage strength used (chosen by cross-validation when the
    setting was ``"auto"``; ``inf`` means every label uses ``global_threshold``).
    """

    thresholds: dict[str, float]
    global_threshold: float
    shrinkage_k: float
    objective: str
    beta: float
    target: float | None
    per_label: dict[str, LabelThreshold]
    settings: dict[str, Any] = field(default_factory=dict)

    def as_array(self, labels: Sequence[str]) -> np.ndarray:
        """Thresholds in the column order of ``labels`` (for :func:`..metrics.decide`)."""
        missing = [label for label in labels if label not in self.thresholds]
        if missing:
            raise ConfigError(
                Errors.E154.format(
                    name="labels",
                    value=missing,
                    rule=f"no tuned threshold for these labels (tuned: {list(self.thresholds)})",
                )
            )
        return np.array([self.thresholds[label] for label in labels], dtype=np.float64)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe state (an infinite ``shrinkage_k`` is written as the string "inf")."""
        data = asdict(self)
        data["shrinkage_k"] = _float_to_json(self.shrinkage_k)
        data["settings"] = {
            key: _float_to_json(value) if isinstance(value, float) else value
            for key, value in self.settings.items()
        }
        for info in data["per_label"].values():
            info["raw"] = _float_to_json(info["raw"])
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TunedThresholds:
        """Restore from :meth:`to_dict` output."""
        per_label = {
            str(label): LabelThreshold(
                n_positives=int(info["n_positives"]),
                raw=float(info["raw"]),
                weight=float(info["weight"]),
                final=float(info["final"]),
                fallback=None if info.get("fallback") is None else str(info["fallback"]),
                feasible=bool(info.get("feasible", True)),
                fold_thresholds=[float(t) for t in info.get("fold_thresholds", [])],
            )
            for label, info in data["per_label"].items()
        }
        target = data.get("target")
        settings = dict(data.get("settings", {}))
        if isinstance(settings.get("shrinkage"), str) and settings["shrinkage"] != "auto":
            settings["shrinkage"] = float(settings["shrinkage"])
        return cls(
            thresholds={str(k): float(v) for k, v in data["thresholds"].items()},
            global_threshold=float(data["global_threshold"]),
            shrinkage_k=float(data["shrinkage_k"]),
            objective=str(data["objective"]),
            beta=float(data["beta"]),
            target=None if target is None else float(target),
            per_label=per_label,
            settings=settings,
        )


def _float_to_json(value: float) -> float | str:
    """Floats as JSON allows them: inf and NaN become the strings "inf" / "nan"."""
    return float(value) if np.isfinite(value) else str(float(value))


def shrinkage_weight(n_positives: int | np.ndarray, k: float) -> np.ndarray:
    """The weight ``n_pos / (n_pos + k)`` of a label's own threshold (0 for k = inf)."""
    n_pos = np.asarray(n_positives, dtype=np.float64)
    if np.isinf(k):
        return np.zeros_like(n_pos)
    return _ratio(n_pos, n_pos + k)


def shrink_threshold(raw: float, global_threshold: float, n_positives: int, k: float) -> float:
    """``w * raw + (1 - w) * global`` with ``w = n_pos / (n_pos + k)``: evidence-weighted."""
    weight = float(shrinkage_weight(n_positives, k))
    return weight * raw + (1.0 - weight) * global_threshold


def stratified_folds(positive: np.ndarray, n_folds: int, rng: np.random.Generator) -> np.ndarray:
    """Fold id (0..n_folds-1) per doc, dealing positives and negatives out round-robin.

    Stratifying keeps the few positives of a rare label spread over all folds, so every
    training part holds about (n_folds - 1) / n_folds of them.
    """
    fold_ids = np.empty(positive.shape[0], dtype=np.int64)
    for members in (np.flatnonzero(positive), np.flatnonzero(~positive)):
        fold_ids[rng.permutation(members)] = np.arange(members.size) % n_folds
    return fold_ids


def _global_threshold(
    probs: np.ndarray, positive: np.ndarray, objective: str, beta: float, target: float | None
) -> float:
    """The shrinkage target: macro-F-beta optimum, or the pooled optimum if constrained."""
    if objective in CONSTRAINED_OBJECTIVES:
        counts = cut_counts(probs.ravel(), positive.ravel())
        return _select(counts, objective, beta, target).threshold
    return best_global_threshold(probs, positive, "exact", beta if objective == "fbeta" else 1.0)


def _oof_quality(
    decisions: np.ndarray, positive: np.ndarray, objective: str, beta: float, target: float | None
) -> tuple[float, float]:
    """(meets constraint, objective value) of out-of-fold decisions of one label."""
    tp = float(np.sum(decisions & positive))
    fp = float(np.sum(decisions & ~positive))
    n_pos = float(np.sum(positive))
    if objective in ("f1", "fbeta"):
        b = 1.0 if objective == "f1" else beta
        return 1.0, float(fbeta_from_counts(np.array(tp), np.array(fp), n_pos, b))
    precision = float(_ratio(np.array(tp), np.array(tp + fp)))
    recall = float(_ratio(np.array(tp), np.array(n_pos)))
    assert target is not None
    if objective == "recall_at_precision":
        return float(tp + fp > 0 and precision >= target), recall
    return float(recall >= target), precision


@dataclass(frozen=True)
class _CrossFit:
    """One label's fold assignment, fold-optimal thresholds and training-part positives."""

    fold_ids: np.ndarray
    thresholds: np.ndarray
    train_positives: np.ndarray


def _cross_fit(
    scores: np.ndarray,
    positive: np.ndarray,
    n_folds: int,
    rng: np.random.Generator,
    objective: str,
    beta: float,
    target: float | None,
) -> _CrossFit:
    """The best threshold of each training part (all folds but one) of one label."""
    fold_ids = stratified_folds(positive, n_folds, rng)
    masks = [fold_ids != fold for fold in range(n_folds)]
    thresholds = [
        _select(cut_counts(scores[mask], positive[mask]), objective, beta, target).threshold
        for mask in masks
    ]
    return _CrossFit(
        fold_ids=fold_ids,
        thresholds=np.array(thresholds),
        train_positives=np.array([positive[mask].sum() for mask in masks]),
    )


def _choose_shrinkage(
    probs: np.ndarray,
    positive: np.ndarray,
    fits: dict[int, _CrossFit],
    global_t: float,
    objective: str,
    beta: float,
    target: float | None,
) -> float:
    """The ``k`` of :data:`SHRINKAGE_GRID` with the best pooled out-of-fold objective.

    Each doc of label j is decided with the threshold fitted without its fold, shrunk
    with ``k`` by the training part's positives. Keys compare (labels meeting a
    constraint, mean objective); ties go to the larger, more cautious ``k``.
    """
    best_key: tuple[float, float] | None = None
    best_k = np.inf
    for k in SHRINKAGE_GRID:
        qualities = []
        for j, fit in fits.items():
            weights = shrinkage_weight(fit.train_positives, k)
            fold_final = weights * fit.thresholds + (1.0 - weights) * global_t
            decisions = probs[:, j] >= fold_final[fit.fold_ids]
            qualities.append(_oof_quality(decisions, positive[:, j], objective, beta, target))
        met, values = zip(*qualities, strict=True) if qualities else ((0.0,), (0.0,))
        key = (float(np.sum(met)), float(np.mean(values)))
        if best_key is None or key >= best_key:
            best_key, best_k = key, k
    return float(best_k)


def _check_tuning_settings(min_positives: int, shrinkage: float | str | None, n_folds: int) -> int:
    """Validate the settings of :func:`tune_thresholds`; return ``n_folds`` as an int."""
    check_range(min_positives, "min_positives", 1, np.inf)
    check_range(n_folds, "n_folds", 1, np.inf)
    if isinstance(shrinkage, str):
        check_choice(shrinkage, "shrinkage", ("auto",))
        if n_folds < 2:
            raise ConfigError(
                Errors.E154.format(
                    name="n_folds",
                    value=n_folds,
                    rule="shrinkage='auto' chooses k by cross-validation and needs n_folds >= 2",
                )
            )
    elif shrinkage is not None:
        check_range(shrinkage, "shrinkage", 0.0, np.inf, allow_inf=True)
    return int(n_folds)


def tune_thresholds(
    probs: np.ndarray,
    gold: np.ndarray,
    labels: Sequence[str],
    objective: Objective = "f1",
    beta: float = 1.0,
    target: float | None = None,
    min_positives: int = 10,
    shrinkage: float | Literal["auto"] | None = "auto",
    n_folds: int = 5,
    seed: int = 0,
) -> TunedThresholds:
    """Per-label thresholds that hold up on new data, not just on the tuning data.

    The exact per-label optimum on the tuning data (dev) is an argmax over a step
    function that a couple of docs decide for a rare label, so it overfits (see the
    module docstring). Three remedies, all on by default:

    1. **Cross-fitting.** Docs are split into ``n_folds`` folds, stratified per label;
       the label's threshold is searched on each training part (all folds but one)
       and ``raw`` is the mean of those fold-optimal thresholds. Averaging estimates
       from perturbed data (bagging) cuts the variance of the argmax, and the
       held-out folds give honest predictions for step 2. We chose this over
       smoothing the F1 curve because it needs no bandwidth and works the same for
       every objective. ``n_folds=1`` uses the exact optimum on all data instead.
    2. **Shrinkage** towards the global threshold ``g`` (the macro-F-beta optimum over
       all labels; for constrained objectives, the optimum with all labels pooled):
       ``final = w * raw + (1 - w) * g`` with ``w = n_pos / (n_pos + k)``, so a label
       moves away from ``g`` only as far as its evidence allows. ``shrinkage`` is
       ``k``; ``"auto"`` picks ``k`` from :data:`SHRINKAGE_GRID` (0 = no shrinkage
       ... inf = all global) by the cross-validated objective: each label's held-out
       fold is decided with the threshold from its training part, shrunk with that
       ``k``, and the pooled out-of-fold macro objective decides (for constrained
       objectives: most labels meeting the target, then the mean objective; ties go
       to the larger ``k``). A fixed ``k`` would be wrong for some model: when the
       labels' best cuts differ (calibrated scores of labels with different F1), a
       strong pull towards ``g`` costs more than it saves; when they agree, only a
       strong pull removes the noise. ``g`` itself is fitted once on all tuning
       data; it is a single number from all doc-label pairs, so the leak into the
       held-out folds is negligible. ``None`` disables shrinkage.
    3. **Fallback.** A label with fewer than ``min_positives`` positives gets ``g``
       and a ``[W001]`` warning that names it.

    ``probs`` / ``gold`` are (n_docs, n_labels), ``labels`` names the columns.
    """
    probs, gold = check_probs_gold(probs, gold)
    n_labels = probs.shape[1]
    if len(labels) != n_labels:
        raise DataError(
            Errors.E157.format(
                labels_name="labels", n_names=len(labels), name="probs", n_labels=n_labels
            )
        )
    target = _check_objective(objective, beta, target)
    n_folds = _check_tuning_settings(min_positives, shrinkage, n_folds)
    positive = binarize(gold)
    rng = np.random.default_rng(seed)
    global_t = _global_threshold(probs, positive, objective, beta, target)
    n_pos_all = positive.sum(axis=0)

    fits: dict[int, _CrossFit] = {}
    raw = np.full(n_labels, np.nan)
    for j in (int(i) for i in np.flatnonzero(n_pos_all >= min_positives)):
        if n_folds == 1:
            counts = cut_counts(probs[:, j], positive[:, j])
            raw[j] = _select(counts, objective, beta, target).threshold
        else:
            fits[j] = _cross_fit(probs[:, j], positive[:, j], n_folds, rng, objective, beta, target)
            raw[j] = float(np.mean(fits[j].thresholds))
    if shrinkage == "auto":
        k_used = _choose_shrinkage(probs, positive, fits, global_t, objective, beta, target)
    else:
        k_used = 0.0 if shrinkage is None else float(shrinkage)

    per_label: dict[str, LabelThreshold] = {}
    for j, label in enumerate(labels):
        n_pos = int(n_pos_all[j])
        if np.isnan(raw[j]):
            weight, final = 0.0, global_t
            fallback = f"{n_pos} positive(s) < min_positives={min_positives}"
            warnings.warn(
                Warnings.W001.format(
                    label=label, n_pos=n_pos, min_pos=min_positives, global_t=global_t
                ),
                UserWarning,
                stacklevel=2,
            )
        else:
            weight = float(shrinkage_weight(n_pos, k_used))
            final = shrink_threshold(float(raw[j]), global_t, n_pos, k_used)
            fallback = None
        decisions = probs[:, j] >= final
        feasible = _oof_quality(decisions, positive[:, j], objective, beta, target)[0]
        per_label[label] = LabelThreshold(
            n_positives=n_pos,
            raw=float(raw[j]),
            weight=weight,
            final=float(final),
            fallback=fallback,
            feasible=bool(feasible),
            fold_thresholds=[float(t) for t in fits[j].thresholds] if j in fits else [],
        )
    return TunedThresholds(
        thresholds={label: info.final for label, info in per_label.items()},
        global_threshold=float(global_t),
        shrinkage_k=float(k_used),
        objective=objective,
        beta=float(beta),
        target=target,
        per_label=per_label,
        settings={
            "min_positives": int(min_positives),
            "shrinkage": shrinkage,
            "n_folds": n_folds,
            "seed": int(seed),
        },
    )


# --- abstention ("route to a person") for exclusive tasks ----------------------------------


@dataclass(frozen=True)
class AbstainResult:
    """Confidence threshold below which a doc goes to a person, and what it achieves.

    ``precision`` is the accuracy among the docs kept (``top_prob >= threshold``) and
    ``coverage`` their share of all docs. ``feasible`` is False when no threshold reaches
    the target; the threshold then keeps the most accurate non-empty set.
    """

    threshold: float
    precision: float
    coverage: float
    feasible: bool


def coverage_accuracy_curve(
    top_probs: np.ndarray, correct: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(coverage, accuracy, thresholds) for every distinct confidence, coverage increasing.

    ``thresholds[i]`` is the lowest kept confidence: keeping ``top_prob >= thresholds[i]``
    keeps a share ``coverage[i]`` of the docs, of which a share ``accuracy[i]`` is correct.
    """
    scores, hits = check_scores_targets(top_probs, correct, "top_probs", "correct")
    counts = cut_counts(scores, binarize(hits))
    kept = (counts.true_pos + counts.false_pos)[1:]
    return kept / scores.shape[0], counts.true_pos[1:] / kept, counts.distinct_scores


def abstain_threshold(
    top_probs: np.ndarray, correct: np.ndarray, target_precision: float
) -> AbstainResult:
    """The smallest confidence threshold whose kept docs are at least ``target_precision`` right.

    For exclusive tasks: keep the model's answer when ``top_prob >= threshold`` and route
    the rest to a person. Among all thresholds meeting the target this one keeps the
    most docs. The threshold is the lowest kept confidence itself (not a midpoint), the
    conservative choice for a precision promise on new data.
    """
    target_precision = check_range(target_precision, "target_precision", 0.0, 1.0)
    coverage, precision, thresholds = coverage_accuracy_curve(top_probs, correct)
    ok = precision >= target_precision
    feasible = bool(ok.any())
    if feasible:
        index = int(np.flatnonzero(ok)[-1])
    else:
        # Highest accuracy; among equals the largest coverage.
        index = int(np.lexsort((coverage, precision))[-1])
    return AbstainResult(
        threshold=float(thresholds[index]),
        precision=float(precision[index]),
        coverage=float(coverage[index]),
        feasible=feasible,
    )

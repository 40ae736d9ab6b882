"""Confident learning: which given labels are probably wrong, from out-of-fold probabilities.

Implements the method of Northcutt, Jiang & Chuang, "Confident Learning: Estimating
Uncertainty in Dataset Labels", JAIR 70 (2021), from the paper (no cleanlab code or
dependency). Inputs are out-of-fold predicted probabilities (each doc scored by a model
that did not train on it) and the given labels; nothing here imports spaCy.

Exclusive classes (one label per doc):

1. Per-class thresholds ``t_j`` = the mean predicted probability of class ``j`` over the
   docs whose given label is ``j`` (the model's average self-confidence on that class).
2. The confident joint ``C[i, j]``: docs with given label ``i`` whose probability of ``j``
   reaches ``t_j`` (when several classes do, the most probable of them); docs where no
   class reaches its threshold are not counted. Its rows are then calibrated so they sum
   to the number of docs given each label, and normalised into the joint ``Q``.
3. Pruning by noise rate: for every off-diagonal ``(i, j)``, the ``round(n * Q[i, j])`` docs
   given ``i`` with the largest margin ``p_j - p_i`` are issues. A doc whose argmax is its
   given label is never an issue (the model agrees with the label).
4. Ranking: ``self_confidence`` (``p_given``, lowest first) or ``normalized_margin``
   (``p_given - max_{j != given} p_j``, lowest first).

Multi-label: every label is its own binary problem (given / not given) and the same
steps run per label on the columns ``[1 - p_j, p_j]``. The unit of an issue is a
``(doc, label)`` pair; a doc's quality is its worst pair's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from ..errors import DataError, Errors
from .validation import check_choice, check_probs, check_range

RankBy = Literal["self_confidence", "normalized_margin"]
FilterBy = Literal["prune_by_noise_rate", "confident_joint", "both"]
RANK_BY: tuple[str, ...] = ("self_confidence", "normalized_margin")
FILTER_BY: tuple[str, ...] = ("prune_by_noise_rate", "confident_joint", "both")


@dataclass(frozen=True)
class ConfidentJoint:
    """The confident joint of given (rows) and estimated true (columns) labels.

    ``counts`` is the raw count matrix, ``calibrated`` its rows rescaled to the number of
    docs given each label, ``joint`` the calibrated matrix normalised to sum to 1 and
    ``thresholds`` the per-class thresholds ``t_j``. ``true_estimate`` is the column a doc
    was counted in (-1 when no class reached its threshold).
    """

    thresholds: np.ndarray
    counts: np.ndarray
    calibrated: np.ndarray
    joint: np.ndarray
    true_estimate: np.ndarray

    def noise_rate(self) -> float:
        """Estimated share of docs whose given label is wrong (off-diagonal mass of ``joint``)."""
        return float(1.0 - np.trace(self.joint))


@dataclass(frozen=True)
class ExclusiveIssues:
    """Ranked issues of an exclusive task.

    ``order`` holds the indices of the docs judged issues, most likely wrong first;
    ``quality`` the label quality of every doc (lower = more likely wrong; in [0, 1] for
    self-confidence, in [-1, 1] for the margin); ``suggested`` every doc's most probable
    label other than its given one.
    """

    order: np.ndarray
    is_issue: np.ndarray
    quality: np.ndarray
    suggested: np.ndarray
    joint: ConfidentJoint
    rank_by: str


@dataclass(frozen=True)
class MultilabelIssues:
    """Ranked (doc, label) issues of a multi-label task.

    ``pairs`` is an (n_issues, 2) array of (doc, label) indices, most likely wrong first;
    ``pair_quality`` the quality of every (doc, label) pair (n_docs, n_labels);
    ``doc_order`` the docs with at least one issue, worst first, and ``doc_quality`` every
    doc's worst pair quality among its issues (1.0 for a doc without issues).
    """

    pairs: np.ndarray
    is_issue: np.ndarray
    pair_quality: np.ndarray
    doc_order: np.ndarray
    doc_quality: np.ndarray
    joints: list[ConfidentJoint]
    rank_by: str


def check_given_index(probs: np.ndarray, given: np.ndarray) -> np.ndarray:
    """Validate exclusive given labels: one int index per row of ``probs`` (raises E400)."""
    given = np.asarray(given)
    n_labels = probs.shape[1]
    ok = (
        given.ndim == 1
        and given.shape[0] == probs.shape[0]
        and (given.size == 0 or np.issubdtype(given.dtype, np.integer))
    )
    if ok and given.size:
        ok = bool(given.min() >= 0 and given.max() < n_labels)
    if not ok:
        low = given.min() if given.size else "-"
        high = given.max() if given.size else "-"
        raise DataError(
            Errors.E400.format(n_labels=n_labels, shape=given.shape, low=low, high=high)
        )
    return given.astype(np.int64)


def per_class_thresholds(probs: np.ndarray, given: np.ndarray) -> np.ndarray:
    """``t_j``: mean probability of class ``j`` over the docs given ``j``.

    A class nobody was given gets threshold 1.0 + eps (never reached): there is no
    evidence of how confident the model is on it.
    """
    probs = check_probs(probs)
    given = check_given_index(probs, given)
    n_labels = probs.shape[1]
    counts = np.bincount(given, minlength=n_labels)
    sums = np.bincount(given, weights=probs[np.arange(len(given)), given], minlength=n_labels)
    thresholds = np.full(n_labels, 1.0 + 1e-6)
    np.divide(sums, counts, out=thresholds, where=counts > 0)
    return thresholds


def confident_joint(
    probs: np.ndarray, given: np.ndarray, thresholds: np.ndarray | None = None
) -> ConfidentJoint:
    """Count, calibrate and normalise the confident joint (paper, eq. 1-3)."""
    probs = check_probs(probs)
    given = check_given_index(probs, given)
    n_docs, n_labels = probs.shape
    t = per_class_thresholds(probs, given) if thresholds is None else np.asarray(thresholds)
    above = probs >= t[None, :]
    masked = np.where(above, probs, -np.inf)
    true_estimate = np.where(above.any(axis=1), masked.argmax(axis=1), -1)
    counted = true_estimate >= 0
    counts = np.zeros((n_labels, n_labels), dtype=np.float64)
    np.add.at(counts, (given[counted], true_estimate[counted]), 1.0)
    given_counts = np.bincount(given, minlength=n_labels).astype(np.float64)
    row_sums = counts.sum(axis=1)
    calibrated = np.zeros_like(counts)
    np.divide(
        counts * given_counts[:, None],
        row_sums[:, None],
        out=calibrated,
        where=row_sums[:, None] > 0,
    )
    # A row with nothing counted keeps its docs on the diagonal (no evidence of noise).
    empty = (row_sums == 0) & (given_counts > 0)
    calibrated[empty, empty.nonzero()[0]] = given_counts[empty]
    total = calibrated.sum()
    joint = calibrated / total if total > 0 else calibrated
    return ConfidentJoint(
        thresholds=t,
        counts=counts,
        calibrated=calibrated,
        joint=joint,
        true_estimate=true_estimate,
    )


def label_quality(probs: np.ndarray, given: np.ndarray, rank_by: RankBy) -> np.ndarray:
    """Quality of each given label: self-confidence or normalised margin (lower = worse)."""
    check_choice(rank_by, "rank_by", RANK_BY)
    probs = check_probs(probs)
    given = check_given_index(probs, given)
    rows = np.arange(len(given))
    self_conf = probs[rows, given]
    if rank_by == "self_confidence":
        return self_conf
    others = probs.copy()
    others[rows, given] = -np.inf
    return self_conf - others.max(axis=1) if probs.shape[1] > 1 else self_conf


def find_label_issues(
    probs: np.ndarray,
    given: np.ndarray,
    *,
    filter_by: FilterBy = "prune_by_noise_rate",
    rank_by: RankBy = "self_confidence",
) -> ExclusiveIssues:
    """Confident-learning issues of an exclusive task, ranked (see the module docstring).

    ``filter_by``: ``prune_by_noise_rate`` (the paper's PBNR), ``confident_joint`` (the
    off-diagonal docs of the confident joint, C_confusion's stricter sibling) or ``both``
    (a doc must be flagged by both).
    """
    check_choice(filter_by, "filter_by", FILTER_BY)
    probs = check_probs(probs)
    given = check_given_index(probs, given)
    n_docs, n_labels = probs.shape
    joint = confident_joint(probs, given)
    rows = np.arange(n_docs)

    pbnr = np.zeros(n_docs, dtype=bool)
    if filter_by in ("prune_by_noise_rate", "both"):
        to_prune = np.rint(joint.joint * n_docs).astype(np.int64)
        np.fill_diagonal(to_prune, 0)
        for i, j in zip(*np.nonzero(to_prune)):
            members = np.flatnonzero(given == i)
            if not members.size:
                continue
            margin = probs[members, j] - probs[members, i]
            k = min(int(to_prune[i, j]), members.size)
            pbnr[members[np.argsort(-margin, kind="stable")[:k]]] = True
    off_diagonal = (joint.true_estimate >= 0) & (joint.true_estimate != given)
    if filter_by == "prune_by_noise_rate":
        is_issue = pbnr
    elif filter_by == "confident_joint":
        is_issue = off_diagonal
    else:
        is_issue = pbnr & off_diagonal
    # The model's own top choice is the given label: no evidence against it.
    is_issue = is_issue & (probs.argmax(axis=1) != given)

    quality = label_quality(probs, given, rank_by)
    others = probs.copy()
    others[rows, given] = -np.inf
    suggested = others.argmax(axis=1) if n_labels > 1 else given.copy()
    flagged = np.flatnonzero(is_issue)
    order = flagged[np.lexsort((flagged, quality[flagged]))]
    return ExclusiveIssues(
        order=order,
        is_issue=is_issue,
        quality=quality,
        suggested=suggested,
        joint=joint,
        rank_by=rank_by,
    )


def find_multilabel_issues(
    probs: np.ndarray,
    given: np.ndarray,
    *,
    filter_by: FilterBy = "prune_by_noise_rate",
    rank_by: RankBy = "self_confidence",
    per_label_rank: bool = False,
) -> MultilabelIssues:
    """Confident-learning issues of a multi-label task: one binary problem per label.

    A pair (doc, label) is an issue when the per-label binary confident learning flags
    it: a given label the model confidently rejects, or a missing one it confidently
    predicts. Pairs are ranked by their quality (self-confidence ``p`` for a given label,
    ``1 - p`` for a missing one; for the margin, ``|2p - 1|`` signed), lowest first; with
    ``per_label_rank`` by that quality's rank among the pairs of the same label and the
    same given state (so a rare label's or a missing label's issues are not always behind
    a frequent label's).
    """
    check_choice(filter_by, "filter_by", FILTER_BY)
    check_choice(rank_by, "rank_by", RANK_BY)
    probs = check_probs(probs)
    given_arr = np.asarray(given, dtype=np.float64)
    if given_arr.shape != probs.shape:
        raise DataError(Errors.E401.format(shape=probs.shape, given_shape=given_arr.shape))
    positive = given_arr >= 0.5
    n_docs, n_labels = probs.shape
    is_issue = np.zeros((n_docs, n_labels), dtype=bool)
    pair_quality = np.ones((n_docs, n_labels))
    joints = []
    for j in range(n_labels):
        binary = np.stack([1.0 - probs[:, j], probs[:, j]], axis=1)
        found = find_label_issues(
            binary, positive[:, j].astype(np.int64), filter_by=filter_by, rank_by=rank_by
        )
        is_issue[:, j] = found.is_issue
        pair_quality[:, j] = (
            _within_state_rank(found.quality, positive[:, j]) if per_label_rank else found.quality
        )
        joints.append(found.joint)
    doc_idx, label_idx = np.nonzero(is_issue)
    q = pair_quality[doc_idx, label_idx]
    order = np.lexsort((label_idx, doc_idx, q))
    pairs = np.stack([doc_idx[order], label_idx[order]], axis=1).astype(np.int64)
    doc_quality = np.where(is_issue, pair_quality, np.inf).min(axis=1)
    has_issue = is_issue.any(axis=1)
    doc_quality = np.where(has_issue, doc_quality, 1.0)
    flagged = np.flatnonzero(has_issue)
    doc_order = flagged[np.lexsort((flagged, doc_quality[flagged]))]
    return MultilabelIssues(
        pairs=pairs.reshape(-1, 2),
        is_issue=is_issue,
        pair_quality=pair_quality,
        doc_order=doc_order,
        doc_quality=doc_quality,
        joints=joints,
        rank_by=rank_by,
    )


def _within_state_rank(quality: np.ndarray, state: np.ndarray) -> np.ndarray:
    """Quality as its rank among the pairs with the same given state of the same label,
    in (0, 1]: makes labels of different prevalence and the two directions (a wrong given
    label, a missing one) comparable in one ranking."""
    out = np.empty(len(quality))
    for value in (False, True):
        members = np.flatnonzero(state == value)
        if members.size:
            order = np.argsort(quality[members], kind="stable")
            ranks = np.empty(members.size)
            ranks[order] = np.arange(1, members.size + 1)
            out[members] = ranks / members.size
    return out


def precision_recall_at_k(ranked: np.ndarray, truth: np.ndarray, k: int) -> tuple[float, float]:
    """Precision and recall of the first ``k`` of ``ranked`` against the set ``truth``.

    ``ranked`` are item ids (ints, or rows of pairs), ``truth`` the ids of the real issues.
    When fewer than ``k`` items were ranked, precision is over the items there are.
    """
    check_range(k, "k", 0, np.inf)
    top = [tuple(np.atleast_1d(item).tolist()) for item in np.asarray(ranked)[: int(k)]]
    real = {tuple(np.atleast_1d(item).tolist()) for item in np.asarray(truth)}
    hits = sum(1 for item in top if item in real)
    precision = hits / len(top) if top else 0.0
    recall = hits / len(real) if real else 0.0
    return precision, recall


def inject_exclusive_noise(
    given: np.ndarray,
    n_labels: int,
    fraction: float,
    seed: int,
    confusable: np.ndarray | None = None,
    confusable_share: float = 0.5,
) -> tuple[np.ndarray, np.ndarray]:
    """Flip ``fraction`` of the labels (seeded) and return (noisy labels, flipped indices).

    ``confusable`` (n_labels, n_labels): a score of how easily each class is mistaken
    for each other one (e.g. a confusion matrix of a clean model). A ``confusable_share``
    of the flipped docs go to their label's most confusable other class; the rest go to
    a uniformly drawn other class.
    """
    check_range(fraction, "fraction", 0.0, 1.0)
    check_range(confusable_share, "confusable_share", 0.0, 1.0)
    rng = np.random.default_rng(seed)
    given = np.asarray(given, dtype=np.int64)
    n_flip = int(round(fraction * len(given)))
    flipped = np.sort(rng.choice(len(given), size=n_flip, replace=False))
    noisy = given.copy()
    n_conf = int(round(confusable_share * n_flip)) if confusable is not None else 0
    as_confusable = np.zeros(n_flip, dtype=bool)
    as_confusable[rng.choice(n_flip, size=n_conf, replace=False)] = True
    for position, doc in enumerate(flipped):
        old = given[doc]
        if as_confusable[position] and confusable is not None:
            scores = np.asarray(confusable[old], dtype=np.float64).copy()
            scores[old] = -np.inf
            noisy[doc] = int(np.argmax(scores))
        else:
            new = int(rng.integers(n_labels - 1))
            noisy[doc] = new + (new >= old)
    return noisy, flipped


def inject_multilabel_noise(
    given: np.ndarray, fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Toggle (doc, label) pairs (seeded): ``round(fraction * positives)`` toggles, half
    removing a given label and half adding a label the doc does not have.

    Returns (noisy 0/1 matrix, toggled pairs as an (n, 2) array of (doc, label)).
    """
    check_range(fraction, "fraction", 0.0, 1.0)
    rng = np.random.default_rng(seed)
    positive = np.asarray(given) >= 0.5
    n_toggle = int(round(fraction * positive.sum()))
    n_remove = n_toggle // 2
    pos_pairs = np.argwhere(positive)
    neg_pairs = np.argwhere(~positive)
    removed = pos_pairs[rng.choice(len(pos_pairs), size=n_remove, replace=False)]
    added = neg_pairs[rng.choice(len(neg_pairs), size=n_toggle - n_remove, replace=False)]
    toggled = np.concatenate([removed, added]).reshape(-1, 2)
    noisy = positive.astype(np.float64)
    noisy[toggled[:, 0], toggled[:, 1]] = 1.0 - noisy[toggled[:, 0], toggled[:, 1]]
    return noisy, toggled[np.lexsort((toggled[:, 1], toggled[:, 0]))]

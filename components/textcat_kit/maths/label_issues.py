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

Multi-label: the unit of an issue is a ``(doc, label)`` cell. Two methods:

``label_set`` (default): the doc's label *set* is what a wrong cell damages. The
    out-of-fold probabilities ``p_ij`` say which labels fit the text; the corpus says how
    many labels a text has (most corpora have a characteristic count: every GoEmotions
    text has at least one label, so a text with none has lost one). The true set ``Y`` of
    a doc has the prior ``P(Y | x) ~ prod_j p_j^y_j (1 - p_j)^(1 - y_j) * lambda(|Y|) *
    prod_{j<k in Y} phi_jk``: the per-label model, tilted by ``lambda(m) = pi(m) /
    qbar(m)``, where ``pi`` is the corpus's distribution of true label counts and ``qbar``
    the count distribution the independent per-label model predicts on average
    (Poisson-binomial, averaged over the docs), and by ``phi_jk`` = how much more often
    labels ``j`` and ``k`` are given together than the model predicts (``sum_i p_ij p_ik``;
    a random extra label rarely goes with the text's other labels). Where the model already
    predicts the corpus's counts and pairs, the tilts are flat and the method is per-cell
    self-confidence. The given set ``S`` came through a noisy
    channel that adds a label with rate ``alpha = P(s=1 | y=0)`` and drops one with rate
    ``beta = P(s=0 | y=1)``, as many added as dropped (``alpha * n_negative_cells = beta *
    n_positive_cells``; equal *rates* would make a dropped label ~20 times rarer than an
    added one on a corpus with 1.2 labels of 28 per text). The posterior that cell ``j``
    is wrong is taken over ``S`` and its one-cell neighbours ``S xor {j}``:
    ``w_j / (1 + sum_l w_l)`` with ``w_j = P(S xor {j} | x) / P(S | x)`` times
    ``alpha / (1 - beta)`` (``j`` given: the label was added) or ``beta / (1 - alpha)``
    (``j`` not given: it was dropped). The number of wrong cells (hence ``alpha`` and
    ``beta``) and ``pi`` are estimated by EM on the same data: confident learning's step 2
    (estimate the joint of given and true labels, Northcutt et al. 2021; noise rates as in
    Northcutt, Wu & Chuang, "Learning with Confident Examples: Rank Pruning", UAI 2017)
    for label sets. A third channel event, a *flip* (an annotator picked label ``a``
    where the text has ``b``: rate ``gamma`` per given label, the replacement uniform over
    the other labels), adds the two-cell *swap* neighbours ``S - {a} + {b}`` with weight
    ``P(S - a + b | x) / P(S | x) * gamma / ((L - 1)(1 - gamma))``; a swap keeps the label
    count, so a one-label text whose label is the wrong one is explained by one event
    instead of a drop and an add (two events, each paying the count tilt). ``gamma`` is
    estimated by the same EM; on noise without flips it goes to ~0 and the swaps change
    nothing. The issues are the cells where the doc's most probable set (greedy ascent
    over single toggles and swaps under the prior) differs from the given one, ranked by
    the posterior that the cell is wrong; a doc's
    quality is the posterior that its whole given set is right. Cells of one doc share
    the doc's evidence: a text with no label gets one suggestion, not one per label.

``per_label``: every label is its own binary problem (given / not given) and the
    exclusive steps above run per label on the columns ``[1 - p_j, p_j]``; a doc's quality
    is its worst pair's. Ignores how many labels a text has and which labels go
    together, so it cannot tell a text stripped of its only label from a text that never
    had that label.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from ..errors import DataError, Errors
from .validation import check_choice, check_probs, check_range

RankBy = Literal["self_confidence", "normalized_margin"]
MultilabelMethod = Literal["label_set", "per_label"]
MULTILABEL_METHODS: tuple[str, ...] = ("label_set", "per_label")
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
class LabelSetNoise:
    """What EM estimated for the ``label_set`` method (module docstring).

    ``n_errors`` = the expected number of wrong (doc, label) cells, half of them labels
    added to a text that does not have them (``add_rate`` = P(given | not true)), half
    labels dropped (``remove_rate`` = P(not given | true)); ``cardinality[m]`` = P(a text
    truly has ``m`` labels), for ``m`` up to one more than the largest given count.
    """

    n_errors: float
    add_rate: float
    remove_rate: float
    cardinality: np.ndarray
    n_iter: int
    converged: bool
    #: P(a given label is another label's replacement), with swap neighbours (0 without)
    flip_rate: float = 0.0


@dataclass(frozen=True)
class MultilabelIssues:
    """Ranked (doc, label) issues of a multi-label task.

    ``pairs`` is an (n_issues, 2) array of (doc, label) indices, most likely wrong first;
    ``pair_quality`` the quality of every (doc, label) pair (n_docs, n_labels), lower =
    more likely wrong (``label_set``: 1 - the posterior that the cell is wrong);
    ``doc_order`` the docs with at least one issue, worst first, and ``doc_quality`` every
    doc's quality (``label_set``: the posterior that its given set is right;
    ``per_label``: its worst pair quality among its issues, 1.0 for a doc without issues).
    ``joints`` are the per-label binary confident joints (``per_label``) and ``noise`` the
    EM estimates (``label_set``).
    """

    pairs: np.ndarray
    is_issue: np.ndarray
    pair_quality: np.ndarray
    doc_order: np.ndarray
    doc_quality: np.ndarray
    joints: list[ConfidentJoint]
    rank_by: str
    method: str = "per_label"
    noise: LabelSetNoise | None = None

    def noise_rate(self) -> float:
        """Estimated share of docs whose given label set is wrong (``label_set``), or the
        mean over labels of the per-label binary noise rates (``per_label``)."""
        if self.noise is not None:
            return float(np.mean(1.0 - self.doc_quality))
        return float(np.mean([joint.noise_rate() for joint in self.joints]))


def pool_probabilities(
    members: Sequence[np.ndarray], exclusive: bool, eps: float = 1e-6
) -> np.ndarray:
    """Pool the calibrated probabilities of several models of the same docs and labels by
    their normalised geometric mean (log-linear pooling).

    Exclusive: ``softmax(mean_m log p_m)`` per row. Multi-label: per cell, the geometric
    mean of ``p`` against that of ``1 - p``, i.e. ``sigmoid(mean_m logit p_m)``. Why
    geometric: a label counts as likely only when every model finds it plausible, so one
    model's confident mistake is damped by the others, and models that agree keep their
    confidence. One member is returned as it is (clipped to ``[eps, 1 - eps]``).
    """
    if not len(members):
        raise DataError(Errors.E415.format(detail="no member probabilities to pool"))
    arrays = [check_probs(np.asarray(m, dtype=np.float64)) for m in members]
    shapes = {a.shape for a in arrays}
    if len(shapes) != 1:
        raise DataError(Errors.E415.format(detail=f"members have shapes {sorted(shapes)}"))
    clipped = [np.clip(a, eps, 1.0 - eps) for a in arrays]
    if exclusive:
        mean_log = np.mean([np.log(a) for a in clipped], axis=0)
        mean_log -= mean_log.max(axis=1, keepdims=True)
        pooled = np.exp(mean_log)
        return pooled / pooled.sum(axis=1, keepdims=True)
    mean_logit = np.mean([np.log(a) - np.log1p(-a) for a in clipped], axis=0)
    return 1.0 / (1.0 + np.exp(-mean_logit))


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
    method: MultilabelMethod = "label_set",
    filter_by: FilterBy = "prune_by_noise_rate",
    rank_by: RankBy = "self_confidence",
    per_label_rank: bool = False,
    max_iter: int = 200,
    swaps: bool = True,
) -> MultilabelIssues:
    """Confident-learning issues of a multi-label task (module docstring).

    ``method="label_set"`` (default): cells ranked by the posterior that they are wrong
    under the EM-estimated noise channel and label-count prior; ``filter_by``, ``rank_by``
    and ``per_label_rank`` apply to ``per_label`` only. ``max_iter`` bounds EM.
    """
    check_choice(method, "method", MULTILABEL_METHODS)
    check_choice(filter_by, "filter_by", FILTER_BY)
    check_choice(rank_by, "rank_by", RANK_BY)
    if method == "label_set":
        probs = check_probs(probs)
        given_arr = np.asarray(given, dtype=np.float64)
        if given_arr.shape != probs.shape:
            raise DataError(Errors.E401.format(shape=probs.shape, given_shape=given_arr.shape))
        return _label_set_issues(probs, given_arr >= 0.5, max_iter=max_iter, swaps=swaps)
    return _per_label_issues(
        probs, given, filter_by=filter_by, rank_by=rank_by, per_label_rank=per_label_rank
    )


def _per_label_issues(
    probs: np.ndarray,
    given: np.ndarray,
    *,
    filter_by: FilterBy,
    rank_by: RankBy,
    per_label_rank: bool,
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
        method="per_label",
    )


def count_distribution(probs: np.ndarray, max_count: int) -> np.ndarray:
    """Per row, P(number of positives = m) for m = 0..max_count under independent labels
    with probabilities ``probs`` (the Poisson-binomial distribution), each row rescaled so
    its largest entry is 1: only ratios within a row are used, and the rescaling keeps
    hundreds of labels from underflowing. Exact for every m <= max_count."""
    n_docs, n_labels = probs.shape
    q = np.zeros((n_docs, max_count + 1))
    q[:, 0] = 1.0
    for j in range(n_labels):
        p = probs[:, j : j + 1]
        q[:, 1:] = q[:, 1:] * (1.0 - p) + q[:, :-1] * p
        q[:, 0] *= 1.0 - probs[:, j]
        q /= q.max(axis=1, keepdims=True)
    return q


def label_set_posteriors(
    probs: np.ndarray,
    positive: np.ndarray,
    *,
    max_iter: int = 200,
    tol: float = 1e-6,
    smoothing: float = 0.5,
    eps: float = 1e-6,
    equal_counts: bool = True,
    swaps: bool = True,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, LabelSetNoise]:
    """EM for the ``label_set`` method (module docstring).

    Returns (``wrong``: P(cell is wrong) per (doc, label); ``right``: P(the doc's given set
    is right) per doc; ``suggested``: each doc's most probable set under the prior
    ``P(Y | x)`` with the estimated counts (:func:`most_probable_sets`); the estimates).
    ``smoothing`` is the Dirichlet pseudo-count of every label count's prior, so a count
    nobody has keeps a small, non-zero prior. ``swaps``: also consider the two-cell
    neighbours ``S - {a} + {b}`` (a given label that should have been another one), with
    their own channel rate, the flip rate, estimated by the same EM.
    """
    n_docs, n_labels = probs.shape
    p = np.clip(probs, eps, 1.0 - eps)
    counts = positive.sum(axis=1)
    max_count = int(min(counts.max() + 1, n_labels))
    # the count of each one-cell neighbour (a doc with every label has no cell to add)
    neighbour = np.minimum(np.where(positive, counts[:, None] - 1, counts[:, None] + 1), max_count)
    q = count_distribution(p, max_count)
    model_counts = (q / q.sum(axis=1, keepdims=True)).mean(axis=0)
    log_model_counts = np.log(np.maximum(model_counts, 1e-300))
    log_odds = np.log(p) - np.log1p(-p)
    pairs = pair_tilt(p, positive, smoothing=smoothing)
    # the model's odds of the toggled cell against the given one, with the pair tilt of
    # the cell and the doc's other given labels
    toggle = np.where(positive, -log_odds, log_odds)
    with_given = positive.astype(np.float64) @ pairs
    toggle += np.where(positive, -with_given, with_given)
    n_pos = float(positive.sum())
    n_neg = float(positive.size) - n_pos

    def prior(weights: np.ndarray) -> np.ndarray:
        return (weights + smoothing) / (weights.sum() + smoothing * (max_count + 1))

    cardinality = prior(np.bincount(counts, minlength=max_count + 1).astype(np.float64))
    n_errors = 0.01 * max(n_pos, 1.0)
    n_added = n_errors / 2.0
    # swap neighbours S - {a} + {b} (a given label that should have been another one):
    # their prior ratios do not change across EM iterations, only the flip rate does
    swap = _swap_mass(toggle, positive, pairs) if swaps and n_labels > 1 else None
    n_flips = 0.005 * max(n_pos, 1.0) if swap is not None else 0.0
    log_flip = 0.0
    log_z = np.zeros((n_docs, 1))
    wrong = np.zeros_like(p)
    right = np.ones(n_docs)
    converged = False
    n_iter = 0
    add_rate = remove_rate = flip_rate = 0.0
    while n_iter < max_iter:
        n_iter += 1
        # as many labels added as dropped (equal_counts), or each estimated on its own
        if equal_counts:
            n_added = n_errors / 2.0
        add_rate = min(max(n_added, 1e-6) / max(n_neg, 1.0), 0.45)
        remove_rate = min(max(n_errors - n_added, 1e-6) / max(n_pos, 1.0), 0.45)
        channel = np.where(
            positive,
            np.log(add_rate) - np.log1p(-remove_rate),
            np.log(remove_rate) - np.log1p(-add_rate),
        )
        log_tilt = np.log(cardinality) - log_model_counts
        log_w = toggle + channel + log_tilt[neighbour] - log_tilt[counts][:, None]
        top = np.maximum(log_w.max(axis=1, keepdims=True), 0.0)
        swap_log_w = None
        if swap is not None:
            # a given label replaced by one of the other labels, uniformly
            flip_rate = min(max(n_flips, 1e-6) / max(n_pos, 1.0), 0.45)
            log_flip = np.log(flip_rate) - np.log(n_labels - 1) - np.log1p(-flip_rate)
            swap_log_w = swap.log_total + log_flip
            top = np.maximum(top, swap_log_w[:, None])
        mass = np.exp(-top) + np.exp(log_w - top).sum(axis=1, keepdims=True)
        if swap_log_w is not None:
            mass += np.exp(swap_log_w[:, None] - top)
        log_z = top + np.log(mass)
        single_wrong = np.exp(log_w - log_z)
        right = np.exp(-log_z[:, 0])
        wrong = single_wrong
        swapped = 0.0
        kept = right.copy()  # texts whose true label count is the given one
        if swap is not None and swap_log_w is not None:
            any_swap = np.exp(swap_log_w - log_z[:, 0])  # P(Y is one of the swaps)
            swapped = float(any_swap.sum())
            kept += any_swap
            # a swap makes two cells wrong: the given label that leaves, the one that joins
            wrong = single_wrong + any_swap[:, None] * (swap.leaves + swap.joins)
        # M step: the expected number of wrong cells and of texts with each true count
        new_errors = max(float(single_wrong.sum()), 1e-6)
        n_added = float((single_wrong * positive).sum())
        true_counts = np.bincount(counts, weights=kept, minlength=max_count + 1)
        true_counts += np.bincount(
            neighbour.ravel(), weights=single_wrong.ravel(), minlength=max_count + 1
        )[: max_count + 1]
        new_cardinality = prior(true_counts)
        change = max(
            abs(new_errors - n_errors) / n_errors,
            float(np.abs(new_cardinality - cardinality).max()),
            # flips on the scale of all errors: a rate going to 0 has converged
            abs(swapped - n_flips) / max(n_errors, 1.0) if swap is not None else 0.0,
        )
        n_errors, cardinality = new_errors, new_cardinality
        if swap is not None:
            n_flips = max(swapped, 1e-6)
        if change < tol:
            converged = True
            break
    noise = LabelSetNoise(
        n_errors=n_errors,
        add_rate=add_rate,
        remove_rate=remove_rate,
        cardinality=cardinality,
        n_iter=n_iter,
        converged=converged,
        flip_rate=flip_rate,
    )
    log_tilt = np.log(cardinality) - log_model_counts
    suggested = most_probable_sets(log_odds, positive, log_tilt, pairs)
    if swap is not None and n_docs:
        # with swaps the greedy ascent also reaches label sets of the same count, but as
        # pruning by noise rate does for exclusive labels, only the round(expected number
        # of flips) texts whose swaps are most probable take them
        with_swaps = most_probable_sets(log_odds, positive, log_tilt, pairs, swaps=True)
        differs = np.flatnonzero((with_swaps != suggested).any(axis=1))
        swap_posterior = np.exp(swap.log_total + log_flip - log_z[:, 0])
        chosen = differs[np.lexsort((differs, -swap_posterior[differs]))][: int(round(n_flips))]
        suggested[chosen] = with_swaps[chosen]
    return wrong, right, suggested, noise


@dataclass(frozen=True)
class _SwapMass:
    """The swap neighbours ``S - {a} + {b}`` of every doc's given set ``S``, summed:
    ``log_total[i]`` = log of the sum over (a given, b not given) of the prior ratio
    ``P(S - a + b | x) / P(S | x)``; ``leaves[i, a]`` / ``joins[i, b]`` = the share of that
    sum with ``a`` leaving / ``b`` joining the set (each row sums to 1 where the doc has
    a swap)."""

    log_total: np.ndarray
    leaves: np.ndarray
    joins: np.ndarray


def _swap_mass(toggle: np.ndarray, positive: np.ndarray, pairs: np.ndarray) -> _SwapMass:
    """:class:`_SwapMass` with two matrix products, never a (docs, labels, labels) array.

    The log ratio of a swap is ``toggle[a] + toggle[b] - pairs[a, b]`` (``toggle`` holds
    each cell's log prior ratio against the given set, with the pair tilt of the given
    labels; ``b`` joins a set that ``a`` leaves, so their pair term is taken back out).
    Each row's given and absent cells are shifted by their own maximum before ``exp``."""
    out_cells = np.where(positive, toggle, -np.inf)
    in_cells = np.where(positive, -np.inf, toggle)
    shift_out = np.where(positive.any(axis=1), out_cells.max(axis=1), 0.0)
    shift_in = np.where((~positive).any(axis=1), in_cells.max(axis=1), 0.0)
    leave = np.exp(out_cells - shift_out[:, None])  # 0 where not given
    join = np.exp(in_cells - shift_in[:, None])  # 0 where given
    link = np.exp(-pairs)
    leaves = leave * (join @ link.T)  # a leaves: summed over the b that join
    joins = join * (leave @ link)  # b joins: summed over the a that leave
    total = leaves.sum(axis=1)
    has_swap = total > 0
    safe = np.where(has_swap, total, 1.0)[:, None]
    with np.errstate(divide="ignore"):
        log_total = np.where(has_swap, np.log(np.where(has_swap, total, 1.0)), -np.inf)
    return _SwapMass(
        log_total=log_total + shift_out + shift_in,
        leaves=leaves / safe,
        joins=joins / safe,
    )


def _best_swaps(
    toggle: np.ndarray, current: np.ndarray, pairs: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per doc, the swap of ``current`` that raises its prior most: (gain, label leaving,
    label joining); gain ``-inf`` for a doc with nothing to swap. One (docs, labels)
    array per given-label slot, so memory stays (docs, labels)."""
    n_docs, n_labels = current.shape
    rows = np.arange(n_docs)
    counts = current.sum(axis=1)
    slots = np.argsort(~current, axis=1, kind="stable")  # given labels first
    best_gain = np.full(n_docs, -np.inf)
    best_out = np.zeros(n_docs, dtype=np.int64)
    best_in = np.zeros(n_docs, dtype=np.int64)
    for r in range(int(counts.max()) if n_docs else 0):
        leaving = slots[:, r]
        gain = toggle[rows, leaving][:, None] + toggle - pairs[leaving]
        gain = np.where(current | (counts <= r)[:, None], -np.inf, gain)
        joining = gain.argmax(axis=1)
        value = gain[rows, joining]
        better = value > best_gain
        best_gain = np.where(better, value, best_gain)
        best_out = np.where(better, leaving, best_out)
        best_in = np.where(better, joining, best_in)
    return best_gain, best_out, best_in


def pair_tilt(probs: np.ndarray, positive: np.ndarray, smoothing: float = 0.5) -> np.ndarray:
    """``log phi_jk``: how much more often labels ``j`` and ``k`` are given together than
    the independent per-label model predicts (``sum_i p_ij p_ik``), smoothed; 0 on the
    diagonal. Near 0 where the model already gets the pairs right."""
    given = positive.astype(np.float64)
    observed = given.T @ given
    predicted = probs.T @ probs
    tilt = np.log((observed + smoothing) / (predicted + smoothing))
    np.fill_diagonal(tilt, 0.0)
    return tilt


def most_probable_sets(
    log_odds: np.ndarray,
    positive: np.ndarray,
    log_tilt: np.ndarray,
    pairs: np.ndarray | None = None,
    swaps: bool = False,
) -> np.ndarray:
    """Each doc's most probable label set under the tilted prior (module docstring),
    by greedy ascent from the given set: toggle the cell that raises the set's probability
    most, until none does. Without tilts this is every label with p > 0.5; with the count
    tilt, a text without labels gets its best label only (the next one would cost the
    count). ``swaps``: a step may also replace a label of the set by one outside it (the
    count stays, so a one-label text whose label is wrong can reach the right one; single
    toggles would each pay the count tilt). Each step raises the probability, so no set is
    visited twice."""
    current = positive.copy()
    rows = np.arange(len(current))
    max_count = len(log_tilt) - 1
    tilt = np.zeros((current.shape[1],) * 2) if pairs is None else pairs
    for _ in range(2 * current.shape[1] + 1):
        counts = current.sum(axis=1)
        neighbour = np.minimum(
            np.where(current, counts[:, None] - 1, counts[:, None] + 1), max_count
        )
        toggle = np.where(current, -log_odds, log_odds)
        if pairs is not None:
            with_current = current.astype(np.float64) @ pairs
            toggle += np.where(current, -with_current, with_current)
        gain = toggle + log_tilt[neighbour] - log_tilt[np.minimum(counts, max_count)][:, None]
        best = gain.argmax(axis=1)
        best_gain = gain[rows, best]
        if swaps and current.any():
            swap_gain, out, label = _best_swaps(toggle, current, tilt)
            use_swap = swap_gain > best_gain
        else:
            use_swap = np.zeros(len(current), dtype=bool)
            swap_gain, out, label = best_gain, best, best
        improves = np.where(use_swap, swap_gain, best_gain) > 1e-12
        if not improves.any():
            break
        single = improves & ~use_swap
        current[rows[single], best[single]] ^= True
        double = improves & use_swap
        current[rows[double], out[double]] = False
        current[rows[double], label[double]] = True
    return current


def _label_set_issues(
    probs: np.ndarray, positive: np.ndarray, max_iter: int, swaps: bool = True
) -> MultilabelIssues:
    """Flag the expected number of wrong cells, most probable first (module docstring)."""
    n_docs, n_labels = probs.shape
    if n_docs == 0:
        wrong, right = np.zeros_like(probs), np.ones(0)
        noise = LabelSetNoise(0.0, 0.0, 0.0, np.ones(1), 0, True)
        n_flag = 0
    else:
        wrong, right, suggested, noise = label_set_posteriors(
            probs, positive, max_iter=max_iter, swaps=swaps
        )
        n_flag = int((suggested != positive).sum())
    flat = wrong.ravel()
    # the cells where the most probable set differs from the given one, highest posterior
    # first; ties by doc, then label (row-major index) for determinism
    disagree = np.flatnonzero((suggested != positive).ravel()) if n_docs else np.zeros(0, int)
    order = disagree[np.lexsort((disagree, -flat[disagree]))][:n_flag]
    flagged_cells = np.zeros(flat.size, dtype=bool)
    flagged_cells[order] = True
    is_issue = flagged_cells.reshape(n_docs, n_labels)
    pairs = np.stack(np.unravel_index(order, (n_docs, n_labels)), axis=1).astype(np.int64)
    has_issue = is_issue.any(axis=1)
    flagged = np.flatnonzero(has_issue)
    doc_order = flagged[np.lexsort((flagged, right[flagged]))]
    return MultilabelIssues(
        pairs=pairs.reshape(-1, 2),
        is_issue=is_issue,
        pair_quality=1.0 - wrong,
        doc_order=doc_order,
        doc_quality=right,
        joints=[],
        rank_by="posterior",
        method="label_set",
        noise=noise,
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


MultilabelNoise = Literal["toggle", "flip"]
MULTILABEL_NOISE: tuple[str, ...] = ("toggle", "flip")


def inject_multilabel_noise(
    given: np.ndarray, fraction: float, seed: int, kind: MultilabelNoise = "toggle"
) -> tuple[np.ndarray, np.ndarray]:
    """Break ``round(fraction * positives)`` (doc, label) cells (seeded).

    ``toggle``: half of them remove a given label, half add a label the doc does not have
    (drawn uniformly among the given / absent cells). ``flip``: half as many given labels
    are each replaced by a label the doc does not have (drawn uniformly; the label count
    stays, two cells change per flip), what an annotator who picks the wrong emotion does.

    Returns (noisy 0/1 matrix, changed cells as an (n, 2) array of (doc, label), sorted).
    """
    check_range(fraction, "fraction", 0.0, 1.0)
    check_choice(kind, "kind", MULTILABEL_NOISE)
    rng = np.random.default_rng(seed)
    positive = np.asarray(given) >= 0.5
    n_toggle = int(round(fraction * positive.sum()))
    pos_pairs = np.argwhere(positive)
    if kind == "flip":
        noisy_bool = positive.copy()
        changed: list[list[int]] = []
        n_labels = positive.shape[1]
        for doc, label in pos_pairs[rng.permutation(len(pos_pairs))].tolist():
            if len(changed) >= 2 * (n_toggle // 2):
                break
            # a label the doc never had, given or from an earlier flip of the same doc
            free = np.flatnonzero(~positive[doc] & ~noisy_bool[doc])
            if not noisy_bool[doc, label] or not free.size or n_labels < 2:
                continue
            new = int(free[rng.integers(free.size)])
            noisy_bool[doc, label] = False
            noisy_bool[doc, new] = True
            changed += [[doc, label], [doc, new]]
        toggled = np.asarray(changed, dtype=np.int64).reshape(-1, 2)
        noisy = noisy_bool.astype(np.float64)
        return noisy, toggled[np.lexsort((toggled[:, 1], toggled[:, 0]))]
    n_remove = n_toggle // 2
    neg_pairs = np.argwhere(~positive)
    removed = pos_pairs[rng.choice(len(pos_pairs), size=n_remove, replace=False)]
    added = neg_pairs[rng.choice(len(neg_pairs), size=n_toggle - n_remove, replace=False)]
    toggled = np.concatenate([removed, added]).reshape(-1, 2)
    noisy = positive.astype(np.float64)
    noisy[toggled[:, 0], toggled[:, 1]] = 1.0 - noisy[toggled[:, 0], toggled[:, 1]]
    return noisy, toggled[np.lexsort((toggled[:, 1], toggled[:, 0]))]

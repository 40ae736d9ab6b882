"""Which unlabelled texts to annotate next: uncertainty with a diversity guard.

Uncertainty sampling (Lewis & Gale 1994; margin: Scheffer et al. 2001) picks the texts the
model is least sure of. Taken alone, it fills a batch with near-duplicates from one
confusing region (all "card not arrived" vs "card delivery estimate" paraphrases); the
guard here caps how many picks may share a predicted label, so one confusion cannot take
the whole batch, and a second stage (optional) spreads picks over feature clusters.

Scores are computed from calibrated probabilities (``probs``, (n_docs, n_labels)):

* ``margin`` - exclusive: ``1 - (p_top1 - p_top2)``; multi-label: ``1 - min_j |2 p_j - 1|``
  (how close the most undecided label is to 0.5).
* ``entropy`` - exclusive: Shannon entropy over labels / ``ln(n_labels)``; multi-label:
  the largest binary entropy over labels / ``ln 2``.
* ``least_confident`` - exclusive: ``1 - p_top1``; multi-label: as ``margin``.

All in [0, 1], higher = more uncertain.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np

from .validation import check_choice, check_probs, check_range

Strategy = Literal["margin", "entropy", "least_confident"]
STRATEGIES: tuple[str, ...] = ("margin", "entropy", "least_confident")


def uncertainty(probs: np.ndarray, *, exclusive: bool, strategy: Strategy = "margin") -> np.ndarray:
    """Per-doc uncertainty in [0, 1] (module docstring); higher = ask a person first."""
    check_choice(strategy, "uncertainty strategy", STRATEGIES)
    probs = check_probs(probs)
    n_docs, n_labels = probs.shape
    if n_docs == 0:
        return np.zeros(0)
    if not exclusive:
        if strategy == "entropy":
            p = np.clip(probs, 1e-12, 1 - 1e-12)
            binary = -(p * np.log(p) + (1 - p) * np.log(1 - p)) / math.log(2)
            return np.clip(binary.max(axis=1), 0.0, 1.0)
        return 1.0 - np.abs(2.0 * probs - 1.0).min(axis=1)
    ordered = np.sort(probs, axis=1)
    top1 = ordered[:, -1]
    if strategy == "least_confident":
        return np.clip(1.0 - top1, 0.0, 1.0)
    if strategy == "margin":
        top2 = ordered[:, -2] if n_labels > 1 else np.zeros(n_docs)
        return np.clip(1.0 - (top1 - top2), 0.0, 1.0)
    p = np.clip(probs, 1e-12, 1.0)
    entropy = -(probs * np.log(p)).sum(axis=1)
    return np.clip(entropy / math.log(n_labels), 0.0, 1.0) if n_labels > 1 else np.zeros(n_docs)


def default_label_cap(n: int, n_labels: int, factor: float = 2.0) -> int:
    """Picks allowed per predicted label: ``factor`` times an even share, at least 1."""
    return max(1, math.ceil(factor * n / max(1, n_labels)))


def select_diverse(
    scores: np.ndarray,
    predicted: np.ndarray,
    n: int,
    *,
    max_per_label: int | None = None,
    clusters: np.ndarray | None = None,
    max_per_cluster: int | None = None,
) -> np.ndarray:
    """Indices of ``n`` docs, most uncertain first, with at most ``max_per_label`` per
    predicted label and (if given) at most ``max_per_cluster`` per cluster id.

    When the caps leave fewer than ``n`` docs, the rest is filled by uncertainty alone,
    so a small pool still yields ``n`` picks (a cap is a guard, not a quota).
    """
    scores = np.asarray(scores, dtype=np.float64)
    predicted = np.asarray(predicted)
    check_range(n, "n", 0, np.inf)
    n = min(int(n), len(scores))
    order = np.lexsort((np.arange(len(scores)), -scores))
    label_cap = max_per_label if max_per_label is not None else len(scores)
    cluster_cap = max_per_cluster if max_per_cluster is not None else len(scores)
    per_label: dict[int, int] = {}
    per_cluster: dict[int, int] = {}
    chosen: list[int] = []
    taken = np.zeros(len(scores), dtype=bool)
    for i in order:
        if len(chosen) == n:
            break
        label = int(predicted[i])
        cluster = int(clusters[i]) if clusters is not None else 0
        if per_label.get(label, 0) >= label_cap:
            continue
        if clusters is not None and per_cluster.get(cluster, 0) >= cluster_cap:
            continue
        per_label[label] = per_label.get(label, 0) + 1
        per_cluster[cluster] = per_cluster.get(cluster, 0) + 1
        chosen.append(int(i))
        taken[i] = True
    if len(chosen) < n:
        rest = [int(i) for i in order if not taken[i]]
        chosen.extend(rest[: n - len(chosen)])
    return np.asarray(chosen, dtype=np.int64)


def predicted_label(probs: np.ndarray, *, exclusive: bool) -> np.ndarray:
    """The label a doc's cap is counted against: the argmax (exclusive) or the most
    undecided label (multi-label), so one ambiguous label cannot fill the batch."""
    probs = check_probs(probs)
    if exclusive or probs.shape[1] == 0:
        return probs.argmax(axis=1)
    return np.abs(probs - 0.5).argmin(axis=1)

"""Inter-annotator agreement: Krippendorff's alpha (nominal) and observed agreement.

Pure NumPy, no spaCy and no Label Studio: the input is a count matrix with one row per
unit (a task, or a task × label pair) and one column per category, holding how many
annotators chose that category for that unit. Alpha is used rather than Cohen's or
Fleiss' kappa because it allows any number of annotators per unit and missing
annotations, which is what Label Studio projects look like.

Reference: K. Krippendorff, "Computing Krippendorff's Alpha-Reliability" (2011).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray


def coincidence_matrix(counts: NDArray[np.int64]) -> NDArray[np.float64]:
    """Krippendorff's coincidence matrix ``o[c, k]`` from per-unit category counts.

    Units with fewer than two values carry no pairs and are ignored. Each unit adds
    ``n_uc * (n_uk - [c == k]) / (m_u - 1)``, i.e. its ordered value pairs from different
    annotators, weighted so that every unit contributes ``m_u`` values.
    """
    counts = np.asarray(counts, dtype=np.float64)
    if counts.ndim != 2:
        raise ValueError(f"counts must be 2-D (units x categories), got shape {counts.shape}")
    values_per_unit = counts.sum(axis=1)
    pairable = values_per_unit >= 2
    counts = counts[pairable]
    weights = 1.0 / (values_per_unit[pairable] - 1.0)
    pairs = np.einsum("uc,uk,u->ck", counts, counts, weights)
    pairs -= np.diag((counts * weights[:, None]).sum(axis=0))
    return pairs


def nominal_alpha(counts: NDArray[np.int64]) -> float:
    """Krippendorff's alpha for nominal data; NaN when it is undefined.

    Alpha is 1 for perfect agreement, 0 for agreement at chance level, and negative for
    systematic disagreement. It is undefined (NaN) when no unit has two values or when only
    one category was ever used (no expected disagreement to compare with).
    """
    pairs = coincidence_matrix(counts)
    totals = pairs.sum(axis=0)
    n_values = totals.sum()
    if n_values <= 1:
        return float("nan")
    observed = pairs.sum() - np.trace(pairs)
    expected = n_values**2 - np.square(totals).sum()
    if expected <= 0:
        return float("nan")
    return float(1.0 - (n_values - 1.0) * observed / expected)


def observed_agreement(counts: NDArray[np.int64]) -> float:
    """Share of annotator pairs within a unit that chose the same category (NaN if no pair)."""
    counts = np.asarray(counts, dtype=np.float64)
    values_per_unit = counts.sum(axis=1)
    all_pairs = (values_per_unit * (values_per_unit - 1.0)).sum()
    if all_pairs <= 0:
        return float("nan")
    agreeing_pairs = (counts * (counts - 1.0)).sum()
    return float(agreeing_pairs / all_pairs)


def binary_counts(positive: NDArray[np.int64], annotators: NDArray[np.int64]) -> NDArray[np.int64]:
    """Counts for a yes/no category per unit: columns (no, yes) from positives and totals."""
    positive = np.asarray(positive, dtype=np.int64)
    annotators = np.asarray(annotators, dtype=np.int64)
    return np.stack([annotators - positive, positive], axis=1)

"""Input checks shared by the maths modules, with coded, actionable messages.

Every public function of :mod:`textcat_kit.maths` validates its arrays here so that a
wrong shape fails at the call that caused it, with a message that names the argument,
the shape it got and what to pass instead, rather than deep inside NumPy broadcasting.
All errors are :class:`ValueError` (``DataError`` is a subclass of it).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import ConfigError, DataError, Errors

#: Scores may exceed [0, 1] by this much from float rounding (e.g. a softmax in float32).
PROB_TOLERANCE = 1e-6


def as_float_array(values: Any, name: str, ndim: int, expected: str, hint: str) -> np.ndarray:
    """Convert ``values`` to a float64 array of ``ndim`` dimensions or raise E150 / E152."""
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != ndim:
        raise DataError(
            Errors.E150.format(
                name=name, ndim=ndim, expected=expected, shape=array.shape, hint=hint
            )
        )
    if array.size == 0:
        raise DataError(Errors.E152.format(name=name, shape=array.shape))
    return array


def check_unit_interval(array: np.ndarray, name: str) -> np.ndarray:
    """Raise E153 if ``array`` has NaN/inf or values outside [0, 1]; clip rounding noise.

    Values within :data:`PROB_TOLERANCE` of the interval are clipped rather than
    rejected, because softmax outputs in float32 routinely sum to 1 + 1e-7.
    """
    if array.size:
        low, high = float(array.min()), float(array.max())  # NaN if any value is NaN
        if -PROB_TOLERANCE <= low and high <= 1.0 + PROB_TOLERANCE:
            # The common case (this runs on every batch at inference): two reductions.
            return np.clip(array, 0.0, 1.0) if low < 0.0 or high > 1.0 else array.copy()
    bad = ~np.isfinite(array)
    what = "a non-finite value"
    if not bad.any():
        bad = (array < -PROB_TOLERANCE) | (array > 1.0 + PROB_TOLERANCE)
        what = "a value outside [0, 1]"
    if bad.any():
        index = tuple(int(i) for i in np.argwhere(bad)[0])
        position = index[0] if len(index) == 1 else index
        raise DataError(
            Errors.E153.format(name=name, what=what, index=position, value=array[index])
        )
    return np.clip(array, 0.0, 1.0)


def check_probs(probs: Any, name: str = "probs") -> np.ndarray:
    """Validate a (n_docs, n_labels) score matrix and return it as float64."""
    array = as_float_array(
        probs,
        name,
        2,
        "(n_docs, n_labels)",
        "Pass one row per doc and one column per label (reshape a single label with x[:, None]).",
    )
    return check_unit_interval(array, name)


def check_probs_gold(
    probs: Any, gold: Any, probs_name: str = "probs"
) -> tuple[np.ndarray, np.ndarray]:
    """Validate a score matrix and a gold matrix of the same (n_docs, n_labels) shape."""
    probs_array = check_probs(probs, probs_name)
    gold_array = check_probs(gold, "gold")
    if probs_array.shape != gold_array.shape:
        raise DataError(
            Errors.E151.format(
                name=probs_name,
                shape=probs_array.shape,
                other="gold",
                other_shape=gold_array.shape,
                and_labels=" and the same labels",
            )
        )
    return probs_array, gold_array


def check_scores_targets(
    scores: Any, targets: Any, scores_name: str = "scores", targets_name: str = "y"
) -> tuple[np.ndarray, np.ndarray]:
    """Validate two 1-D arrays of the same length: scores in [0, 1] and targets in [0, 1]."""
    hint = "Pass one value per doc (e.g. one column probs[:, j], or probs.max(axis=1))."
    scores_array = as_float_array(scores, scores_name, 1, "(n_docs,)", hint)
    targets_array = as_float_array(targets, targets_name, 1, "(n_docs,)", hint)
    if scores_array.shape != targets_array.shape:
        raise DataError(
            Errors.E151.format(
                name=scores_name,
                shape=scores_array.shape,
                other=targets_name,
                other_shape=targets_array.shape,
                and_labels="",
            )
        )
    return (
        check_unit_interval(scores_array, scores_name),
        check_unit_interval(targets_array, targets_name),
    )


def check_range(
    value: float,
    name: str,
    low: float,
    high: float,
    *,
    low_open: bool = False,
    allow_inf: bool = False,
) -> float:
    """Raise E154 unless ``low <= value <= high`` (``low < value`` if ``low_open``).

    NaN is always rejected; infinity only unless ``allow_inf``.
    """
    value = float(value)
    too_low = value <= low if low_open else value < low
    not_a_number = np.isnan(value) or (np.isinf(value) and not allow_inf)
    if not_a_number or too_low or value > high:
        bracket = "(" if low_open else "["
        raise DataError(
            Errors.E154.format(
                name=name, value=value, rule=f"it must be in {bracket}{low}, {high}]"
            )
        )
    return value


def check_choice(value: str, name: str, options: tuple[str, ...]) -> str:
    """Raise the shared E013 unless ``value`` is one of ``options``."""
    if value not in options:
        raise ConfigError(Errors.E013.format(what=name, value=value, options=", ".join(options)))
    return value


def binarize(gold: np.ndarray) -> np.ndarray:
    """Gold values as booleans: soft values >= 0.5 count as positive (the metrics' rule)."""
    return np.asarray(gold) >= 0.5


def gold_index(gold: np.ndarray) -> np.ndarray:
    """Index of the gold label of each doc of an exclusive task (raises E155 if none)."""
    best = np.argmax(gold, axis=1)
    best_value = gold[np.arange(gold.shape[0]), best]
    missing = np.flatnonzero(best_value < 0.5)
    if missing.size:
        row = int(missing[0])
        raise DataError(Errors.E155.format(row=row, value=float(best_value[row])))
    return best

"""Class-weighted and focal cross-entropy for text classifiers, and balanced class weights.

Pure NumPy (no spaCy): every function takes the classifier's output probabilities
``probs`` (``n_docs x n_labels``), the gold values ``truths`` (same shape, 0.0/1.0) and a
``not_missing`` mask (1.0 where the gold value is known, 0.0 where the label is missing
from the reference ``doc.cats``), and returns ``(loss, d_logits)``:

* ``loss`` is the **sum** over the batch (docs and, for multi-label, labels) of the
  weighted per-doc loss. Summing rather than averaging keeps the gradient on the same
  scale as spaCy's own ``scores - truths`` (which is the gradient of a summed
  cross-entropy), so learning rates tuned for spaCy's textcat stay valid;
* ``d_logits`` is the gradient of that ``loss`` with respect to the **logits** (the input
  of the softmax or sigmoid), masked by ``not_missing``.

How the gradient reaches the model depends on its output layer (see
:func:`gradient_wrt_probabilities`): thinc's ``Softmax`` layer takes ``d_logits`` as it is;
``Logistic`` and ``softmax_activation`` multiply by the activation's Jacobian, so they need
the gradient with respect to the probabilities instead.

Two kinds of output are covered:

* exclusive classes (softmax): per-doc loss ``-sum_c w_c y_c (1 - p_c)^gamma log p_c``;
  a doc is used only if all its labels are known and it has a positive label (a softmax
  cannot express "none of these": such docs add no loss and no gradient);
* multi-label (one sigmoid per label): per-(doc, label) loss
  ``-[w+ y (1 - p)^gamma log p + w- (1 - y) p^gamma log(1 - p)]``, masked per element.

``gamma = 0`` is (class-weighted) cross-entropy; ``gamma > 0`` is the focal loss of Lin
et al. (2017), which scales down the loss of examples the model already gets right so
that training concentrates on the hard ones (often those of rare labels).
"""

from __future__ import annotations

import numpy as np

from ..errors import ConfigError, DataError
from ..errors import Errors as LossErrors

#: Probabilities are floored at this value before taking logs or dividing by them. It is
#: tiny on purpose: a larger floor (e.g. 1e-7) would flatten the gradient of confidently
#: wrong predictions, which is exactly where cross-entropy should push hardest.
TINY = 1e-30

#: Default cap on balanced weights: a label with 1 example in 10,000 would otherwise get
#: a weight of ~10,000 and its few examples would dominate every batch they appear in.
DEFAULT_MAX_WEIGHT = 10.0


# --- balanced weights ------------------------------------------------------------------------


def balanced_class_weights(
    label_counts: np.ndarray,
    *,
    annotated_counts: np.ndarray | None = None,
    exclusive: bool,
    max_weight: float | None = DEFAULT_MAX_WEIGHT,
    power: float = 1.0,
) -> np.ndarray:
    """Per-label weights that balance the labels' share of the loss.

    ``label_counts[j]`` is the number of training docs whose gold value of label ``j`` is
    1. For an **exclusive** task the weight is scikit-learn's "balanced" heuristic
    ``n_docs / (n_classes * count_j)`` over the classes that occur, so that the weights
    average to 1 over the training docs and the overall gradient scale is unchanged.
    For a **multi-label** task each label is its own binary problem, and the weight is
    the positive-class weight ``n_negative_j / n_positive_j`` (PyTorch's ``pos_weight``
    convention), where ``annotated_counts[j]`` (docs where label ``j`` is not missing)
    gives ``n_negative_j = annotated_counts[j] - label_counts[j]``; negatives keep weight 1.

    ``power`` dampens the weights before the cap: ``weight ** power``, so 1 is fully
    balanced, 0.5 the square root (a common gentler choice when labels span orders of
    magnitude, e.g. GoEmotions, where 26 of 28 labels would otherwise hit a cap of 10) and
    0 no weighting at all.

    Weights are clipped to ``[1 / max_weight, max_weight]`` (no clipping if ``None``): very
    rare labels would otherwise get weights in the hundreds and make training unstable,
    and dominant labels weights near zero. A label without positive examples gets 1.0
    (there is nothing to weight, and no evidence to set it by).
    """
    counts = np.asarray(label_counts, dtype=np.float64)
    if counts.ndim != 1 or np.any(counts < 0) or not np.all(np.isfinite(counts)):
        raise DataError(
            LossErrors.E181.format(
                name="label_counts", value=counts, rule="a 1-D array of counts >= 0"
            )
        )
    if max_weight is not None and not max_weight >= 1.0:
        raise ConfigError(
            LossErrors.E181.format(name="max_weight", value=max_weight, rule="must be >= 1")
        )
    if not (np.isfinite(power) and power >= 0):
        raise ConfigError(LossErrors.E181.format(name="power", value=power, rule="must be >= 0"))
    present = counts > 0
    weights = np.ones_like(counts)
    if exclusive:
        n_present = int(present.sum())
        if n_present:
            weights[present] = counts.sum() / (n_present * counts[present])
    else:
        if annotated_counts is None:
            raise DataError(
                LossErrors.E181.format(
                    name="annotated_counts",
                    value=None,
                    rule="multi-label weights need the number of docs where each label is known",
                )
            )
        annotated = np.asarray(annotated_counts, dtype=np.float64)
        if annotated.shape != counts.shape or np.any(annotated < counts):
            raise DataError(
                LossErrors.E181.format(
                    name="annotated_counts",
                    value=annotated,
                    rule=f"one count per label, each >= its label count {counts}",
                )
            )
        weights[present] = (annotated[present] - counts[present]) / counts[present]
    weights = weights**power
    if max_weight is not None:
        weights = np.clip(weights, 1.0 / max_weight, max_weight)
    return weights


# --- the losses --------------------------------------------------------------------------------


def class_weighted_gradient(
    probs: np.ndarray,
    truths: np.ndarray,
    not_missing: np.ndarray,
    *,
    exclusive: bool,
    class_weights: np.ndarray | None = None,
    negative_weights: np.ndarray | None = None,
) -> tuple[float, np.ndarray]:
    """Class-weighted cross-entropy and its gradient w.r.t. the logits.

    Exclusive (softmax): ``loss = -sum_i sum_c w_c y_ic log p_ic`` and
    ``d_logits_i = (sum_c w_c y_ic) p_i - w * y_i``, i.e. ``w_t (p_i - y_i)`` for a one-hot
    row with true class ``t``. With all weights 1 this is exactly spaCy's ``scores - truths``.

    Multi-label (sigmoid): ``loss = -sum m [w+ y log p + w- (1 - y) log(1 - p)]`` and
    ``d_logits = m [w+ y (p - 1) + w- (1 - y) p]``, where ``class_weights`` are the
    positive weights ``w+`` and ``negative_weights`` the negative weights ``w-`` (default 1).
    """
    probs, truths, not_missing = _check_batch(probs, truths, not_missing)
    n_labels = probs.shape[1]
    weights = _check_weights(class_weights, n_labels, "class_weights")
    if exclusive:
        if negative_weights is not None:
            raise ConfigError(LossErrors.E183)
        return _softmax_loss(probs, truths, not_missing, gamma=0.0, class_weights=weights)
    neg_weights = _check_weights(negative_weights, n_labels, "negative_weights")
    log_p = np.log(np.maximum(probs, TINY))
    log_not_p = np.log(np.maximum(1.0 - probs, TINY))
    positive = weights * truths * not_missing
    negative = neg_weights * (1.0 - truths) * not_missing
    loss = -float(np.sum(positive * log_p + negative * log_not_p))
    d_logits = positive * (probs - 1.0) + negative * probs
    return loss, d_logits


def focal_gradient_binary(
    probs: np.ndarray,
    truths: np.ndarray,
    not_missing: np.ndarray,
    *,
    gamma: float,
    positive_weights: np.ndarray | None = None,
    negative_weights: np.ndarray | None = None,
) -> tuple[float, np.ndarray]:
    """Focal loss for independent sigmoid outputs and its gradient w.r.t. the logits.

    ``loss = -sum m [w+ y (1 - p)^g log p + w- (1 - y) p^g log(1 - p)]``. With
    ``dp/dz = p (1 - p)`` the gradient of the positive term is
    ``(1 - p)^g (g p log p - (1 - p))`` and of the negative term
    ``p^g (p - g (1 - p) log(1 - p))``; both reduce to cross-entropy's ``p - y`` at ``g = 0``.
    Lin et al.'s ``alpha`` is ``positive_weights = alpha``, ``negative_weights = 1 - alpha``.
    """
    _check_gamma(gamma)
    probs, truths, not_missing = _check_batch(probs, truths, not_missing)
    n_labels = probs.shape[1]
    pos_weights = _check_weights(positive_weights, n_labels, "positive_weights")
    neg_weights = _check_weights(negative_weights, n_labels, "negative_weights")
    log_p = np.log(np.maximum(probs, TINY))
    log_not_p = np.log(np.maximum(1.0 - probs, TINY))
    not_p = 1.0 - probs
    positive = pos_weights * truths * not_missing
    negative = neg_weights * (1.0 - truths) * not_missing
    pos_modulation = not_p**gamma
    neg_modulation = probs**gamma
    loss = -float(np.sum(positive * pos_modulation * log_p + negative * neg_modulation * log_not_p))
    d_logits = positive * pos_modulation * (gamma * probs * log_p - not_p) + (
        negative * neg_modulation * (probs - gamma * not_p * log_not_p)
    )
    return loss, d_logits


def focal_gradient_softmax(
    probs: np.ndarray,
    truths: np.ndarray,
    not_missing: np.ndarray,
    *,
    gamma: float,
    class_weights: np.ndarray | None = None,
) -> tuple[float, np.ndarray]:
    """Focal loss for a softmax over exclusive classes and its gradient w.r.t. the logits.

    ``loss = -sum_i sum_c w_c y_ic (1 - p_ic)^g log p_ic``. Writing ``q = 1 - p`` and
    ``A_c = q_c^g (1 - g p_c log(p_c) / q_c)`` (the focal factor; 1 at ``g = 0``), the
    gradient is ``d_logits_i = p_i sum_c B_ic - B_i`` with ``B_ic = w_c y_ic A_ic``: for a
    one-hot row ``w_t A_t (p_i - y_i)``, cross-entropy's gradient scaled by how wrong the
    prediction still is.
    """
    _check_gamma(gamma)
    probs, truths, not_missing = _check_batch(probs, truths, not_missing)
    weights = _check_weights(class_weights, probs.shape[1], "class_weights")
    return _softmax_loss(probs, truths, not_missing, gamma=gamma, class_weights=weights)


def gradient_wrt_probabilities(
    d_logits: np.ndarray, probs: np.ndarray, *, exclusive: bool
) -> np.ndarray:
    """Turn a gradient w.r.t. the logits into one w.r.t. the probabilities.

    Needed for output layers whose backward pass multiplies by the activation's Jacobian
    (thinc's ``Logistic`` and ``softmax_activation``, used by spaCy's ``TextCatBOW`` and by
    every multi-label architecture); thinc's ``Softmax`` layer instead passes the incoming
    gradient straight to its weights, so it takes ``d_logits`` unchanged.

    Sigmoid: ``dL/dp = dL/dz / (p (1 - p))``. Softmax: the Jacobian ``diag(p) - p p^T``
    maps ``g = dL/dz / p`` back to ``p * (g - <g, p>) = dL/dz - p * sum(dL/dz) = dL/dz``
    because the logit gradient of any softmax loss sums to zero over the classes.
    The denominators are floored at :data:`TINY`, so a saturated output (``p`` exactly 0
    or 1 in float32) gets a zero gradient instead of NaN.
    """
    d_logits = np.asarray(d_logits, dtype=np.float64)
    probs = np.asarray(probs, dtype=np.float64)
    if d_logits.shape != probs.shape:
        raise DataError(
            LossErrors.E180.format(name="d_logits", shape=d_logits.shape, expected=probs.shape)
        )
    if exclusive:
        return d_logits / np.maximum(probs, TINY)
    return d_logits / np.maximum(probs * (1.0 - probs), TINY)


# --- helpers -----------------------------------------------------------------------------------


def _softmax_loss(
    probs: np.ndarray,
    truths: np.ndarray,
    not_missing: np.ndarray,
    *,
    gamma: float,
    class_weights: np.ndarray,
) -> tuple[float, np.ndarray]:
    """Shared body of the weighted (``gamma = 0``) and focal softmax losses."""
    row_known = np.all(not_missing > 0, axis=1, keepdims=True)
    targets = truths * class_weights * row_known
    not_p = 1.0 - probs
    # log p via log1p(-q) where p is close to 1, so that log(p) / q stays accurate there.
    log_p = np.where(
        not_p < 0.5, np.log1p(-np.minimum(not_p, 0.5)), np.log(np.maximum(probs, TINY))
    )
    log_p_over_not_p = np.where(not_p > 0, log_p / np.where(not_p > 0, not_p, 1.0), -1.0)
    focal_factor = not_p**gamma * (1.0 - gamma * probs * log_p_over_not_p)
    loss = -float(np.sum(targets * not_p**gamma * log_p))
    scaled_targets = targets * focal_factor
    d_logits = probs * scaled_targets.sum(axis=1, keepdims=True) - scaled_targets
    return loss, d_logits


def _check_batch(
    probs: np.ndarray, truths: np.ndarray, not_missing: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """float64 copies of the three batch arrays, or E180 if their shapes differ.

    ``probs`` is clipped to [0, 1]: float32 softmax outputs can exceed 1 by rounding, and
    ``(1 - p) ** gamma`` of a negative number is NaN.
    """
    probs = np.clip(np.asarray(probs, dtype=np.float64), 0.0, 1.0)
    if probs.ndim != 2:
        raise DataError(
            LossErrors.E180.format(name="probs", shape=probs.shape, expected="(n_docs, n_labels)")
        )
    arrays = [probs]
    for name, values in (("truths", truths), ("not_missing", not_missing)):
        array = np.asarray(values, dtype=np.float64)
        if array.shape != probs.shape:
            raise DataError(
                LossErrors.E180.format(name=name, shape=array.shape, expected=probs.shape)
            )
        arrays.append(array)
    return arrays[0], arrays[1], arrays[2]


def _check_weights(weights: np.ndarray | None, n_labels: int, name: str) -> np.ndarray:
    """Validated per-label weights as a float64 row, all ones when ``weights`` is None."""
    if weights is None:
        return np.ones(n_labels, dtype=np.float64)
    array = np.asarray(weights, dtype=np.float64)
    if array.shape != (n_labels,):
        raise DataError(LossErrors.E180.format(name=name, shape=array.shape, expected=(n_labels,)))
    bad = ~(np.isfinite(array) & (array > 0))
    if np.any(bad):
        index = int(np.argmax(bad))
        raise ConfigError(LossErrors.E182.format(name=name, index=index, value=array[index]))
    return array


def _check_gamma(gamma: float) -> None:
    """Raise E181 unless ``gamma`` is a finite number >= 0."""
    if not (np.isfinite(gamma) and gamma >= 0):
        raise ConfigError(LossErrors.E181.format(name="gamma", value=gamma, rule="must be >= 0"))

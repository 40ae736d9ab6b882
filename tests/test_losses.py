"""Loss maths: hand-computed values, finite-difference gradients, balanced weights."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from thinc.api import Logistic, softmax_activation

from textcat_kit.errors import ConfigError, DataError
from textcat_kit.maths.losses import (
    balanced_class_weights,
    class_weighted_gradient,
    focal_gradient_binary,
    focal_gradient_softmax,
    gradient_wrt_probabilities,
)


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def sigmoid(logits: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-logits))


def numeric_gradient(
    loss_of_logits: Callable[[np.ndarray], float], logits: np.ndarray
) -> np.ndarray:
    """Central differences of ``loss_of_logits`` at ``logits``."""
    step = 1e-6
    grad = np.zeros_like(logits)
    for index in np.ndindex(*logits.shape):
        plus, minus = logits.copy(), logits.copy()
        plus[index] += step
        minus[index] -= step
        grad[index] = (loss_of_logits(plus) - loss_of_logits(minus)) / (2 * step)
    return grad


# --- hand-computed values ----------------------------------------------------------------------

EXCLUSIVE_PROBS = np.array([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6]])
EXCLUSIVE_TRUTHS = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
ALL_KNOWN = np.ones((2, 3))


def test_weighted_softmax_cross_entropy_matches_hand_computation() -> None:
    loss, grad = class_weighted_gradient(
        EXCLUSIVE_PROBS,
        EXCLUSIVE_TRUTHS,
        ALL_KNOWN,
        exclusive=True,
        class_weights=np.array([1.0, 2.0, 3.0]),
    )
    # -(1 * log 0.7 + 3 * log 0.6) = 0.356675 + 1.532477
    assert loss == pytest.approx(1.8891518, abs=1e-6)
    # row 0: 1 * (p - y); row 1: 3 * (p - y)
    np.testing.assert_allclose(grad, [[-0.3, 0.2, 0.1], [0.3, 0.9, -1.2]], atol=1e-12)


def test_unweighted_cross_entropy_gradient_is_spacys_scores_minus_truths() -> None:
    _, grad = class_weighted_gradient(EXCLUSIVE_PROBS, EXCLUSIVE_TRUTHS, ALL_KNOWN, exclusive=True)
    np.testing.assert_allclose(grad, EXCLUSIVE_PROBS - EXCLUSIVE_TRUTHS, atol=1e-12)
    probs = np.array([[0.8, 0.3], [0.4, 0.9]])
    truths = np.array([[1.0, 0.0], [1.0, 1.0]])
    _, grad = class_weighted_gradient(probs, truths, np.ones((2, 2)), exclusive=False)
    np.testing.assert_allclose(grad, probs - truths, atol=1e-12)


def test_weighted_binary_cross_entropy_matches_hand_computation() -> None:
    probs = np.array([[0.8, 0.3]])
    truths = np.array([[1.0, 0.0]])
    loss, grad = class_weighted_gradient(
        probs, truths, np.ones((1, 2)), exclusive=False, class_weights=np.array([2.0, 5.0])
    )
    # -(2 * log 0.8 + 1 * log 0.7): the weight 5 is for positives of label 1, which has none
    assert loss == pytest.approx(0.8029621, abs=1e-6)
    np.testing.assert_allclose(grad, [[2 * (0.8 - 1.0), 0.3]], atol=1e-12)


def test_missing_labels_get_no_loss_and_no_gradient() -> None:
    probs = np.array([[0.8, 0.3]])
    truths = np.array([[1.0, 0.0]])
    not_missing = np.array([[1.0, 0.0]])
    for compute in (
        lambda: class_weighted_gradient(
            probs, truths, not_missing, exclusive=False, class_weights=np.array([2.0, 5.0])
        ),
        lambda: focal_gradient_binary(probs, truths, not_missing, gamma=2.0),
    ):
        loss, grad = compute()
        assert grad[0, 1] == 0.0
        assert grad[0, 0] != 0.0
    loss, _ = class_weighted_gradient(
        probs, truths, not_missing, exclusive=False, class_weights=np.array([2.0, 5.0])
    )
    assert loss == pytest.approx(-2 * np.log(0.8))


def test_focal_binary_matches_hand_computation() -> None:
    probs = np.array([[0.8, 0.3]])
    truths = np.array([[1.0, 0.0]])
    loss, grad = focal_gradient_binary(probs, truths, np.ones((1, 2)), gamma=2.0)
    # positive: -(0.2^2) log 0.8 = 0.0089257; negative: -(0.3^2) log 0.7 = 0.0321007
    assert loss == pytest.approx(0.0089257 + 0.0321007, abs=1e-6)
    # positive: 0.2^2 (2 * 0.8 log 0.8 - 0.2); negative: 0.3^2 (0.3 - 2 * 0.7 log 0.7)
    np.testing.assert_allclose(grad, [[-0.0222812, 0.0719410]], atol=1e-6)


def test_focal_softmax_matches_hand_computation() -> None:
    probs = np.array([[0.7, 0.2, 0.1]])
    truths = np.array([[1.0, 0.0, 0.0]])
    loss, grad = focal_gradient_softmax(probs, truths, np.ones((1, 3)), gamma=2.0)
    # -(0.3^2) log 0.7
    assert loss == pytest.approx(0.0321007, abs=1e-6)
    # A = 0.3^2 (1 - 2 * 0.7 log(0.7) / 0.3) = 0.2398035; gradient A (p - y)
    np.testing.assert_allclose(grad, [[-0.0719410, 0.0479607, 0.0239803]], atol=1e-6)


def test_focal_with_gamma_zero_is_weighted_cross_entropy() -> None:
    rng = np.random.default_rng(0)
    weights = np.array([0.5, 2.0, 4.0])
    probs = softmax(rng.normal(size=(5, 3)))
    truths = np.eye(3)[rng.integers(0, 3, size=5)]
    known = np.ones_like(probs)
    expected = class_weighted_gradient(probs, truths, known, exclusive=True, class_weights=weights)
    got = focal_gradient_softmax(probs, truths, known, gamma=0.0, class_weights=weights)
    assert got[0] == pytest.approx(expected[0])
    np.testing.assert_allclose(got[1], expected[1], atol=1e-12)
    probs = sigmoid(rng.normal(size=(5, 3)))
    truths = (rng.random((5, 3)) > 0.5).astype(float)
    expected = class_weighted_gradient(probs, truths, known, exclusive=False, class_weights=weights)
    got = focal_gradient_binary(probs, truths, known, gamma=0.0, positive_weights=weights)
    assert got[0] == pytest.approx(expected[0])
    np.testing.assert_allclose(got[1], expected[1], atol=1e-12)


def test_focal_loss_down_weights_easy_examples_more_than_hard_ones() -> None:
    truths = np.array([[1.0, 0.0], [1.0, 0.0]])
    probs = np.array([[0.95, 0.05], [0.3, 0.7]])  # an easy and a hard example
    _, ce_grad = class_weighted_gradient(probs, truths, np.ones((2, 2)), exclusive=True)
    _, focal_grad = focal_gradient_softmax(probs, truths, np.ones((2, 2)), gamma=2.0)
    ratio = np.abs(focal_grad[:, 0]) / np.abs(ce_grad[:, 0])
    assert ratio[0] < 0.01 < ratio[1]


def test_exclusive_rows_without_a_positive_label_are_ignored() -> None:
    probs = np.array([[0.5, 0.3, 0.2], [0.7, 0.2, 0.1]])
    truths = np.array([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0]])
    for compute in (class_weighted_gradient, focal_gradient_softmax):
        kwargs = {"exclusive": True} if compute is class_weighted_gradient else {"gamma": 1.0}
        loss, grad = compute(probs, truths, np.ones((2, 3)), **kwargs)  # type: ignore[operator]
        np.testing.assert_array_equal(grad[0], 0.0)
        assert np.all(grad[1] != 0.0)


# --- finite differences --------------------------------------------------------------------------


@pytest.mark.parametrize("gamma", [0.0, 0.5, 2.0])
def test_softmax_gradients_match_finite_differences(gamma: float) -> None:
    rng = np.random.default_rng(1)
    logits = rng.normal(scale=2.0, size=(4, 3))
    truths = np.eye(3)[[0, 2, 1, 2]]
    known = np.ones_like(logits)
    weights = np.array([0.5, 1.5, 3.0])

    def focal_of(z: np.ndarray) -> float:
        return focal_gradient_softmax(
            softmax(z), truths, known, gamma=gamma, class_weights=weights
        )[0]

    _, grad = focal_gradient_softmax(
        softmax(logits), truths, known, gamma=gamma, class_weights=weights
    )
    np.testing.assert_allclose(grad, numeric_gradient(focal_of, logits), atol=1e-6)

    def weighted_of(z: np.ndarray) -> float:
        return class_weighted_gradient(
            softmax(z), truths, known, exclusive=True, class_weights=weights
        )[0]

    _, grad = class_weighted_gradient(
        softmax(logits), truths, known, exclusive=True, class_weights=weights
    )
    np.testing.assert_allclose(grad, numeric_gradient(weighted_of, logits), atol=1e-6)


def test_weighted_softmax_gradient_matches_finite_differences_for_soft_targets() -> None:
    rng = np.random.default_rng(2)
    logits = rng.normal(size=(3, 4))
    truths = softmax(rng.normal(size=(3, 4)))
    known = np.ones_like(logits)
    weights = np.array([1.0, 2.0, 0.5, 4.0])

    def loss_of(z: np.ndarray) -> float:
        return class_weighted_gradient(
            softmax(z), truths, known, exclusive=True, class_weights=weights
        )[0]

    _, grad = class_weighted_gradient(
        softmax(logits), truths, known, exclusive=True, class_weights=weights
    )
    np.testing.assert_allclose(grad, numeric_gradient(loss_of, logits), atol=1e-6)


@pytest.mark.parametrize("gamma", [0.0, 0.5, 2.0])
def test_binary_gradients_match_finite_differences(gamma: float) -> None:
    rng = np.random.default_rng(3)
    logits = rng.normal(scale=2.0, size=(4, 3))
    truths = (rng.random((4, 3)) > 0.5).astype(float)
    not_missing = np.ones_like(logits)
    not_missing[1, 2] = 0.0
    positive_weights = np.array([1.0, 4.0, 9.0])
    negative_weights = np.array([0.75, 0.75, 0.5])

    def focal_of(z: np.ndarray) -> float:
        return focal_gradient_binary(
            sigmoid(z),
            truths,
            not_missing,
            gamma=gamma,
            positive_weights=positive_weights,
            negative_weights=negative_weights,
        )[0]

    _, grad = focal_gradient_binary(
        sigmoid(logits),
        truths,
        not_missing,
        gamma=gamma,
        positive_weights=positive_weights,
        negative_weights=negative_weights,
    )
    np.testing.assert_allclose(grad, numeric_gradient(focal_of, logits), atol=1e-6)
    assert grad[1, 2] == 0.0

    def weighted_of(z: np.ndarray) -> float:
        return class_weighted_gradient(
            sigmoid(z),
            truths,
            not_missing,
            exclusive=False,
            class_weights=positive_weights,
            negative_weights=negative_weights,
        )[0]

    _, grad = class_weighted_gradient(
        sigmoid(logits),
        truths,
        not_missing,
        exclusive=False,
        class_weights=positive_weights,
        negative_weights=negative_weights,
    )
    np.testing.assert_allclose(grad, numeric_gradient(weighted_of, logits), atol=1e-6)


# --- gradient for activation layers that back-propagate through the Jacobian --------------------


def test_probability_gradient_through_thinc_logistic_gives_back_the_logit_gradient() -> None:
    rng = np.random.default_rng(4)
    logits = rng.normal(scale=3.0, size=(5, 4)).astype("float32")
    truths = (rng.random((5, 4)) > 0.7).astype("float32")
    layer = Logistic()
    layer.initialize()
    probs, backprop = layer.begin_update(logits)
    _, d_logits = focal_gradient_binary(probs, truths, np.ones_like(truths), gamma=2.0)
    d_probs = gradient_wrt_probabilities(d_logits, probs, exclusive=False).astype("float32")
    np.testing.assert_allclose(backprop(d_probs), d_logits, rtol=1e-4, atol=1e-6)


def test_probability_gradient_through_thinc_softmax_activation_gives_back_the_logit_gradient() -> (
    None
):
    rng = np.random.default_rng(5)
    logits = rng.normal(scale=3.0, size=(5, 4)).astype("float32")
    truths = np.eye(4, dtype="float32")[[0, 1, 3, 3, 2]]
    layer = softmax_activation()
    layer.initialize()
    probs, backprop = layer.begin_update(logits)
    _, d_logits = class_weighted_gradient(
        probs, truths, np.ones_like(truths), exclusive=True, class_weights=np.arange(1.0, 5.0)
    )
    d_probs = gradient_wrt_probabilities(d_logits, probs, exclusive=True).astype("float32")
    np.testing.assert_allclose(backprop(d_probs), d_logits, rtol=1e-4, atol=1e-6)


def test_saturated_probabilities_give_finite_values() -> None:
    probs = np.array([[1.0, 0.0], [0.0, 1.0]], dtype="float32")
    truths = np.array([[0.0, 1.0], [0.0, 1.0]], dtype="float32")
    known = np.ones_like(probs)
    for exclusive in (True, False):
        loss, d_logits = class_weighted_gradient(probs, truths, known, exclusive=exclusive)
        d_probs = gradient_wrt_probabilities(d_logits, probs, exclusive=exclusive)
        assert np.isfinite(loss) and loss > 60  # -log(1e-30) for a confidently wrong doc
        assert np.all(np.isfinite(d_logits)) and np.all(np.isfinite(d_probs))
    loss, d_logits = focal_gradient_softmax(probs, truths, known, gamma=0.5)
    assert np.isfinite(loss) and np.all(np.isfinite(d_logits))
    np.testing.assert_allclose(d_logits[1], 0.0)  # a perfect prediction has nothing to learn


# --- balanced weights ----------------------------------------------------------------------------


def test_balanced_weights_exclusive_follow_sklearn_and_average_to_one() -> None:
    counts = np.array([10, 10, 2, 0])
    weights = balanced_class_weights(counts, exclusive=True, max_weight=None)
    # n / (n_classes_present * count) = 22 / (3 * count); an absent class gets 1.0
    np.testing.assert_allclose(weights, [22 / 30, 22 / 30, 22 / 6, 1.0])
    assert np.sum(counts * weights) == pytest.approx(counts.sum())


def test_balanced_weights_multilabel_are_negative_to_positive_ratios() -> None:
    counts = np.array([50, 10, 1, 0])
    annotated = np.array([100, 100, 100, 100])
    weights = balanced_class_weights(
        counts, annotated_counts=annotated, exclusive=False, max_weight=None
    )
    np.testing.assert_allclose(weights, [1.0, 9.0, 99.0, 1.0])


def test_balanced_weights_are_capped_both_ways() -> None:
    counts = np.array([1000, 1])
    weights = balanced_class_weights(counts, exclusive=True, max_weight=10.0)
    # uncapped: 1001 / 2000 = 0.5005 and 1001 / 2 = 500.5
    np.testing.assert_allclose(weights, [0.5005, 10.0])
    weights = balanced_class_weights(
        np.array([99, 1]), annotated_counts=np.array([100, 100]), exclusive=False, max_weight=4.0
    )
    np.testing.assert_allclose(weights, [0.25, 4.0])


def test_balance_power_dampens_the_weights_before_the_cap() -> None:
    counts, annotated = np.array([99, 1, 16]), np.array([100, 100, 80])
    # raw n_neg / n_pos: 1/99, 99, 4; square roots: 0.1005, 9.95, 2
    weights = balanced_class_weights(
        counts, annotated_counts=annotated, exclusive=False, max_weight=None, power=0.5
    )
    np.testing.assert_allclose(weights, [np.sqrt(1 / 99), np.sqrt(99), 2.0])
    weights = balanced_class_weights(
        counts, annotated_counts=annotated, exclusive=False, max_weight=5.0, power=0.5
    )
    np.testing.assert_allclose(weights, [0.2, 5.0, 2.0])
    weights = balanced_class_weights(counts, annotated_counts=annotated, exclusive=False, power=0)
    np.testing.assert_allclose(weights, 1.0)


# --- errors ---------------------------------------------------------------------------------


def test_errors_name_the_argument_and_have_codes() -> None:
    with pytest.raises(DataError, match=r"\[E180\] 'truths'"):
        class_weighted_gradient(
            np.ones((2, 3)) / 3, np.ones((2, 2)), np.ones((2, 3)), exclusive=True
        )
    with pytest.raises(ConfigError, match=r"\[E181\] 'gamma'"):
        focal_gradient_binary(np.ones((1, 2)) / 2, np.ones((1, 2)), np.ones((1, 2)), gamma=-1.0)
    with pytest.raises(ConfigError, match=r"\[E182\] 'class_weights' for label index 1"):
        class_weighted_gradient(
            EXCLUSIVE_PROBS,
            EXCLUSIVE_TRUTHS,
            ALL_KNOWN,
            exclusive=True,
            class_weights=np.array([1.0, 0.0, 1.0]),
        )
    with pytest.raises(ConfigError, match=r"\[E183\]"):
        class_weighted_gradient(
            EXCLUSIVE_PROBS,
            EXCLUSIVE_TRUTHS,
            ALL_KNOWN,
            exclusive=True,
            negative_weights=np.ones(3),
        )
    with pytest.raises(DataError, match=r"\[E181\] 'annotated_counts'"):
        balanced_class_weights(np.array([1, 2]), exclusive=False)
    with pytest.raises(ConfigError, match=r"\[E181\] 'max_weight'"):
        balanced_class_weights(np.array([1, 2]), exclusive=True, max_weight=0.5)
    with pytest.raises(ConfigError, match=r"\[E181\] 'power'"):
        balanced_class_weights(np.array([1, 2]), exclusive=True, power=-1.0)

"""Registered loss settings for the weighted text classifiers (``@misc`` functions).

A loss object holds the settings from the config (constructor), per-label weights fitted
from the training data in the component's ``initialize`` (``label_weights_``, trailing
underscore), and computes ``(loss, d_logits)`` for a batch by calling the pure functions
of :mod:`textcat_kit.maths.losses`. Its fitted state is plain JSON (:meth:`to_dict` /
:meth:`from_dict`) that the component writes next to its model, so ``spacy.load`` gives
back the weights the pipeline was trained with.

Registered, versioned names (use them under ``[components.<name>.loss]``):

* ``textcat_kit.CrossEntropyLoss.v1``: plain cross-entropy (softmax or sigmoid);
* ``textcat_kit.ClassWeightedLoss.v1``: cross-entropy with ``weights = "balanced"`` (computed
  from the training labels) or an explicit ``{label: weight}`` mapping;
* ``textcat_kit.FocalLoss.v1``: focal loss with ``gamma``, optionally ``alpha`` (multi-label)
  and the same ``weights`` as above.

In a multi-label task a label's weight multiplies the loss of its *positive* examples;
in an exclusive task it multiplies the loss of the docs of that class.
"""

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from spacy.util import registry

from ..errors import ConfigError, Errors
from ..maths.losses import (
    DEFAULT_MAX_WEIGHT,
    balanced_class_weights,
    class_weighted_gradient,
    focal_gradient_binary,
    focal_gradient_softmax,
)

BALANCED = "balanced"

#: What ``weights`` may be in the config: "balanced", a {label: weight} mapping, or None.
WeightsSetting = str | dict[str, float] | None


class TextcatLoss:
    """Base class of the registered losses: shared weight handling and serialisation.

    Subclasses set :attr:`registry_name` and implement :meth:`compute`.
    """

    registry_name = "textcat_kit.TextcatLoss"

    def __init__(
        self,
        *,
        weights: WeightsSetting = None,
        max_weight: float | None = DEFAULT_MAX_WEIGHT,
        balance_power: float = 1.0,
    ) -> None:
        self.weights = weights
        self.max_weight = max_weight
        self.balance_power = balance_power
        self.label_weights_: dict[str, float] | None = None
        self.exclusive_: bool | None = None

    def _invalid(self, setting: str, value: object, rule: str) -> ConfigError:
        """The E186 error for one invalid setting of this loss."""
        return ConfigError(
            Errors.E186.format(loss=self.registry_name, setting=setting, value=value, rule=rule)
        )

    def validate(self) -> None:
        """Raise E186 if a setting is invalid (called by the config builders and ``fit``)."""
        if isinstance(self.weights, str) and self.weights != BALANCED:
            raise self._invalid(
                "weights", self.weights, f'use "{BALANCED}", a mapping {{label: weight}} or null'
            )
        if isinstance(self.weights, Mapping):
            for label, weight in self.weights.items():
                if not (np.isfinite(weight) and weight > 0):
                    raise self._invalid(
                        f"weights.{label}", weight, "weights must be finite and > 0"
                    )
        if self.max_weight is not None and not self.max_weight >= 1.0:
            raise self._invalid("max_weight", self.max_weight, "must be >= 1 (or null for no cap)")
        if not (np.isfinite(self.balance_power) and self.balance_power >= 0):
            raise self._invalid(
                "balance_power",
                self.balance_power,
                "must be >= 0 (1 = fully balanced, 0.5 = square root)",
            )

    def fit(
        self,
        labels: Sequence[str],
        label_counts: np.ndarray,
        annotated_counts: np.ndarray,
        *,
        exclusive: bool,
        component_name: str = "textcat",
    ) -> "TextcatLoss":
        """Set :attr:`label_weights_` from the training label counts and return ``self``.

        ``label_counts[j]``: training docs with label ``j`` positive; ``annotated_counts[j]``:
        docs where label ``j`` is not missing. ``"balanced"`` weights come from
        :func:`~textcat_kit.maths.losses.balanced_class_weights`; a mapping is checked
        against ``labels`` and completed with 1.0 (``balance_power`` and the ``max_weight``
        cap are for balanced weights only: explicit weights are used as written); ``None``
        fits nothing.
        """
        self.validate()
        self.exclusive_ = exclusive
        if self.weights is None:
            self.label_weights_ = None
        elif isinstance(self.weights, str):
            values = balanced_class_weights(
                label_counts,
                annotated_counts=annotated_counts,
                exclusive=exclusive,
                max_weight=self.max_weight,
                power=self.balance_power,
            )
            self.label_weights_ = {
                label: float(value) for label, value in zip(labels, values, strict=True)
            }
        else:
            unknown = sorted(set(self.weights) - set(labels))
            if unknown:
                raise ConfigError(
                    Errors.E184.format(name=component_name, unknown=unknown, labels=list(labels))
                )
            self.label_weights_ = {label: float(self.weights.get(label, 1.0)) for label in labels}
        return self

    def weights_for(
        self, labels: Sequence[str], *, component_name: str = "textcat"
    ) -> np.ndarray | None:
        """Per-label weights in the order of ``labels``; None when the loss is unweighted.

        Labels without a fitted weight (added after ``initialize``) get 1.0.
        """
        if self.label_weights_ is not None:
            return np.array([self.label_weights_.get(label, 1.0) for label in labels])
        if self.weights is None:
            return None
        if isinstance(self.weights, str):
            raise ConfigError(Errors.E185.format(name=component_name, loss=self.registry_name))
        return np.array([float(self.weights.get(label, 1.0)) for label in labels])

    def compute(
        self,
        probs: np.ndarray,
        truths: np.ndarray,
        not_missing: np.ndarray,
        weights: np.ndarray | None,
        *,
        exclusive: bool,
    ) -> tuple[float, np.ndarray]:
        """Summed loss of the batch and its gradient w.r.t. the logits."""
        raise NotImplementedError

    def __call__(
        self,
        probs: np.ndarray,
        truths: np.ndarray,
        not_missing: np.ndarray,
        labels: Sequence[str],
        *,
        exclusive: bool,
        component_name: str = "textcat",
    ) -> tuple[float, np.ndarray]:
        """``(loss, d_logits)`` of a batch, with this loss's weights for ``labels``."""
        weights = self.weights_for(labels, component_name=component_name)
        return self.compute(probs, truths, not_missing, weights, exclusive=exclusive)

    def to_dict(self) -> dict[str, Any]:
        """Fitted state as JSON-ready data (settings live in the pipeline's config)."""
        return {
            "loss": self.registry_name,
            "exclusive": self.exclusive_,
            "label_weights": self.label_weights_,
        }

    def from_dict(self, data: Mapping[str, Any]) -> "TextcatLoss":
        """Restore the fitted state written by :meth:`to_dict` and return ``self``."""
        label_weights = data.get("label_weights")
        self.label_weights_ = (
            None if label_weights is None else {k: float(v) for k, v in label_weights.items()}
        )
        self.exclusive_ = data.get("exclusive")
        return self

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(weights={self.weights!r}, max_weight={self.max_weight!r}, "
            f"balance_power={self.balance_power!r})"
        )


class CrossEntropyLoss(TextcatLoss):
    """Unweighted cross-entropy: softmax CE for exclusive classes, binary CE per label.

    For models whose output layer is thinc's ``Softmax`` (spaCy's exclusive ensemble, cnn
    and attention models) the gradient equals spaCy's own ``scores - truths``. spaCy's
    ``TextCatBOW`` and all its multi-label models end in ``softmax_activation`` /
    ``Logistic``, which back-propagate through the activation, so there spaCy's
    ``scores - truths`` is in effect a squared-error loss; this class trains them with
    cross-entropy instead, the unweighted baseline to compare the weighted losses against.
    """

    registry_name = "textcat_kit.CrossEntropyLoss.v1"

    def __init__(self) -> None:
        super().__init__(weights=None, max_weight=None)

    def compute(
        self,
        probs: np.ndarray,
        truths: np.ndarray,
        not_missing: np.ndarray,
        weights: np.ndarray | None,
        *,
        exclusive: bool,
    ) -> tuple[float, np.ndarray]:
        return class_weighted_gradient(
            probs, truths, not_missing, exclusive=exclusive, class_weights=weights
        )


class ClassWeightedLoss(TextcatLoss):
    """Cross-entropy with per-label weights (``"balanced"`` or an explicit mapping)."""

    registry_name = "textcat_kit.ClassWeightedLoss.v1"

    def compute(
        self,
        probs: np.ndarray,
        truths: np.ndarray,
        not_missing: np.ndarray,
        weights: np.ndarray | None,
        *,
        exclusive: bool,
    ) -> tuple[float, np.ndarray]:
        return class_weighted_gradient(
            probs, truths, not_missing, exclusive=exclusive, class_weights=weights
        )


class FocalLoss(TextcatLoss):
    """Focal loss (Lin et al. 2017): cross-entropy scaled by ``(1 - p_true) ** gamma``.

    ``alpha`` (multi-label only) weights positives by ``alpha`` and negatives by
    ``1 - alpha`` as in the paper; for per-class weighting use ``weights``, which
    multiplies in the same way as in :class:`ClassWeightedLoss`.
    """

    registry_name = "textcat_kit.FocalLoss.v1"

    def __init__(
        self,
        *,
        gamma: float = 2.0,
        alpha: float | None = None,
        weights: WeightsSetting = None,
        max_weight: float | None = DEFAULT_MAX_WEIGHT,
        balance_power: float = 1.0,
    ) -> None:
        super().__init__(weights=weights, max_weight=max_weight, balance_power=balance_power)
        self.gamma = gamma
        self.alpha = alpha

    def validate(self) -> None:
        super().validate()
        if not (np.isfinite(self.gamma) and self.gamma >= 0):
            raise self._invalid("gamma", self.gamma, "must be >= 0")
        if self.alpha is not None and not 0.0 < self.alpha < 1.0:
            raise self._invalid("alpha", self.alpha, "must be in (0, 1), or null")

    def fit(
        self,
        labels: Sequence[str],
        label_counts: np.ndarray,
        annotated_counts: np.ndarray,
        *,
        exclusive: bool,
        component_name: str = "textcat",
    ) -> "FocalLoss":
        if exclusive and self.alpha is not None:
            raise self._invalid(
                "alpha",
                self.alpha,
                (
                    f"alpha is for multi-label classifiers only; component "
                    f"'{component_name}' is exclusive, so set per-class weights with "
                    "'weights' instead"
                ),
            )
        super().fit(
            labels,
            label_counts,
            annotated_counts,
            exclusive=exclusive,
            component_name=component_name,
        )
        return self

    def compute(
        self,
        probs: np.ndarray,
        truths: np.ndarray,
        not_missing: np.ndarray,
        weights: np.ndarray | None,
        *,
        exclusive: bool,
    ) -> tuple[float, np.ndarray]:
        if exclusive:
            return focal_gradient_softmax(
                probs, truths, not_missing, gamma=self.gamma, class_weights=weights
            )
        n_labels = probs.shape[1]
        positive_weights = np.ones(n_labels) if weights is None else weights
        negative_weights = np.ones(n_labels)
        if self.alpha is not None:
            positive_weights = positive_weights * self.alpha
            negative_weights = negative_weights * (1.0 - self.alpha)
        return focal_gradient_binary(
            probs,
            truths,
            not_missing,
            gamma=self.gamma,
            positive_weights=positive_weights,
            negative_weights=negative_weights,
        )

    def __repr__(self) -> str:
        return (
            f"FocalLoss(gamma={self.gamma!r}, alpha={self.alpha!r}, weights={self.weights!r}, "
            f"max_weight={self.max_weight!r}, balance_power={self.balance_power!r})"
        )


@registry.misc("textcat_kit.CrossEntropyLoss.v1")
def make_cross_entropy_loss() -> CrossEntropyLoss:
    """Plain cross-entropy, the unweighted baseline."""
    return CrossEntropyLoss()


@registry.misc("textcat_kit.ClassWeightedLoss.v1")
def make_class_weighted_loss(
    weights: str | dict[str, float] | None = BALANCED,
    max_weight: float | None = DEFAULT_MAX_WEIGHT,
    balance_power: float = 1.0,
) -> ClassWeightedLoss:
    """Class-weighted cross-entropy; ``weights = "balanced"`` fits them at initialize.

    ``max_weight`` caps balanced weights (null: no cap); ``balance_power`` dampens them
    (``weight ** balance_power``: 1 fully balanced, 0.5 square root).
    """
    loss = ClassWeightedLoss(weights=weights, max_weight=max_weight, balance_power=balance_power)
    loss.validate()
    return loss


@registry.misc("textcat_kit.FocalLoss.v1")
def make_focal_loss(
    gamma: float = 2.0,
    alpha: float | None = None,
    weights: str | dict[str, float] | None = None,
    max_weight: float | None = DEFAULT_MAX_WEIGHT,
    balance_power: float = 1.0,
) -> FocalLoss:
    """Focal loss with focusing parameter ``gamma`` (0 = cross-entropy).

    ``weights``, ``max_weight`` and ``balance_power`` as in ``ClassWeightedLoss.v1``.
    """
    loss = FocalLoss(
        gamma=gamma,
        alpha=alpha,
        weights=weights,
        max_weight=max_weight,
        balance_power=balance_power,
    )
    loss.validate()
    return loss

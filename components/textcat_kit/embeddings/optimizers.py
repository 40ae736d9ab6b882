"""Adam with a larger learning rate for the classifier head than for the fine-tuned encoder.

Registered as ``textcat_kit.AdamHeadLR.v1`` (entry point ``thinc_optimizers``); the
transformer configs use it as ``[training.optimizer]``.

Why: when a pretrained encoder is fine-tuned, spaCy's text classifier puts a new output
layer on top whose weights start at zero. With one learning rate for everything, the rate
that suits the pretrained encoder (1e-4 or less; more destroys what it learned) moves the
head's weights by at most about that much per step, so the head needs thousands of steps
before its logits are large enough to separate the labels, while the encoder has long
adapted. Giving the head ``head_lr_scale`` times the encoder's rate (discriminative learning
rates, Howard & Ruder 2018) trains the new layer as fast as a layer trained from scratch
should be trained, and leaves the encoder's rate where pretrained weights need it.

Which parameters are "head": every parameter of a thinc layer (the classifier's output
layer; in these configs the listener and the pooling have none). The encoder's parameters
reach the optimizer through thinc's ``PyTorchShim``, keyed by torch's dotted module paths
(``encoder.layer.0.attention.self.query.weight``); a thinc layer's parameters are keyed by
plain names (``W``, ``b``). ``head_lr_scale = 1`` is thinc's ``Adam.v1``.
"""

from __future__ import annotations

from typing import Any

from thinc.api import Optimizer
from thinc.types import FloatsXd

from ..errors import ConfigError, Errors


def is_head_parameter(key: tuple[int, str]) -> bool:
    """True for a thinc layer's parameter, False for a torch module's (dotted name)."""
    return "." not in key[1]


class AdamHeadLR(Optimizer):
    """thinc's Adam, with the learning rate (and decoupled weight decay) of thinc-layer
    parameters multiplied by ``head_lr_scale``."""

    def __init__(self, learn_rate: Any, *, head_lr_scale: float, **kwargs: Any) -> None:
        if not head_lr_scale > 0:
            raise ConfigError(Errors.E465.format(value=head_lr_scale))
        super().__init__(learn_rate, **kwargs)
        self.head_lr_scale = float(head_lr_scale)

    def __call__(
        self,
        key: tuple[int, str],
        weights: FloatsXd,
        gradient: FloatsXd,
        *,
        lr_scale: float = 1.0,
    ) -> tuple[FloatsXd, FloatsXd]:
        if is_head_parameter(key):
            lr_scale *= self.head_lr_scale
        return super().__call__(key, weights, gradient, lr_scale=lr_scale)  # type: ignore[no-any-return]


def make_adam_head_lr(
    learn_rate: Any = 0.001,
    *,
    head_lr_scale: float = 1.0,
    L2: Any = 1e-6,
    beta1: Any = 0.9,
    beta2: Any = 0.999,
    eps: Any = 1e-8,
    grad_clip: Any = 1.0,
    L2_is_weight_decay: bool = True,
    use_averages: bool = True,
) -> Optimizer:
    """``Adam.v1``'s settings plus ``head_lr_scale`` (the head's rate = ``learn_rate`` x it;
    ``learn_rate`` may be a schedule, the scale applies at every step)."""
    return AdamHeadLR(
        learn_rate,
        head_lr_scale=head_lr_scale,
        L2=L2,
        beta1=beta1,
        beta2=beta2,
        eps=eps,
        grad_clip=grad_clip,
        L2_is_weight_decay=L2_is_weight_decay,
        use_averages=use_averages,
        use_radam=False,
    )

"""spaCy text classifiers trained with a class-weighted or focal loss.

``textcat_kit_textcat`` and ``textcat_kit_textcat_multilabel`` are spaCy's
``TextCategorizer`` / ``MultiLabel_TextCategorizer`` with one change: ``get_loss`` calls
a registered loss (``[components.<name>.loss]``, see :mod:`textcat_kit.pipeline.losses`)
instead of spaCy's ``scores - truths``. Prediction, labels, ``doc.cats``, the scorer and
any model (bow, cnn, ensemble, a transformer listener) are spaCy's; switch a config over
with ``factory = "textcat_kit_textcat"`` and a ``loss`` block.

Why not spaCy's loss with weights multiplied in: what spaCy's gradient means depends on the
model's last layer. thinc's ``Softmax`` (exclusive ensemble / cnn / attention models) takes
it as the gradient w.r.t. the logits, which makes it cross-entropy; ``softmax_activation``
and ``Logistic`` (``TextCatBOW``, every multi-label model) back-propagate it through the
activation, which makes it squared error on the probabilities. Here the loss is defined
once, on probabilities, and its gradient is handed to the model in the form its last
layer expects (``output_gradient``, detected by default), so "weighted cross-entropy"
means the same with every architecture. Missing labels (absent from the reference
``doc.cats``, multi-label only) get neither loss nor gradient, as in spaCy.

Weights fitted at ``initialize`` (``weights = "balanced"``) are saved as ``loss.json`` next
to the model and restored by ``from_disk`` / ``from_bytes`` / ``spacy.load``. They are not
put in ``self.cfg``, whose keys are all passed to the scorer as keyword arguments, and
they are written with the standard library's ``json`` because ``srsly``'s JSON rounds
floats to 10 digits (a reloaded pipeline would train with slightly different weights).
"""

import json
from collections.abc import Callable, Iterable
from itertools import islice
from pathlib import Path
from typing import Any, Literal, cast

import numpy as np
import srsly
from spacy import util
from spacy.language import Language
from spacy.pipeline.textcat import (
    DEFAULT_SINGLE_TEXTCAT_MODEL,
    TextCategorizer,
    textcat_score,
)
from spacy.pipeline.textcat_multilabel import (
    DEFAULT_MULTI_TEXTCAT_MODEL,
    MultiLabel_TextCategorizer,
    textcat_multilabel_score,
)
from spacy.tokens import Doc
from spacy.training import Example, validate_examples
from spacy.vocab import Vocab
from thinc.api import Config, Model
from thinc.types import Floats2d

from ..architectures import fit_idf
from ..errors import ConfigError, Errors
from ..maths.losses import gradient_wrt_probabilities
from .fitted import ClassifierState, OwnsFittedState
from .losses import TextcatLoss

default_loss_config = """
[loss]
@misc = "textcat_kit.ClassWeightedLoss.v1"
weights = "balanced"
max_weight = 10.0
balance_power = 1.0
"""
DEFAULT_LOSS = Config().from_str(default_loss_config)["loss"]

OutputGradient = Literal["auto", "logits", "probabilities"]
OUTPUT_GRADIENTS: tuple[str, ...] = ("auto", "logits", "probabilities")

#: (last-layer name, exclusive classes) -> the gradient that layer's backward pass expects.
#: Exclusive classes need a softmax and multi-label a sigmoid: other pairs (e.g. the legacy
#: TextCatLowData, a sigmoid over exclusive classes) are not recognised.
OUTPUT_LAYER_GRADIENTS: dict[tuple[str, bool], str] = {
    ("softmax", True): "logits",
    ("softmax_activation", True): "probabilities",
    ("logistic", False): "probabilities",
}

#: Docs per chunk when counting labels at initialize (bounds memory on large corpora).
COUNT_CHUNK_SIZE = 1000

LOSS_FILE = "loss.json"

DEFAULT_SCORE_WEIGHTS: dict[str, float | None] = {
    "cats_score": 1.0,
    "cats_score_desc": None,
    "cats_micro_p": None,
    "cats_micro_r": None,
    "cats_micro_f": None,
    "cats_macro_p": None,
    "cats_macro_r": None,
    "cats_macro_f": None,
    "cats_macro_auc": None,
    "cats_f_per_type": None,
}


@Language.factory(
    "textcat_kit_textcat",
    assigns=["doc.cats"],
    default_config={
        "threshold": 0.0,
        "model": DEFAULT_SINGLE_TEXTCAT_MODEL,
        "loss": DEFAULT_LOSS,
        "output_gradient": "auto",
        "scorer": {"@scorers": "spacy.textcat_scorer.v2"},
    },
    default_score_weights=DEFAULT_SCORE_WEIGHTS,
)
def make_weighted_textcat(
    nlp: Language,
    name: str,
    model: Model[list[Doc], Floats2d],
    threshold: float,
    loss: TextcatLoss,
    output_gradient: OutputGradient,
    scorer: Callable | None,
) -> "WeightedTextCategorizer":
    """Exclusive text classifier (one label per doc) trained with ``loss``."""
    return WeightedTextCategorizer(
        nlp.vocab,
        model,
        name,
        threshold=threshold,
        loss=loss,
        output_gradient=output_gradient,
        scorer=scorer,
    )


@Language.factory(
    "textcat_kit_textcat_multilabel",
    assigns=["doc.cats"],
    default_config={
        "threshold": 0.5,
        "model": DEFAULT_MULTI_TEXTCAT_MODEL,
        "loss": DEFAULT_LOSS,
        "output_gradient": "auto",
        "scorer": {"@scorers": "spacy.textcat_multilabel_scorer.v2"},
    },
    default_score_weights=DEFAULT_SCORE_WEIGHTS,
)
def make_weighted_multilabel_textcat(
    nlp: Language,
    name: str,
    model: Model[list[Doc], Floats2d],
    threshold: float,
    loss: TextcatLoss,
    output_gradient: OutputGradient,
    scorer: Callable | None,
) -> "WeightedMultiLabelTextCategorizer":
    """Multi-label text classifier (independent labels) trained with ``loss``."""
    return WeightedMultiLabelTextCategorizer(
        nlp.vocab,
        model,
        name,
        threshold=threshold,
        loss=loss,
        output_gradient=output_gradient,
        scorer=scorer,
    )


#: Names of a parameter-free softmax output layer (``spacy.TextCatBOW.v3`` and ours end in
#: one): the layer before it gives logits.
SOFTMAX_OUTPUTS = ("softmax_activation", "with_cpu(softmax_activation)")


class _WeightedLossMixin(OwnsFittedState, TextCategorizer):
    """The loss, the fitted calibration / decision state and their serialisation, shared by
    both classifiers."""

    exclusive_classes: bool = True
    loss: TextcatLoss
    output_gradient: str

    def _set_loss(self, loss: TextcatLoss, output_gradient: str) -> None:
        if output_gradient not in OUTPUT_GRADIENTS:
            raise ConfigError(
                Errors.E188.format(
                    name=self.name, value=output_gradient, options=list(OUTPUT_GRADIENTS)
                )
            )
        self.loss = loss
        self.output_gradient = output_gradient

    def predict(self, docs: Iterable[Doc]) -> Floats2d:
        """spaCy's predictions, with all-zero scores for every empty doc.

        spaCy returns zeros when *all* docs of a batch are empty but runs the model on an
        empty doc that shares a batch with others, so ``nlp("")`` and ``nlp.pipe([..., ""])``
        disagreed. Zeros for every empty doc make the result independent of batching.
        """
        docs = list(docs)
        logits = self._logits_layer() if docs else None
        if logits is None:
            scores = super().predict(docs)
        else:
            scores = self.fitted.calibrate_logits(self.model.ops.to_numpy(logits.predict(docs)))
        empty = [i for i, doc in enumerate(docs) if len(doc) == 0]
        if empty:
            zeros = np.zeros((len(empty), scores.shape[1]))
            # already calibrated: what calibrating the zero scores gives
            scores[empty] = zeros if logits is None else self.fitted.calibrate(zeros)
        return scores

    def _logits_layer(self) -> Model | None:
        """The model without its parameter-free softmax output, when the fitted calibrator
        maps logits (temperature scaling): ``predict`` then returns the calibrated
        probabilities directly, ``softmax(logits / T)``, one softmax instead of two."""
        if not self.fitted.calibrates_logits:
            return None
        layers = self.model.layers
        if len(layers) != 2 or layers[1].name not in SOFTMAX_OUTPUTS:
            return None
        return layers[0]

    def set_annotations(self, docs: Iterable[Doc], scores: Floats2d) -> None:
        """Write ``doc.cats``: calibrated, with ``doc._.decided_labels``, once tuned
        (:class:`~textcat_kit.pipeline.fitted.ClassifierState`)."""
        self._annotate(
            docs,
            np.asarray(self.model.ops.to_numpy(scores), dtype=np.float64),
            calibrated=self._logits_layer() is not None,
        )

    def get_loss(  # type: ignore[override]
        self, examples: Iterable[Example], scores: Floats2d
    ) -> tuple[float, Floats2d]:
        """The configured loss of the batch and its gradient, shaped for the output layer."""
        validate_examples(examples, f"{type(self).__name__}.get_loss")
        self._validate_categories(examples)
        truths, not_missing = self._examples_to_truth(examples)
        ops = self.model.ops
        probs = ops.to_numpy(scores)
        loss, d_logits = self.loss(
            probs,
            ops.to_numpy(truths),
            np.asarray(not_missing),
            self.labels,
            exclusive=self.exclusive_classes,
            component_name=self.name,
        )
        if self.resolved_output_gradient() == "probabilities":
            d_logits = gradient_wrt_probabilities(d_logits, probs, exclusive=self.exclusive_classes)
        d_scores = ops.asarray2f(cast(Floats2d, d_logits.astype(probs.dtype, copy=False)))
        return loss, d_scores

    def resolved_output_gradient(self) -> str:
        """``"logits"`` or ``"probabilities"``: what the model's last layer expects."""
        if self.output_gradient != "auto":
            return self.output_gradient
        layer = _last_layer(self.model)
        try:
            return OUTPUT_LAYER_GRADIENTS[(layer.name, self.exclusive_classes)]
        except KeyError:
            task = "exclusive" if self.exclusive_classes else "multi-label"
            raise ConfigError(
                Errors.E187.format(name=self.name, layer=layer.name, task=task)
            ) from None

    def _fit_loss(self, get_examples: Callable[[], Iterable[Example]]) -> None:
        """Count each label's positive and annotated docs in the training data; fit the loss."""
        label_counts = np.zeros(len(self.labels))
        annotated_counts = np.zeros(len(self.labels))
        examples = iter(get_examples())
        while chunk := list(islice(examples, COUNT_CHUNK_SIZE)):
            truths, not_missing = self._examples_to_truth(chunk)
            known = np.asarray(not_missing) > 0
            label_counts += np.sum((self.model.ops.to_numpy(truths) >= 0.5) & known, axis=0)
            annotated_counts += np.sum(known, axis=0)
        self.loss.fit(
            self.labels,
            label_counts,
            annotated_counts,
            exclusive=self.exclusive_classes,
            component_name=self.name,
        )

    def to_bytes(self, *, exclude: Iterable[str] = tuple()) -> bytes:
        """Serialize cfg, vocab, model and the loss's fitted state to a bytestring."""
        self._validate_serialization_attrs()
        serialize: dict[str, Callable[[], Any]] = {
            "cfg": lambda: srsly.json_dumps(self.cfg),
            "vocab": lambda: self.vocab.to_bytes(exclude=exclude),
            "model": self.model.to_bytes,
            "loss": lambda: json.dumps(self.loss.to_dict()),
            "fitted": lambda: self.fitted.to_bytes_dict(self.labels),
        }
        return util.to_bytes(serialize, exclude)

    def from_bytes(
        self, bytes_data: bytes, *, exclude: Iterable[str] = tuple()
    ) -> "_WeightedLossMixin":
        """Load what :meth:`to_bytes` wrote, including the fitted loss weights."""
        super().from_bytes(bytes_data, exclude=exclude)
        setters: dict[str, Callable[[Any], Any]] = {
            "loss": lambda b: self.loss.from_dict(json.loads(b)),
            "fitted": lambda d: self.fitted.from_bytes_dict(d, self.labels),
        }
        util.from_bytes(bytes_data, setters, exclude)
        return self

    def to_disk(self, path: str | Path, *, exclude: Iterable[str] = tuple()) -> None:
        """spaCy's files (cfg, model), ``loss.json`` with the fitted loss weights and, once
        tuned, ``calibrator.json`` / ``decision.json``."""
        super().to_disk(path, exclude=exclude)
        if "loss" not in exclude:
            state = json.dumps(self.loss.to_dict(), indent=2)
            (Path(path) / LOSS_FILE).write_text(state + "\n", encoding="utf8")
        if "fitted" not in exclude:
            self.fitted.to_disk(Path(path), self.labels)

    def from_disk(
        self, path: str | Path, *, exclude: Iterable[str] = tuple()
    ) -> "_WeightedLossMixin":
        """Load what :meth:`to_disk` wrote; a missing ``loss.json`` leaves the loss unfitted,
        missing ``calibrator.json`` / ``decision.json`` leave the classifier untuned."""
        super().from_disk(path, exclude=exclude)
        loss_path = Path(path) / LOSS_FILE
        if "loss" not in exclude and loss_path.exists():
            self.loss.from_dict(json.loads(loss_path.read_text(encoding="utf8")))
        if "fitted" not in exclude:
            self.fitted.from_disk(Path(path), self.labels)
        return self


class WeightedTextCategorizer(_WeightedLossMixin, TextCategorizer):
    """spaCy's exclusive ``TextCategorizer`` with a configurable (weighted / focal) loss."""

    exclusive_classes = True

    def __init__(
        self,
        vocab: Vocab,
        model: Model[list[Doc], Floats2d],
        name: str = "textcat",
        *,
        threshold: float,
        loss: TextcatLoss,
        output_gradient: str = "auto",
        scorer: Callable | None = textcat_score,
    ) -> None:
        super().__init__(vocab, model, name, threshold=threshold, scorer=scorer)
        self._set_loss(loss, output_gradient)
        self.fitted = ClassifierState()

    def initialize(
        self,
        get_examples: Callable[[], Iterable[Example]],
        *,
        nlp: Language | None = None,
        labels: Iterable[str] | None = None,
        positive_label: str | None = None,
    ) -> None:
        """Fit the n-gram IDF (tfidf features) on all training docs, spaCy's initialize
        (labels, model), then fit the loss's weights on the data."""
        fit_idf(self.model, (eg.reference for eg in get_examples()))
        super().initialize(get_examples, nlp=nlp, labels=labels, positive_label=positive_label)
        self._fit_loss(get_examples)


class WeightedMultiLabelTextCategorizer(_WeightedLossMixin, MultiLabel_TextCategorizer):
    """spaCy's ``MultiLabel_TextCategorizer`` with a configurable (weighted / focal) loss."""

    exclusive_classes = False

    def __init__(
        self,
        vocab: Vocab,
        model: Model[list[Doc], Floats2d],
        name: str = "textcat_multilabel",
        *,
        threshold: float,
        loss: TextcatLoss,
        output_gradient: str = "auto",
        scorer: Callable | None = textcat_multilabel_score,
    ) -> None:
        super().__init__(vocab, model, name, threshold=threshold, scorer=scorer)
        self._set_loss(loss, output_gradient)
        self.fitted = ClassifierState()

    def initialize(  # type: ignore[override]
        self,
        get_examples: Callable[[], Iterable[Example]],
        *,
        nlp: Language | None = None,
        labels: Iterable[str] | None = None,
    ) -> None:
        """Fit the n-gram IDF (tfidf features) on all training docs, spaCy's initialize
        (labels, model), then fit the loss's weights on the data."""
        fit_idf(self.model, (eg.reference for eg in get_examples()))
        super().initialize(get_examples, nlp=nlp, labels=labels)
        self._fit_loss(get_examples)


def _last_layer(model: Model) -> Model:
    """The layer that produces the model's output.

    spaCy's textcat models end in ``chain(..., output)``, sometimes wrapped once more
    (``with_cpu(softmax_activation)``, ``resizable(softmax)``): follow the last layer of
    each chain and the only layer of each wrapper down to the activation. Other
    combinators (``concatenate``, ``add``...) stop the walk: their output is not one
    layer's, and the caller reports that it cannot tell.
    """
    while model.layers:
        is_chain = model.name == ">>".join(layer.name for layer in model.layers)
        if not (is_chain or len(model.layers) == 1):
            break
        model = model.layers[-1]
    return model

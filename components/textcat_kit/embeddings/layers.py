"""thinc layers: a frozen sentence encoder over docs, and text classifiers on top of it.

``textcat_kit.SentenceEncoder.v1`` maps ``list[Doc]`` to a ``len(docs) x width`` array of
sentence vectors (:class:`~textcat_kit.embeddings.encoder.SentenceEncoder` over
``doc.text``, through an :class:`~textcat_kit.embeddings.encoder.EmbeddingCache`). It has no
trainable parameters and returns no gradient: the encoder is frozen.

``textcat_kit.SentenceEmbeddingClassifier.v1`` chains it with a linear head: thinc's
``Softmax`` for exclusive classes (named ``softmax``: our classifiers pass it the gradient
w.r.t. the logits) or ``Linear >> Logistic`` for multi-label (``logistic``: gradient
w.r.t. the probabilities). Any spaCy textcat component can train it;
``textcat_kit_textcat[_multilabel]`` adds our losses.

The encoder is loaded from ``name`` (a local directory or a hub name) when the model is
initialised (``nlp.initialize`` / ``spacy train``), not when it is built, so
``spacy.load`` of a trained pipeline never touches ``name``: the encoder travels inside the
model's bytes (JSON config and tokenizer, safetensors weights; see
:meth:`SentenceEncoder.to_bytes`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

from spacy.tokens import Doc
from spacy.util import registry
from thinc.api import Linear, Logistic, Model, Softmax_v2, chain
from thinc.model import deserialize_attr, serialize_attr
from thinc.types import Floats2d

from ..errors import ConfigError, Errors
from .encoder import EmbeddingCache, EncoderSettings, SentenceEncoder

LAYER_NAME = "sentence_encoder"


class EncoderSlot:
    """Holds a layer's encoder (``None`` until initialised or loaded) and its cache.

    A model attribute of this type is serialised by the functions registered below, so the
    encoder is saved with the model (thinc's default would try msgpack on the object).
    """

    def __init__(
        self, name: str, settings: EncoderSettings, cache_size: int, cache_dir: str | None
    ) -> None:
        self.name = name
        self.settings = settings
        self.encoder: SentenceEncoder | None = None
        self.cache_size = cache_size
        self.cache_dir = cache_dir
        self.cache = EmbeddingCache(cache_size)

    def load(self) -> SentenceEncoder:
        """The encoder, loaded from ``name`` on first use."""
        if self.encoder is None:
            self.set_encoder(SentenceEncoder.from_pretrained(self.name, self.settings))
        assert self.encoder is not None
        return self.encoder

    def set_encoder(self, encoder: SentenceEncoder) -> None:
        """Use ``encoder`` with a fresh cache (on disk under ``cache_dir/<fingerprint>``)."""
        self.encoder = encoder
        directory = None
        if self.cache_dir:
            directory = Path(self.cache_dir) / encoder.fingerprint
        self.cache = EmbeddingCache(self.cache_size, directory)

    def require(self) -> SentenceEncoder:
        if self.encoder is None:
            raise ConfigError(Errors.E450.format(layer=LAYER_NAME, name=self.name))
        return self.encoder


@serialize_attr.register(EncoderSlot)
def _serialize_slot(_: EncoderSlot, value: EncoderSlot, name: str, model: Model) -> bytes:
    return b"" if value.encoder is None else value.encoder.to_bytes()


@deserialize_attr.register(EncoderSlot)
def _deserialize_slot(_: EncoderSlot, value: bytes, name: str, model: Model) -> EncoderSlot:
    slot: EncoderSlot = model.attrs[name]
    if value:
        slot.set_encoder(SentenceEncoder.from_bytes(value, slot.settings))
    return slot


@registry.architectures("textcat_kit.SentenceEncoder.v1")
def build_sentence_encoder(
    name: str,
    *,
    max_length: int = 256,
    batch_size: int = 128,
    normalize: bool = True,
    cache_size: int = 200_000,
    cache_dir: str | None = None,
) -> Model[list[Doc], Floats2d]:
    """Frozen mean-pooled sentence vectors of ``doc.text`` (see the module docstring).

    name: a local model directory (``save_pretrained`` layout with ``tokenizer.json``) or a
        hub name; read once, at initialisation.
    max_length: wordpieces per text (longer texts are truncated).
    batch_size: texts per encoder forward pass (batches are length-sorted).
    normalize: unit-length vectors, as the sentence-transformers model cards do.
    cache_size: vectors kept in memory, by text hash (0 disables the cache).
    cache_dir: also keep the vectors on disk under ``<cache_dir>/<encoder fingerprint>``
        (``.npy`` shards), so that later runs over the same texts skip the encoder; ``null``
        keeps them in memory only. Not needed by a trained pipeline (set it to null there).
    """
    settings = EncoderSettings(max_length=max_length, batch_size=batch_size, normalize=normalize)
    settings.validate()
    slot = EncoderSlot(str(name), settings, cache_size, cache_dir)
    return Model(
        LAYER_NAME,
        _encoder_forward,
        init=_encoder_init,
        dims={"nO": None},
        attrs={"encoder": slot},
    )


def _encoder_init(model: Model, X: Any = None, Y: Any = None) -> None:
    encoder = model.attrs["encoder"].load()
    model.set_dim("nO", encoder.width, force=True)


def _encoder_forward(
    model: Model, docs: list[Doc], is_train: bool
) -> tuple[Floats2d, Callable[[Floats2d], list[Doc]]]:
    slot: EncoderSlot = model.attrs["encoder"]
    encoder = slot.require()
    if not model.has_dim("nO"):
        model.set_dim("nO", encoder.width)
    texts = [doc.text for doc in docs]
    vectors = slot.cache.lookup(texts, encoder.encode, encoder.width)
    output = model.ops.asarray2f(cast(Floats2d, vectors))

    def backprop(d_output: Floats2d) -> list[Doc]:
        return []  # frozen: nothing upstream to update

    return output, backprop


def sentence_encoder_of(model: Model) -> SentenceEncoder | None:
    """The loaded encoder inside ``model`` (any depth), or ``None``."""
    for node in model.walk():
        if node.name == LAYER_NAME:
            return node.attrs["encoder"].encoder
    return None


@registry.architectures("textcat_kit.SentenceEmbeddingClassifier.v1")
def build_sentence_embedding_classifier(
    encoder: Model[list[Doc], Floats2d],
    *,
    exclusive_classes: bool,
    nO: int | None = None,
) -> Model[list[Doc], Floats2d]:
    """A linear classifier over frozen sentence vectors.

    encoder: e.g. ``textcat_kit.SentenceEncoder.v1``.
    exclusive_classes: softmax over the labels (one per doc) if true, else one sigmoid per
        label (multi-label).
    nO: the number of labels; ``None`` lets the classifier set it from its labels.
    """
    head: Model[Floats2d, Floats2d]
    if exclusive_classes:
        head = Softmax_v2(nO=nO, normalize_outputs=True)
    else:
        head = chain(Linear(nO=nO), Logistic())
    model: Model[list[Doc], Floats2d] = chain(encoder, head)
    model.attrs["multi_label"] = not exclusive_classes
    return model

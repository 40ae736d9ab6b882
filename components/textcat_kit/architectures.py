"""Model architectures registered by textcat-kit.

``textcat_kit.TextCatBOW.v1`` is ``spacy.TextCatBOW.v3`` (hashed n-gram counts, a sparse
linear layer, softmax or logistic output, resizable) with one setting added: the token
attribute the n-grams are built from. spaCy's v3 hard-codes ``ORTH``, so "Refund",
"refund" and "REFUND" are three unrelated features; on Banking77 and GoEmotions the
``LOWER`` features train to a higher macro-F1 (figures in ``benchmarks/RESULTS.md``). And
the value of each n-gram feature: spaCy's raw counts, counts scaled to unit L2 norm per
doc, so that a long text does not produce larger logits than a short one just by being
long, or TF-IDF values as scikit-learn's ``TfidfVectorizer(sublinear_tf=True)`` computes
them (``1 + ln(count)`` times the n-gram's smoothed inverse document frequency, L2-normed
per doc): rare, specific n-grams weigh more than words every text has. The IDF table is
data-dependent state: ``textcat_kit_textcat[_multilabel]`` fit it on all training docs in
``initialize`` (:func:`fit_idf`) and it is saved with the model weights. With ``attr =
"ORTH"`` and ``feature_values = "count"`` it builds the same network as
``spacy.TextCatBOW.v3``.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import numpy as np
from spacy.attrs import IDS
from spacy.tokens import Doc
from spacy.util import registry
from thinc.api import Model, chain
from thinc.types import Floats2d

from .errors import ConfigError, Errors, Warnings

#: How an n-gram's count in a doc becomes its feature value.
FEATURE_VALUES: tuple[str, ...] = ("count", "binary", "l2", "tfidf")

#: Token attributes that make sense as bag-of-words features.
BOW_ATTRS: tuple[str, ...] = ("ORTH", "LOWER", "NORM", "LEMMA", "SHAPE", "PREFIX", "SUFFIX")


SparseBatch = tuple[np.ndarray, np.ndarray, np.ndarray]


@registry.architectures("textcat_kit.TextCatBOW.v1")
def build_bow_text_classifier(
    exclusive_classes: bool,
    ngram_size: int,
    no_output_layer: bool,
    length: int = 262144,
    attr: str = "LOWER",
    feature_values: str = "count",
    nO: int | None = None,
) -> Model[list[Doc], Floats2d]:
    """A bag-of-n-grams linear classifier over the token attribute ``attr``.

    ``length`` (rounded up to a power of two) is the number of hash buckets per label; a
    training step updates all ``length * n_labels`` weights, so a smaller table trains
    faster, at the price of more collisions. ``feature_values``: ``count`` (spaCy's),
    ``binary`` (1.0 for every n-gram present) or ``l2`` (counts divided by the doc's L2
    norm).
    """
    if attr not in BOW_ATTRS:
        raise ConfigError(Errors.E190.format(value=attr, options=list(BOW_ATTRS)))
    if length < 1 or feature_values not in FEATURE_VALUES:
        raise ConfigError(
            Errors.E191.format(
                value=length, options=list(FEATURE_VALUES), feature_values=feature_values
            )
        )
    # spaCy's own network; only the n-gram attribute and, if asked, the feature values differ.
    model: Model = registry.architectures.get("spacy.TextCatBOW.v3")(
        exclusive_classes=exclusive_classes,
        ngram_size=ngram_size,
        no_output_layer=no_output_layer,
        length=length,
        nO=nO,
    )
    spacy_ngrams = next(node for node in model.walk() if node.name == "extract_ngrams")
    ngrams = extract_ngrams(spacy_ngrams.attrs["ngram_size"], IDS[attr])
    if feature_values != "count":
        ngrams = chain(ngrams, ngram_feature_values(feature_values))
    model.replace_node(spacy_ngrams, ngrams)
    return model


def extract_ngrams(ngram_size: int, attr: int) -> Model[list[Doc], SparseBatch]:
    """spaCy's ``extract_ngrams`` layer (hashed n-gram keys and counts per doc), except that
    a doc shorter than ``n`` tokens has no n-grams: spaCy's raises an IndexError on an empty
    doc in a batch when ``ngram_size`` > 1."""
    return Model(
        "extract_ngrams", _extract_ngrams_forward, attrs={"ngram_size": ngram_size, "attr": attr}
    )


def _extract_ngrams_forward(
    model: Model[list[Doc], SparseBatch], docs: list[Doc], is_train: bool
) -> tuple[SparseBatch, Callable]:
    # Runs inside with_cpu, as spaCy's layer: the arrays are NumPy arrays.
    batch_keys, batch_counts = [], []
    for doc in docs:
        unigrams = doc.to_array([model.attrs["attr"]])
        ngrams = [unigrams]
        for n in range(2, min(model.attrs["ngram_size"], len(unigrams)) + 1):
            ngrams.append(model.ops.ngrams(n, unigrams))  # type: ignore[arg-type]
        keys, counts = np.unique(np.concatenate(ngrams), return_counts=True)
        batch_keys.append(keys)
        batch_counts.append(counts)
    lengths = np.array([len(keys) for keys in batch_keys], dtype=np.int32)
    keys = np.concatenate(batch_keys)
    values = np.concatenate(batch_counts).astype(np.float32)

    def backprop(d_batch: Any) -> list[Doc]:
        return []

    return (keys, values, lengths), backprop


def ngram_feature_values(kind: str) -> Model[SparseBatch, SparseBatch]:
    """Rescale the values of ``extract_ngrams``'s (keys, counts, lengths) batch.

    For ``tfidf`` the layer holds the IDF table in its attrs (``idf_keys`` sorted, ``idf``,
    ``idf_unseen`` for n-grams no training doc had), so it is saved with the model.
    """
    return Model(
        "ngram_feature_values",
        _feature_values_forward,
        attrs={
            "kind": kind,
            "idf_keys": np.zeros(0, dtype=np.uint64),
            "idf": np.zeros(0, dtype=np.float32),
            "idf_unseen": 1.0,
            "idf_n_docs": 0,
        },
    )


def _feature_values_forward(
    model: Model[SparseBatch, SparseBatch], batch: SparseBatch, is_train: bool
) -> tuple[SparseBatch, Callable]:
    keys, counts, lengths = batch
    weights = None
    if model.attrs["kind"] == "tfidf":
        if not model.attrs["idf_n_docs"]:
            # Python shows a UserWarning once per call site: no flag to keep (or to save).
            warnings.warn(Warnings.W192, stacklevel=2)
        weights = idf_weights(
            model.ops.to_numpy(keys),
            model.attrs["idf_keys"],
            model.attrs["idf"],
            model.attrs["idf_unseen"],
        )
    values = scale_feature_values(
        model.ops.to_numpy(counts), model.ops.to_numpy(lengths), model.attrs["kind"], weights
    )

    def backprop(d_batch: Any) -> Any:
        return d_batch  # the features are inputs, not parameters: nothing to learn here

    # Runs inside with_cpu (as spaCy's extract_ngrams), so NumPy arrays are the model's arrays.
    return (keys, values, lengths), backprop


def scale_feature_values(
    counts: np.ndarray, lengths: np.ndarray, kind: str, weights: np.ndarray | None = None
) -> np.ndarray:
    """Per-doc feature values from n-gram counts; docs are consecutive runs of ``lengths``.

    ``weights`` (one per feature, the IDF) multiply ``1 + ln(count)`` for ``tfidf``.
    """
    counts = np.asarray(counts, dtype=np.float32)
    if kind == "count":
        return counts
    if kind == "binary":
        return np.ones_like(counts)
    if kind == "tfidf":
        counts = 1.0 + np.log(np.maximum(counts, np.float32(1.0)))
        if weights is not None:
            counts *= weights
    doc_of_feature = np.repeat(np.arange(len(lengths)), lengths)
    norms = np.sqrt(np.bincount(doc_of_feature, weights=counts * counts, minlength=len(lengths)))
    return (counts / norms[doc_of_feature]).astype(np.float32)


def idf_table(doc_keys: Iterable[np.ndarray]) -> tuple[np.ndarray, np.ndarray, float, int]:
    """Smoothed IDF (scikit-learn's ``ln((1 + n) / (1 + df)) + 1``) from each doc's unique
    n-gram keys: (sorted keys, their IDF, the IDF of an unseen key, number of docs)."""
    n_docs = 0
    per_doc = []
    for keys in doc_keys:
        per_doc.append(np.unique(np.asarray(keys, dtype=np.uint64)))
        n_docs += 1
    all_keys = np.concatenate(per_doc) if per_doc else np.zeros(0, dtype=np.uint64)
    keys, doc_freq = np.unique(all_keys, return_counts=True)
    idf = (np.log((1.0 + n_docs) / (1.0 + doc_freq)) + 1.0).astype(np.float32)
    return keys, idf, float(np.log(1.0 + n_docs) + 1.0), n_docs


def idf_weights(
    keys: np.ndarray, idf_keys: np.ndarray, idf: np.ndarray, unseen: float
) -> np.ndarray:
    """The IDF of each of ``keys`` (``unseen`` for keys not in the sorted ``idf_keys``)."""
    if len(idf_keys) == 0:
        return np.ones(len(keys), dtype=np.float32)
    position = np.minimum(np.searchsorted(idf_keys, keys), len(idf_keys) - 1)
    return np.where(idf_keys[position] == keys, idf[position], np.float32(unseen))


def fit_idf(model: Model, docs: Iterable[Doc], batch_size: int = 1000) -> int:
    """Fit the IDF table of every ``tfidf`` feature layer in ``model`` on ``docs``.

    Returns the number of docs (0 when the model has no such layer). Called by our
    classifiers' ``initialize`` with all training docs, before spaCy's initialisation.
    """
    layers = [
        node
        for node in model.walk()
        if node.name == "ngram_feature_values" and node.attrs["kind"] == "tfidf"
    ]
    if not layers:
        return 0
    ngrams = next(node for node in model.walk() if node.name == "extract_ngrams")
    doc_list = list(docs)

    def doc_keys() -> Iterator[np.ndarray]:
        for start in range(0, len(doc_list), batch_size):
            (keys, _, lengths), _ = _extract_ngrams_forward(
                ngrams, doc_list[start : start + batch_size], is_train=False
            )
            yield from np.split(np.asarray(keys), np.cumsum(lengths)[:-1])

    idf_keys, idf, unseen, n_docs = idf_table(doc_keys())
    for layer in layers:
        layer.attrs.update(
            {"idf_keys": idf_keys, "idf": idf, "idf_unseen": unseen, "idf_n_docs": n_docs}
        )
    return n_docs

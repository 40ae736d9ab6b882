"""Model architectures registered by textcat-kit.

``textcat_kit.TextCatBOW.v1`` is ``spacy.TextCatBOW.v3`` (hashed n-gram counts, a sparse
linear layer, softmax or logistic output, resizable) with one setting added: the token
attribute the n-grams are built from. spaCy's v3 hard-codes ``ORTH``, so "Refund",
"refund" and "REFUND" are three unrelated features; on Banking77 and GoEmotions the
``LOWER`` features train to a higher macro-F1 (``python -m benchmarks compare``). And
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
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, cast

import numpy as np
from spacy.attrs import IDS
from spacy.tokens import Doc
from spacy.util import registry
from thinc.api import Model, chain
from thinc.layers.sparselinear import forward as thinc_sparse_linear_forward
from thinc.layers.with_cpu import forward as thinc_with_cpu_forward
from thinc.types import Floats2d

from . import speedups
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
    linear = next(node for node in model.walk() if node.name == "sparse_linear")
    if not linear.attrs.get("v1_indexing", False):
        linear._func = _sparse_linear_forward  # kept by resizable() when labels are added
        # spaCy wraps n-grams >> sparse_linear in with_cpu, whose forward always calls
        # begin_update; ours passes is_train through, so inference takes the NumPy path.
        for node in model.walk():
            if node._func is thinc_with_cpu_forward and linear in node.layers[0].walk():
                node._func = _with_cpu_forward
    return model


def _with_cpu_forward(model: Model, X: Any, is_train: bool) -> tuple[Any, Callable]:
    """thinc's ``with_cpu`` forward for training; at inference ``predict`` on the inner layer
    (on CPU the inputs and outputs are already NumPy arrays and Docs), or the compiled
    kernel over the whole n-grams >> feature values >> sparse linear chain when built."""
    if is_train or model.ops.xp is not np:
        return thinc_with_cpu_forward(model, X, is_train)

    def backprop(d_outputs: Any) -> Any:  # never called: is_train is False
        raise NotImplementedError

    scores = _compiled_scores(model.layers[0], X) if speedups.KERNELS is not None else None
    return (model.layers[0].predict(X) if scores is None else scores), backprop


#: Feature-value kinds as the compiled kernel numbers them.
_KIND_CODES = {"count": 0, "binary": 1, "tfidf": 2, "l2": 3}
#: ``1 + ln(count)`` in float32 for small counts, computed by NumPy as
#: :func:`scale_feature_values` does, so the kernel's tf-idf values are NumPy's to the bit.
_LOG1P_COUNTS = (
    1.0 + np.log(np.maximum(np.arange(1024, dtype=np.float32), np.float32(1.0)))
).astype(np.float32)
_NO_IDF = (np.zeros(0, dtype=np.uint64), np.zeros(0, dtype=np.float32), 1.0)


def _compiled_scores(inner: Model, docs: list[Doc]) -> np.ndarray | None:
    """The inner chain's scores from ``textcat_kit._speedups.bow_scores``, or ``None`` when
    ``inner`` is not exactly our n-grams >> [feature values] >> sparse linear chain."""
    walked = list(inner.walk())
    nodes = {node.name: node for node in walked}
    ngrams, linear = nodes.get("extract_ngrams"), nodes.get("sparse_linear")
    values = nodes.get("ngram_feature_values")
    if (
        ngrams is None
        or linear is None
        or ngrams._func is not _extract_ngrams_forward
        or linear._func is not _sparse_linear_forward
        or len(walked) != (6 if values is not None else 4)  # the chains and resizable
    ):
        return None
    kind = values.attrs["kind"] if values is not None else "count"
    slot_keys, slot_idf, unseen = _NO_IDF
    if kind == "tfidf":
        assert values is not None
        if _has_idf(values):
            slot_keys, slot_idf = _idf_slots(values)
            unseen = float(values.attrs["idf_unseen"])
    rows = _weight_rows(linear)
    scores = np.zeros((len(docs), rows.shape[1]), dtype=np.float32)
    tokens, lengths = speedups.batch_token_attrs(docs, ngrams.attrs["attr"])
    assert speedups.KERNELS is not None
    speedups.KERNELS.bow_scores(
        tokens,
        lengths,
        ngrams.attrs["ngram_size"],
        _KIND_CODES[kind],
        slot_keys,
        slot_idf,
        unseen,
        _LOG1P_COUNTS,
        rows,
        scores,
    )
    return scores


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
    attr = model.attrs["attr"]
    keys, values, lengths = batch_ngram_counts(
        [doc.to_array(attr) for doc in docs], model.attrs["ngram_size"], model.ops
    )

    def backprop(d_batch: Any) -> list[Doc]:
        return []

    return (keys, values, lengths), backprop


def batch_ngram_counts(
    unigrams: Sequence[np.ndarray], ngram_size: int, ops: Any
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each doc's distinct n-gram keys (1..``ngram_size``), sorted, with their counts, for a
    whole batch at once: (keys, counts as float32, number of keys per doc).

    The same keys and counts as ``np.unique(..., return_counts=True)`` per doc (spaCy's
    layer), computed with one hash call per n and one sort for the batch instead of a
    NumPy call chain per doc. Unigram keys are the attribute ids; longer n-grams are
    hashed by ``ops.ngrams`` over the concatenated batch, dropping the windows that
    cross from one doc into the next.
    """
    n_docs = len(unigrams)
    doc_lengths = np.fromiter((len(u) for u in unigrams), dtype=np.int64, count=n_docs)
    if n_docs == 0 or doc_lengths.sum() == 0:
        empty = np.zeros(0, dtype=np.uint64)
        return empty, np.zeros(0, dtype=np.float32), np.zeros(n_docs, dtype=np.int32)
    tokens = np.concatenate(unigrams).astype(np.uint64, copy=False)
    doc_of_token = np.repeat(np.arange(n_docs), doc_lengths)
    all_keys, all_docs = [tokens], [doc_of_token]
    for n in range(2, ngram_size + 1):
        if len(tokens) < n:
            break
        inside = doc_of_token[: len(tokens) - n + 1] == doc_of_token[n - 1 :]
        all_keys.append(ops.ngrams(n, tokens)[inside])
        all_docs.append(doc_of_token[: len(tokens) - n + 1][inside])
    keys = np.concatenate(all_keys)
    doc_ids = np.concatenate(all_docs)
    # Sort by (doc, key): keys first, then a stable sort by doc, which is a radix sort
    # when the doc ids fit in 16 bits (about twice as fast as np.lexsort here).
    order = np.argsort(keys)
    doc_type = np.uint16 if n_docs <= np.iinfo(np.uint16).max else np.int64
    order = order[np.argsort(doc_ids[order].astype(doc_type), kind="stable")]
    keys, doc_ids = keys[order], doc_ids[order]
    new = np.empty(len(keys), dtype=bool)
    new[0] = True
    np.not_equal(keys[1:], keys[:-1], out=new[1:])
    new[1:] |= doc_ids[1:] != doc_ids[:-1]
    starts = np.flatnonzero(new)
    counts = np.diff(np.append(starts, len(keys))).astype(np.float32)
    lengths = np.bincount(doc_ids[starts], minlength=n_docs).astype(np.int32)
    return keys[starts], counts, lengths


# --- sparse linear layer: inference in NumPy ---------------------------------------------------

#: Inference copies per layer (by ``Model.id``; thinc models take no weak references): the
#: arrays a copy was made from, and the copy. ``_ROWS``: a sparse_linear layer's W and b as
#: (length + 1, nO) rows; ``_IDF_SLOTS``: a tf-idf layer's IDF table as the kernel's hash
#: table. A copy is rebuilt when its layer holds other arrays (``use_params``, loading,
#: resizing, ``fit_idf``); the least recently used are dropped beyond ``_MAX_COPIES`` layers.
_ROWS: OrderedDict[int, tuple[tuple[Any, ...], Any]] = OrderedDict()
_IDF_SLOTS: OrderedDict[int, tuple[tuple[Any, ...], Any]] = OrderedDict()
_MAX_COPIES = 8


def _layer_copy(
    cache: OrderedDict[int, tuple[tuple[Any, ...], Any]],
    layer: Model,
    sources: tuple[Any, ...],
    build: Callable[[], Any],
) -> Any:
    """``cache``'s copy for ``layer`` if it was built from these very ``sources``, else
    ``build()`` (and keep it)."""
    cached = cache.get(layer.id)
    if cached is None or any(a is not b for a, b in zip(cached[0], sources, strict=True)):
        cached = (sources, build())
        cache[layer.id] = cached
        while len(cache) > _MAX_COPIES:
            cache.popitem(last=False)
    cache.move_to_end(layer.id)
    return cached[1]


def _sparse_linear_forward(
    model: Model[SparseBatch, Floats2d], batch: SparseBatch, is_train: bool
) -> tuple[Floats2d, Callable]:
    """thinc's ``SparseLinear.v2`` forward; at inference the same sums from a (length + 1,
    nO) copy of the weights and bias (:func:`sparse_linear_scores`).

    thinc's loop reads, for each n-gram and each label, one float from a (nO, length)
    table: ``2 * n_labels`` cache misses per n-gram, most of a bow pipeline's time. In the
    copy each hash bucket's ``nO`` weights are one row, so an n-gram costs two row reads.
    Any training pass drops the copy; it is rebuilt whenever ``W`` or ``b`` is another
    array (``use_params``, loading, resizing).
    """
    if is_train or model.ops.xp is not np:
        _ROWS.pop(model.id, None)
        return thinc_sparse_linear_forward(model, batch, is_train)
    keys, values, lengths = batch
    scores = sparse_linear_scores(
        np.asarray(keys, dtype=np.uint64),
        np.asarray(values, dtype=np.float32),
        np.asarray(lengths, dtype=np.int64),
        _weight_rows(model),
    )

    def backprop(d_scores: Any) -> Any:  # never called: is_train is False
        raise NotImplementedError

    return cast(Floats2d, scores), backprop


def _idf_slots(layer: Model) -> tuple[np.ndarray, np.ndarray]:
    """The IDF table of a ``tfidf`` layer as an open-addressing hash table for the kernel:
    one probe per n-gram instead of a binary search over the sorted keys."""
    keys, idf = layer.attrs["idf_keys"], layer.attrs["idf"]

    def build() -> tuple[np.ndarray, np.ndarray]:
        n_slots = 1 << max(1, int(2 * len(keys)).bit_length())
        slot_keys = np.zeros(n_slots, dtype=np.uint64)
        slot_idf = np.full(n_slots, np.nan, dtype=np.float32)
        assert speedups.KERNELS is not None
        speedups.KERNELS.idf_hash_table(
            np.ascontiguousarray(keys, dtype=np.uint64),
            np.ascontiguousarray(idf, dtype=np.float32),
            slot_keys,
            slot_idf,
        )
        return slot_keys, slot_idf

    slots: tuple[np.ndarray, np.ndarray] = _layer_copy(_IDF_SLOTS, layer, (keys, idf), build)
    return slots


def _weight_rows(model: Model) -> np.ndarray:
    """The (length + 1, nO) float32 copy of a sparse_linear layer's W and b (cached)."""
    weights: np.ndarray = model.get_param("W")  # type: ignore[assignment]
    bias: np.ndarray = model.get_param("b")  # type: ignore[assignment]

    def build() -> np.ndarray:
        rows = np.vstack([weights.reshape(model.get_dim("nO"), -1).T, bias[None, :]])
        return np.ascontiguousarray(rows, dtype=np.float32)

    rows: np.ndarray = _layer_copy(_ROWS, model, (weights, bias), build)
    return rows


_M_C1, _M_C2 = np.uint32(0xCC9E2D51), np.uint32(0x1B873593)
_M_F1, _M_F2 = np.uint32(0x85EBCA6B), np.uint32(0xC2B2AE35)
_M_ADD, _M_FIVE, _M_LEN = np.uint32(0xE6546B64), np.uint32(5), np.uint32(8)
_LOW32, _SHIFT32 = np.uint64(0xFFFFFFFF), np.uint64(32)
_R = {n: np.uint32(n) for n in (13, 15, 16, 17, 19)}


def murmurhash3_32_uint64(keys: np.ndarray, seed: int | np.ndarray) -> np.ndarray:
    """MurmurHash3_x86_32 of each 8-byte little-endian key (what thinc hashes n-grams with).

    ``seed`` is one seed for all keys or an array of per-key seeds (so both of thinc's
    hash functions run in one pass over twice the keys: half the NumPy calls, which is
    what a small batch pays for)."""
    h = np.empty(keys.shape, dtype=np.uint32)
    h[...] = seed
    for block in (keys & _LOW32, keys >> _SHIFT32):
        k = block.astype(np.uint32)
        k *= _M_C1
        k = (k << _R[15]) | (k >> _R[17])
        k *= _M_C2
        h ^= k
        h = (h << _R[13]) | (h >> _R[19])
        h *= _M_FIVE
        h += _M_ADD
    h ^= _M_LEN
    h ^= h >> _R[16]
    h *= _M_F1
    h ^= h >> _R[13]
    h *= _M_F2
    h ^= h >> _R[16]
    return h


def sparse_linear_scores(
    keys: np.ndarray, values: np.ndarray, lengths: np.ndarray, rows: np.ndarray
) -> np.ndarray:
    """(n_docs, nO) scores of thinc's ``SparseLinear.v2``, given its weights and bias as
    ``rows`` ((length + 1, nO): bucket rows, then the bias).

    One sparse (n_docs, length + 1) matrix times ``rows``: doc ``i``'s row holds 1.0 for
    the bias and each n-gram's value at its two hash buckets, in thinc's order, and SciPy's
    CSR product adds ``value * row`` term by term in that order, in float32, as thinc's loop
    does, so the scores are the same to the bit (tested).
    """
    n_docs, n_keys = len(lengths), len(keys)
    length = rows.shape[0] - 1
    indptr = np.zeros(n_docs + 1, dtype=np.int64)
    np.cumsum(2 * lengths + 1, out=indptr[1:])
    indices = np.empty(int(indptr[-1]), dtype=np.int64)
    data = np.empty(int(indptr[-1]), dtype=np.float32)
    first = indptr[:-1]
    indices[first], data[first] = length, 1.0
    terms = np.ones(len(indices), dtype=bool)
    terms[first] = False
    # Both hash functions in one pass: bucket 2i is seed 0 of key i, 2i + 1 seed 1.
    seeds = np.tile(np.array([0, 1], dtype=np.uint32), n_keys)
    buckets = murmurhash3_32_uint64(np.repeat(keys, 2), seeds) % np.uint32(length)
    indices[terms], data[terms] = buckets, np.repeat(values, 2)
    from scipy.sparse import csr_matrix  # imported on first use: not needed to load a pipeline

    matrix = csr_matrix((data, indices, indptr), shape=(n_docs, length + 1))
    return np.asarray(matrix @ rows, dtype=np.float32)


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
        _has_idf(model)
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


def _has_idf(layer: Model) -> bool:
    """Whether a ``tfidf`` layer has its IDF table; W192 when not (it then scores L2-normed
    log counts). Python shows a UserWarning once per call site: no flag to keep or save."""
    if layer.attrs["idf_n_docs"]:
        return True
    warnings.warn(Warnings.W192, stacklevel=3)
    return False


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
    # Looking the keys up in sorted order keeps the binary searches in cache (4x faster).
    order = np.argsort(keys)
    position = np.empty(len(keys), dtype=np.int64)
    position[order] = np.searchsorted(idf_keys, keys[order])
    np.minimum(position, len(idf_keys) - 1, out=position)
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

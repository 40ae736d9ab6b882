"""Wordpiece vectors -> token vectors -> one doc vector, in NumPy.

Two poolings happen between the encoder and the classifier in the trained pipeline:

1. the ``TransformerListener`` with ``reduce_mean.v1`` averages, for each spaCy token,
   the vectors of the wordpieces aligned to it (over all windows that contain the token;
   a token with no wordpiece, e.g. a whitespace token, gets a zero vector);
2. ``spacy.TextCatReduce.v1`` concatenates the first / last / max / mean over the doc's
   token vectors (whichever are enabled, in that order).

Both are plain functions of arrays here so they can be tested against thinc directly.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float32]
IntArray = npt.NDArray[np.int64]

REDUCTIONS = ("first", "last", "max", "mean")
"""The doc reductions of TextCatReduce.v1, in the order it concatenates them."""


def mean_pool_tokens(
    hidden: FloatArray, tokens: IntArray, pieces: IntArray, n_tokens: int
) -> FloatArray:
    """Average of the wordpiece rows of ``hidden`` aligned to each token.

    hidden: ``(n_wordpieces, width)`` vectors of all wordpieces of one doc.
    tokens / pieces: the alignment as pairs (token ``tokens[i]`` owns row ``pieces[i]``);
    a pair appears once. Tokens without pairs get zeros, like thinc's ``reduce_mean``.
    """
    from scipy import sparse  # imported here: spaCy imports this module for every pipeline

    counts = np.bincount(tokens, minlength=n_tokens).astype(np.float32)
    weights = 1.0 / counts[tokens]
    pooling = sparse.csr_matrix(
        (weights, (tokens, pieces)), shape=(n_tokens, hidden.shape[0]), dtype=np.float32
    )
    return np.asarray(pooling @ hidden, dtype=np.float32)


def reduce_docs(
    token_vectors: FloatArray, doc_lengths: IntArray, reductions: Sequence[str]
) -> FloatArray:
    """Doc vectors: the enabled reductions over each doc's tokens, concatenated.

    token_vectors: ``(n_tokens, width)``, the docs' tokens one doc after the other.
    doc_lengths: tokens per doc; every doc must have at least one (empty docs are handled
        by the caller).
    reductions: a subsequence of :data:`REDUCTIONS`, concatenated in that order.
    """
    if np.any(doc_lengths < 1):
        raise ValueError("every doc needs at least one token")
    starts = np.cumsum(doc_lengths) - doc_lengths
    parts: list[FloatArray] = []
    for reduction in reductions:
        if reduction == "first":
            parts.append(token_vectors[starts])
        elif reduction == "last":
            parts.append(token_vectors[starts + doc_lengths - 1])
        elif reduction == "max":
            parts.append(np.maximum.reduceat(token_vectors, starts, axis=0))
        elif reduction == "mean":
            sums = np.add.reduceat(token_vectors, starts, axis=0)
            parts.append((sums / doc_lengths[:, None]).astype(np.float32))
        else:
            raise ValueError(f"unknown reduction '{reduction}'; expected one of {REDUCTIONS}")
    return np.concatenate(parts, axis=1).astype(np.float32, copy=False)


def softmax(logits: FloatArray) -> FloatArray:
    """Row-wise softmax with the maximum subtracted first (as thinc does, in float32)."""
    shifted = logits - logits.max(axis=-1, keepdims=True)
    exps = np.exp(shifted)
    return (exps / exps.sum(axis=-1, keepdims=True)).astype(np.float32, copy=False)


def sigmoid(logits: FloatArray) -> FloatArray:
    """Element-wise logistic function (thinc's ``Logistic`` layer), without overflow warnings."""
    from scipy import special

    return np.asarray(special.expit(logits), dtype=np.float32)

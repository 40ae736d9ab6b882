"""The trained classifier layer of the textcat, re-implemented in NumPy.

``spacy.TextCatReduce.v1`` ends in thinc's ``Softmax`` (exclusive classes) or ``Linear``
followed by ``Logistic`` (multi-label). Both are ``X @ W.T + b`` and a squashing function;
the exported component only needs ``W``, ``b`` and which reductions build ``X``. The
arrays are stored with msgpack as raw little-endian float32 bytes plus their shape: exact,
compact and free of pickle.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .pooling import REDUCTIONS, FloatArray, sigmoid, softmax


@dataclass
class ClassifierHead:
    """Output layer of a text classifier: ``squash(doc_vectors @ weights.T + bias)``.

    exclusive: softmax over labels (``textcat``) instead of one sigmoid per label
        (``textcat_multilabel``).
    reductions: which of first / last / max / mean over the tokens are concatenated into
        the doc vector (a subsequence of :data:`~textcat_kit.onnx.pooling.REDUCTIONS`).
    weights: ``(n_labels, n_inputs)`` float32, ``n_inputs = width * len(reductions)``.
    bias: ``(n_labels,)`` float32.
    """

    exclusive: bool
    reductions: tuple[str, ...]
    weights: FloatArray
    bias: FloatArray

    def __post_init__(self) -> None:
        unknown = [r for r in self.reductions if r not in REDUCTIONS]
        ordered = tuple(r for r in REDUCTIONS if r in self.reductions)
        if unknown or not self.reductions or ordered != tuple(self.reductions):
            raise ValueError(
                f"reductions {self.reductions} must be a non-empty subsequence of {REDUCTIONS}"
            )
        self.weights = np.ascontiguousarray(self.weights, dtype=np.float32)
        self.bias = np.ascontiguousarray(self.bias, dtype=np.float32)
        if self.weights.ndim != 2 or self.bias.shape != (self.weights.shape[0],):
            raise ValueError(
                f"weights {self.weights.shape} and bias {self.bias.shape} do not form a "
                "linear layer"
            )

    @property
    def n_labels(self) -> int:
        return int(self.weights.shape[0])

    @property
    def n_inputs(self) -> int:
        return int(self.weights.shape[1])

    def predict(self, doc_vectors: FloatArray) -> FloatArray:
        """Scores ``(n_docs, n_labels)`` for doc vectors ``(n_docs, n_inputs)``."""
        logits = doc_vectors.astype(np.float32, copy=False) @ self.weights.T + self.bias
        return softmax(logits) if self.exclusive else sigmoid(logits)

    def to_dict(self) -> dict[str, Any]:
        """A msgpack-serialisable dict (no pickle, bit-exact arrays)."""
        return {
            "exclusive": self.exclusive,
            "reductions": list(self.reductions),
            "weights": array_to_msg(self.weights),
            "bias": array_to_msg(self.bias),
        }

    @classmethod
    def from_dict(cls, msg: dict[str, Any]) -> ClassifierHead:
        return cls(
            exclusive=bool(msg["exclusive"]),
            reductions=tuple(msg["reductions"]),
            weights=array_from_msg(msg["weights"]),
            bias=array_from_msg(msg["bias"]),
        )


def array_to_msg(array: FloatArray) -> dict[str, Any]:
    """Float32 array -> ``{"shape": [...], "data": little-endian bytes}``."""
    return {
        "shape": list(array.shape),
        "data": np.ascontiguousarray(array, dtype="<f4").tobytes(),
    }


def array_from_msg(msg: dict[str, Any]) -> FloatArray:
    """Inverse of :func:`array_to_msg`."""
    flat = np.frombuffer(msg["data"], dtype="<f4").astype(np.float32)
    return flat.reshape(tuple(msg["shape"]))

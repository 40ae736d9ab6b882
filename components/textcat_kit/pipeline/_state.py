"""Shared plumbing of the fitted, non-trainable components: batching cats and JSON state."""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import srsly
from spacy.tokens import Doc
from spacy.util import minibatch

from ..errors import ConfigError, Errors


def cats_to_array(docs: Sequence[Doc], labels: Sequence[str]) -> np.ndarray:
    """``doc.cats`` of a batch as an (n_docs, n_labels) float array in ``labels`` order.

    The lookups run in C (``operator.itemgetter``): this is on the inference path of every
    doc, and a Python loop over 77 labels costs more than the calibration itself.
    """
    n_docs, n_labels = len(docs), len(labels)
    if n_labels == 0:
        return np.zeros((n_docs, 0), dtype=np.float64)
    getter = operator.itemgetter(*labels)
    try:
        rows = [getter(doc.cats) for doc in docs]
    except KeyError as err:
        present = next(list(doc.cats) for doc in docs if err.args[0] not in doc.cats)
        raise ConfigError(Errors.E014.format(label=err.args[0], present=present[:10])) from None
    return np.array(rows, dtype=np.float64).reshape(n_docs, n_labels)


def write_cats(docs: Sequence[Doc], labels: Sequence[str], values: np.ndarray) -> None:
    """Set ``doc.cats[label]`` from the rows of ``values``, keeping any other labels."""
    for doc, row in zip(docs, values.tolist(), strict=True):
        doc.cats.update(zip(labels, row, strict=True))


def pipe_batches(
    stream: Iterable[Doc], batch_size: int, process: Callable[[list[Doc]], None]
) -> Iterator[Doc]:
    """Apply ``process`` to batches of ``stream`` and yield the docs in order."""
    for batch in minibatch(stream, size=batch_size):
        docs = list(batch)
        process(docs)
        yield from docs


def write_state(path: Path, filename: str, state: dict[str, Any]) -> None:
    path.mkdir(parents=True, exist_ok=True)
    srsly.write_json(path / filename, state)


def read_state(path: Path, filename: str) -> dict[str, Any]:
    return dict(srsly.read_json(path / filename))

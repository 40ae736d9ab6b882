"""Shared plumbing of the fitted, non-trainable components: batching cats and JSON state."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import srsly
from spacy.tokens import Doc
from spacy.util import minibatch

from ..errors import ConfigError, Errors


def cats_to_array(docs: Sequence[Doc], labels: Sequence[str]) -> np.ndarray:
    """``doc.cats`` of a batch as an (n_docs, n_labels) float array in ``labels`` order."""
    out = np.empty((len(docs), len(labels)), dtype=np.float64)
    for i, doc in enumerate(docs):
        cats = doc.cats
        try:
            out[i] = [cats[label] for label in labels]
        except KeyError as err:
            raise ConfigError(
                Errors.E014.format(label=err.args[0], present=list(cats)[:10])
            ) from None
    return out


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

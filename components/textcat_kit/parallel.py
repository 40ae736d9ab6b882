"""Classify many texts on several cores and get scores back, not Docs.

spaCy's ``nlp.pipe(n_process=N)`` returns every Doc to the parent process through
``Doc.to_bytes`` / ``Doc.from_bytes``. For a bag-of-words pipeline that round trip costs more
per doc than the pipeline itself, so two processes can be *slower* than one. When an
application needs the scores and decided labels rather than the Docs, :func:`pipe_scores`
runs ``nlp.pipe`` in forked worker processes and sends back one float32 array (and the
decided labels) per batch.
"""

from __future__ import annotations

import multiprocessing
import warnings
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import islice

import numpy as np
from spacy.language import Language

from .errors import ConfigError, Errors, Warnings
from .evaluation import find_textcat
from .pipeline.decision import EXTENSION
from .pipeline.fitted import cats_to_array

#: The pipeline the forked workers run (set in the parent just before the pool forks).
_WORKER_NLP: Language | None = None
_WORKER_LABELS: tuple[str, ...] = ()


@dataclass
class ScoredBatch:
    """Results for one batch of texts, in input order.

    ``scores[i, j]`` is ``doc.cats[labels[j]]`` of text ``i``; ``decided[i]`` is its
    ``doc._.decided_labels`` (``None`` when the pipeline has no decision component).
    """

    labels: tuple[str, ...]
    scores: np.ndarray
    decided: list[list[str] | None]


def pipe_scores(
    nlp: Language, texts: Iterable[str], *, n_process: int = 1, batch_size: int = 1000
) -> Iterator[ScoredBatch]:
    """``nlp.pipe`` over ``texts`` in batches of ``batch_size``, in this process or in
    ``n_process`` forked ones, yielding the batches' scores in input order.

    Forking shares the loaded pipeline with the workers at no cost; where the platform
    cannot fork (Windows, or macOS's default), it runs in this process with a warning.
    """
    if n_process < 1 or batch_size < 1:
        raise ConfigError(Errors.E015.format(n_process=n_process, batch_size=batch_size))
    labels = tuple(find_textcat(nlp)[1].labels)
    batches = _batches(texts, batch_size)
    if n_process > 1 and "fork" not in multiprocessing.get_all_start_methods():
        warnings.warn(Warnings.W003, stacklevel=2)
        n_process = 1
    if n_process == 1:
        for batch in batches:
            yield _score(nlp, labels, batch)
        return
    global _WORKER_NLP, _WORKER_LABELS
    _WORKER_NLP, _WORKER_LABELS = nlp, labels
    try:
        with multiprocessing.get_context("fork").Pool(n_process) as pool:
            yield from pool.imap(_score_in_worker, batches)
    finally:
        _WORKER_NLP, _WORKER_LABELS = None, ()


def _batches(texts: Iterable[str], size: int) -> Iterator[list[str]]:
    iterator = iter(texts)
    while batch := list(islice(iterator, size)):
        yield batch


def _score(nlp: Language, labels: tuple[str, ...], texts: Sequence[str]) -> ScoredBatch:
    docs = list(nlp.pipe(texts, batch_size=len(texts)))
    scores = cats_to_array(docs, labels).astype(np.float32)
    return ScoredBatch(labels, scores, [doc._.get(EXTENSION) for doc in docs])


def _score_in_worker(texts: list[str]) -> ScoredBatch:
    assert _WORKER_NLP is not None, "pipe_scores sets the pipeline before forking"
    return _score(_WORKER_NLP, _WORKER_LABELS, texts)

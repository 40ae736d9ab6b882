"""Shared plumbing of the fitted, non-trainable components: cats <-> arrays, batches, JSON state."""

from __future__ import annotations

import itertools
import operator
import weakref
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
import srsly
from spacy.pipeline import Pipe
from spacy.tokens import Doc
from spacy.util import SimpleFrozenList

from ..errors import ConfigError, Errors
from ._handoff import hand_off_scores, offer_pull, take_handed, withdraw_pull

if TYPE_CHECKING:
    from spacy.language import Language


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


def write_classifier_scores(classifier: Any, docs: Iterable[Doc], scores: Any) -> None:
    """A classifier's ``set_annotations``: write its batch ``scores`` into ``doc.cats``,
    after applying the calibrator / decision components waiting for this batch
    (:mod:`textcat_kit.pipeline._handoff`). One ``dict.update`` per doc: spaCy's loop
    rebuilds ``labels`` and converts one float per (doc, label)."""
    docs = list(docs)
    array = np.asarray(scores, dtype=np.float64)
    write_cats(docs, classifier.labels, hand_off_scores(classifier, docs, array))


_Component = TypeVar("_Component", bound="FittedComponent")

#: The pipeline each fitted component was created in, kept outside the component so that
#: pickling it (spaCy pickles pipelines for n_process under the spawn start method) does
#: not meet a weak reference; an unpickled copy reads doc.cats itself, without the hand-off.
_PIPELINES: weakref.WeakKeyDictionary[FittedComponent, weakref.ReferenceType[Language]] = (
    weakref.WeakKeyDictionary()
)


class FittedComponent(Pipe):
    """Base of the calibrator and the decision component: fitted by ``textcat-kit tune``,
    never trained, applied one batch at a time, with their fitted state saved as JSON.

    Subclasses set ``state_file`` and implement ``_process_scores`` (annotate a batch from
    its (n_docs, n_labels) scores in ``labels`` order and return the scores that ``doc.cats``
    should hold), ``_state`` and ``_set_state``. Inside ``nlp.pipe``, right after one of our
    classifiers, the classifier applies ``_process_scores`` to its own batch array
    (:mod:`textcat_kit.pipeline._handoff`); otherwise the batch is read from ``doc.cats``.
    """

    state_file: str
    _labels: list[str]

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(self._labels)

    def _process_scores(self, docs: Sequence[Doc], scores: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _state(self) -> dict[str, Any]:
        raise NotImplementedError

    def _set_state(self, state: dict[str, Any]) -> None:
        raise NotImplementedError

    def set_pipeline(self, nlp: Language) -> None:
        """Remember (weakly) the pipeline this component was created in, so that inside its
        ``nlp.pipe`` the classifier before it can hand it the batch scores."""
        _PIPELINES[self] = weakref.ref(nlp)

    def _process(self, docs: Sequence[Doc]) -> None:
        """Annotate docs whose scores are only in ``doc.cats``."""
        if not docs:
            return
        labels = self.labels
        scores = cats_to_array(docs, labels)
        processed = self._process_scores(docs, scores)
        if processed is not scores:
            write_cats(docs, labels, processed)

    def __call__(self, doc: Doc) -> Doc:
        self._process([doc])
        return doc

    def pipe(self, stream: Iterable[Doc], *, batch_size: int = 128) -> Iterator[Doc]:
        stream = iter(stream)
        pending: list[Doc] = []  # handed over by the classifier, not yet pulled
        while True:
            pipeline = self._enabled_pipeline()
            pull = offer_pull(self, pipeline) if pipeline else None
            try:
                docs = list(itertools.islice(stream, batch_size))
            finally:
                if pull is not None:
                    withdraw_pull(pull)
            if not docs:
                return
            if pull is not None:
                pending.extend(pull.handed)
            self._process(take_handed(pending, docs) if pending else docs)
            yield from docs

    def _enabled_pipeline(self) -> list[Any]:
        ref = _PIPELINES.get(self)
        nlp = ref() if ref is not None else None
        return [proc for _, proc in nlp.pipeline] if nlp is not None else []

    def to_bytes(self, *, exclude: Iterable[str] = SimpleFrozenList()) -> bytes:
        return srsly.msgpack_dumps(self._state())

    def from_bytes(
        self: _Component, bytes_data: bytes, *, exclude: Iterable[str] = SimpleFrozenList()
    ) -> _Component:
        self._set_state(srsly.msgpack_loads(bytes_data))
        return self

    def to_disk(self, path: str | Path, *, exclude: Iterable[str] = SimpleFrozenList()) -> None:
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        srsly.write_json(path / self.state_file, self._state())

    def from_disk(
        self: _Component, path: str | Path, *, exclude: Iterable[str] = SimpleFrozenList()
    ) -> _Component:
        self._set_state(dict(srsly.read_json(Path(path) / self.state_file)))
        return self

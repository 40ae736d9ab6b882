"""Hand a classifier's batch scores to the calibrator and decision components after it.

Run as separate components, the calibrator and the decision component each read
``doc.cats`` back into an array and the calibrator writes it again: with 77 labels that is
~20 µs per doc, a third of a bag-of-words pipeline. Inside ``nlp.pipe`` the classifier
already holds the batch as one array, so when our components follow one of our
classifiers they are applied to that array before the classifier's single write of
``doc.cats``, and then pass those docs through. The results are the same as running them
one after the other (tested); only the dict work is saved.

A consumer (calibrator or decision) is applied early only when all of these hold:

* it is pulling its next batch at that moment: the hand-off happens while its ``pipe``
  waits for docs from the stream, which in ``nlp.pipe`` is exactly when the classifier
  scores them. ``nlp(text)``, a direct ``classifier.pipe(...)`` or a pipeline run from a
  loop body is never affected;
* in its pipeline the enabled components between the classifier and it are only fitted
  components that are themselves being applied early (no other component may touch
  ``doc.cats`` in between, and the decision must see the calibrated scores if the
  calibrator runs);
* its labels are the classifier's labels, in the same order.

The consumer then skips exactly the docs it was handed (by identity, holding them until
then so an id is never reused); any other doc is processed the usual way.
"""

from __future__ import annotations

import operator
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from spacy.tokens import Doc

if TYPE_CHECKING:
    from ._state import FittedComponent

_PULLS_ATTR = "_textcat_kit_pulls"


@dataclass(eq=False)
class Pull:
    """One consumer waiting for its next batch, and what it was handed meanwhile."""

    consumer: FittedComponent
    registry: list[Pull]
    position: int
    intermediates: tuple[Any, ...]
    handed: list[Doc] = field(default_factory=list)


def offer_pull(consumer: FittedComponent, pipeline: Sequence[Any]) -> Pull | None:
    """Register ``consumer`` with the classifier before it in ``pipeline`` (enabled
    components, in order), if it can be fed from that classifier's scores."""
    position = next((i for i, proc in enumerate(pipeline) if proc is consumer), None)
    if position is None:
        return None
    intermediates: list[Any] = []
    for proc in reversed(pipeline[:position]):
        if getattr(proc, "hands_off_scores", False):
            if tuple(proc.labels) != consumer.labels or not consumer.labels:
                return None
            registry = _pulls(proc)
            pull = Pull(consumer, registry, position, tuple(intermediates))
            registry.append(pull)
            return pull
        if not hasattr(proc, "_process_scores"):
            return None  # another component may change doc.cats in between
        intermediates.append(proc)
    return None


def withdraw_pull(pull: Pull) -> None:
    pull.registry.remove(pull)


def hand_off_scores(classifier: Any, docs: Sequence[Doc], scores: np.ndarray) -> np.ndarray:
    """Apply the consumers pulling from ``classifier`` to its batch ``scores``, in pipeline
    order; returns the scores to write into ``doc.cats``."""
    by_thread: dict[int, list[Pull]] | None = getattr(classifier, _PULLS_ATTR, None)
    pulls = by_thread.get(threading.get_ident()) if by_thread else None
    if not pulls or not docs:
        return scores
    applied: set[int] = set()
    for pull in sorted(pulls, key=lambda pull: pull.position):
        if all(id(proc) in applied for proc in pull.intermediates):
            scores = pull.consumer._process_scores(docs, scores)
            pull.handed.extend(docs)
            applied.add(id(pull.consumer))
    return scores


def take_handed(pending: list[Doc], docs: list[Doc]) -> list[Doc]:
    """The docs of ``docs`` that were not handed over; removes the handed ones from
    ``pending`` (handed docs not yet pulled, in the order the classifier scored them)."""
    n_docs = len(docs)
    if len(pending) >= n_docs and all(map(operator.is_, pending[:n_docs], docs)):
        del pending[:n_docs]  # nlp.pipe keeps the order: the whole batch was handed over
        return []
    handed = {id(doc) for doc in pending}
    left = [doc for doc in docs if id(doc) not in handed]
    if len(left) < n_docs:
        taken = {id(doc) for doc in docs}
        pending[:] = [doc for doc in pending if id(doc) not in taken]
    return left


def _pulls(classifier: Any) -> list[Pull]:
    """The pulls registered with ``classifier`` by this thread: a generator chain runs in the
    thread that iterates it, so another thread's ``nlp.pipe`` never sees them."""
    by_thread: dict[int, list[Pull]] | None = getattr(classifier, _PULLS_ATTR, None)
    if by_thread is None:
        by_thread = {}
        setattr(classifier, _PULLS_ATTR, by_thread)
    return by_thread.setdefault(threading.get_ident(), [])

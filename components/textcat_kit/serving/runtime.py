"""Run a text classification pipeline on plain texts and return plain Python results.

Shared by ``textcat-kit serve`` (one call per micro-batch) and ``textcat-kit monitor``.
It uses only the public ``Doc`` API of the pipeline: ``doc.cats`` (probabilities, as the
pipeline's calibrator left them) and ``doc._.decided_labels`` (set by the decision
component). A doc is *abstained* when the task is exclusive and no label was decided.

Each call runs inside ``nlp.memory_zone()`` (spaCy >= 3.8): strings and vocab entries
the batch adds are freed when the zone closes, so a long-running service does not grow
with every new word it sees. Everything returned is copied out of the docs before the
zone closes.

Inside a zone spaCy's tokenizer neither caches nor keeps new words, so a batch of words
the process has not seen before costs about twice as much to tokenize. Two remedies,
both bounded: the first ``warmup_docs`` texts run outside zones (the cache and the
vocabulary fill with the words of real traffic, once), and :meth:`prime` tokenizes given
texts (e.g. the training file) outside any zone at startup.
"""

from __future__ import annotations

import contextlib
import operator
import warnings
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import spacy
import srsly
from spacy.language import Language
from spacy.tokens import Doc

from ..errors import ConfigError, Errors, Warnings

DECIDED = "decided_labels"
#: Where spaCy keeps ``doc._.decided_labels`` in ``doc.user_data``.
DECIDED_KEY = ("._.", DECIDED, None, None)
#: Names of thinc layers that compute outside the GIL: thinc's PyTorchWrapper,
#: spacy-transformers' transformer, textcat-kit's frozen sentence encoder (PyTorch).
GIL_RELEASING_LAYERS = frozenset({"pytorch", "transformer", "sentence_encoder"})


def find_classifier(nlp: Language) -> tuple[str, Any, bool]:
    """(name, component, exclusive) of the pipeline's last text classifier.

    A spaCy ``TextCategorizer`` (exclusive unless multi-label), or any component exposing
    ``labels`` and ``is_exclusive`` (the ONNX classifier does).
    """
    from spacy.pipeline import MultiLabel_TextCategorizer, TextCategorizer

    found: list[tuple[str, Any, bool]] = []
    for name, pipe in nlp.pipeline:
        if hasattr(pipe, "labels") and hasattr(pipe, "is_exclusive"):
            found.append((name, pipe, bool(pipe.is_exclusive)))
        elif isinstance(pipe, TextCategorizer):
            found.append((name, pipe, not isinstance(pipe, MultiLabel_TextCategorizer)))
    if not found:
        raise ConfigError(
            Errors.E010.format(
                expected=("textcat", "textcat_multilabel"), pipe_names=nlp.pipe_names
            )
        )
    return found[-1]


@dataclass
class BatchOutput:
    """Outputs for a list of texts, aligned with it."""

    cats: list[dict[str, float]]
    decided: list[list[str]]
    probs: np.ndarray
    """(n_texts, n_labels) probabilities in :attr:`ClassifierRuntime.labels` order."""


class ClassifierRuntime:
    """A loaded pipeline plus what a service needs to know about it."""

    def __init__(
        self,
        nlp: Language,
        *,
        model: str = "",
        memory_zones: bool = True,
        batch_size: int = 256,
        warmup_docs: int = 0,
    ) -> None:
        self.nlp = nlp
        self.model = model
        self.memory_zones = memory_zones and hasattr(nlp, "memory_zone")
        self.batch_size = batch_size
        self.warmup_docs = warmup_docs
        self.docs_seen = 0
        self.textcat_name, textcat, self.exclusive = find_classifier(nlp)
        self.labels: list[str] = list(textcat.labels)
        self.has_decision = self._sets_decided_labels()
        if not self.has_decision:
            warnings.warn(Warnings.W300, stacklevel=2)
        self._index = {label: j for j, label in enumerate(self.labels)}

    @classmethod
    def load(cls, model: str | Path, **kwargs: Any) -> ClassifierRuntime:
        """Load a pipeline directory or an installed pipeline package."""
        return cls(spacy.load(model), model=str(model), **kwargs)

    @property
    def model_path(self) -> Path | None:
        """Directory the pipeline was loaded from (a package's data directory too)."""
        path = getattr(self.nlp, "path", None) or getattr(self.nlp, "_path", None)
        if path is None and self.model and Path(self.model).is_dir():
            path = Path(self.model)
        return Path(path) if path is not None else None

    @property
    def model_info(self) -> dict[str, str]:
        meta = self.nlp.meta
        return {
            "name": f"{meta.get('lang', 'xx')}_{meta.get('name', 'pipeline')}",
            "version": str(meta.get("version", "0.0.0")),
        }

    @property
    def task(self) -> str:
        return "exclusive" if self.exclusive else "multilabel"

    @property
    def releases_gil(self) -> bool:
        """Whether the pipeline does its heavy work outside the GIL: a PyTorch layer
        (spacy-transformers, the sentence-embedding encoder) or ONNX Runtime. The server
        then runs batches in a worker thread, so it keeps reading requests meanwhile."""
        from thinc.api import Model

        for _name, pipe in self.nlp.pipeline:
            if type(pipe).__module__.startswith("textcat_kit.onnx"):
                return True
            model = getattr(pipe, "model", None)
            if isinstance(model, Model) and any(
                node.name in GIL_RELEASING_LAYERS for node in model.walk()
            ):
                return True
        return False

    def _sets_decided_labels(self) -> bool:
        """Whether the pipeline sets ``doc._.decided_labels`` (probed on one short text)."""
        if not Doc.has_extension(DECIDED):
            return False
        with self._zone():
            doc = self.nlp("probe")
            return doc._.get(DECIDED) is not None

    def thresholds(self) -> dict[str, Any]:
        """The tuned decision rule as ``textcat-kit tune`` recorded it (tune_summary.json)."""
        path = self.model_path
        summary_path = path / "tune_summary.json" if path is not None else None
        if summary_path is None or not summary_path.is_file():
            return {}
        summary = srsly.read_json(summary_path)
        return {
            "per_label": summary.get("thresholds", {}),
            "global": summary.get("global_threshold"),
            "abstain": summary.get("abstain"),
            "calibration": summary.get("calibration_method"),
        }

    def metadata(self) -> dict[str, Any]:
        """Labels, task, thresholds and test metrics (meta.json) of the pipeline."""
        meta = self.nlp.meta
        kit = meta.get("textcat_kit", {}) or {}
        return {
            "model": self.model_info,
            "labels": self.labels,
            "task": self.task,
            "pipeline": list(self.nlp.pipe_names),
            "thresholds": self.thresholds(),
            "decided_labels": "pipeline" if self.has_decision else "fallback (W300)",
            "test_metrics": kit.get("test_metrics") or meta.get("performance", {}),
            "spacy_version": meta.get("spacy_version"),
        }

    def prime(self, texts: Iterable[str]) -> int:
        """Tokenize ``texts`` outside any memory zone; returns how many.

        Inside a memory zone spaCy's tokenizer does not add to its cache and every word
        gets a transient vocabulary entry, so text made of words it has never cached is
        tokenized from scratch in every batch. Priming with typical texts (the training
        file) makes those words permanent once, at a bounded cost.
        """
        n = 0
        tokenizer: Any = self.nlp.tokenizer
        for _doc in tokenizer.pipe(texts, batch_size=1000):
            n += 1
        return n

    @property
    def in_warmup(self) -> bool:
        return self.docs_seen < self.warmup_docs

    @contextlib.contextmanager
    def _zone(self) -> Iterator[None]:
        if self.memory_zones and not self.in_warmup:
            with self.nlp.memory_zone():
                yield
        else:
            yield

    def _fallback_decided(self, probs: np.ndarray) -> list[str]:
        """Decided labels of a pipeline without a decision rule (W300): the top label
        (exclusive) or every label at 0.5 or more."""
        if self.exclusive:
            return [self.labels[int(probs.argmax())]] if probs.size else []
        return [label for label, p in zip(self.labels, probs.tolist()) if p >= 0.5]

    def run(self, texts: Sequence[str]) -> BatchOutput:
        """Classify ``texts`` with ``nlp.pipe`` inside one memory zone."""
        labels = self.labels
        getter = operator.itemgetter(*labels) if len(labels) > 1 else None
        cats_out: list[dict[str, float]] = []
        rows: list[Any] = []
        decided_out: list[list[str] | None] = []
        with self._zone():
            for doc in self.nlp.pipe(texts, batch_size=self.batch_size):
                cats = doc.cats
                try:
                    row = getter(cats) if getter is not None else [cats[labels[0]]]
                except KeyError:  # a label the classifier did not write: 0.0
                    row = [float(cats.get(label, 0.0)) for label in labels]
                    cats = dict(zip(labels, row, strict=True))
                rows.append(row)
                cats_out.append(cats)
                # doc._.decided_labels, read without building an Underscore object.
                decided_out.append(doc.user_data.get(DECIDED_KEY))  # type: ignore[call-overload]
        probs = np.array(rows, dtype=np.float64).reshape(len(texts), len(labels))
        decided = [
            list(found) if found is not None else self._fallback_decided(probs[i])
            for i, found in enumerate(decided_out)
        ]
        self.docs_seen += len(texts)
        return BatchOutput(cats=cats_out, decided=decided, probs=probs)

    def decided_matrix(self, decided: Sequence[Sequence[str]]) -> np.ndarray:
        out = np.zeros((len(decided), len(self.labels)), dtype=bool)
        for i, doc_labels in enumerate(decided):
            for label in doc_labels:
                out[i, self._index[label]] = True
        return out

"""Fitted calibration and decision state, and how it is applied to a batch of docs.

``textcat-kit tune`` fits two things on held-out data: a calibrator (scores -> calibrated
probabilities) and a decision rule (probabilities -> decided labels). Our classifiers
(``textcat_kit_textcat``, ``textcat_kit_textcat_multilabel`` and the ONNX component) hold
both in a :class:`ClassifierState` and apply it in ``set_annotations`` to the batch array
they have just predicted, then write ``doc.cats`` and ``doc._.decided_labels`` once. There
is no state shared between components and nothing depends on how ``nlp.pipe`` interleaves
its generators: a classifier's output depends only on its docs and its own state.

The standalone ``textcat_kit_calibrator`` / ``textcat_kit_decision`` components
(:class:`FittedComponent`) apply the same objects to ``doc.cats`` for classifiers that are
not ours (spaCy's ``textcat``, a transformer pipeline), at the cost of reading ``doc.cats``
back into an array.

Fitted state is JSON, checked when it is loaded and before it is saved
(:mod:`textcat_kit.pipeline.state_schema`): a wrong file is a coded error naming the
file and the field, never silently wrong scores.
"""

from __future__ import annotations

import itertools
import json
import operator
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
import srsly
from spacy.pipeline import Pipe
from spacy.tokens import Doc
from spacy.util import SimpleFrozenList

from .. import speedups
from ..errors import ConfigError, Errors
from ..maths.calibration import Calibrator, TemperatureScaling, calibrator_from_dict
from .state_schema import check_calibrator_state, check_decision_state

if TYPE_CHECKING:
    from spacy.language import Language

#: ``doc._.decided_labels``: the labels the decision rule chose for a doc.
EXTENSION = "decided_labels"
if not Doc.has_extension(EXTENSION):
    Doc.set_extension(EXTENSION, default=None)
#: The doc.user_data key of doc._.decided_labels (spaCy's Underscore key for a Doc): writing
#: it directly saves building an Underscore object per doc.
_USER_DATA_KEY = ("._.", EXTENSION, None, None)

CALIBRATOR_FILE = "calibrator.json"
DECISION_FILE = "decision.json"


# --- docs <-> arrays ------------------------------------------------------------------------


def cats_to_array(docs: Sequence[Doc], labels: Sequence[str]) -> np.ndarray:
    """``doc.cats`` of a batch as an (n_docs, n_labels) float array in ``labels`` order.

    The lookups run in C (``operator.itemgetter``); a Python loop over the labels of every
    doc costs more than the calibration itself.
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
    """Set ``doc.cats[label]`` from the rows of ``values``, keeping any other labels.

    One ``dict.update`` per doc from a zip over the row as Python floats (``tolist`` converts
    the whole batch in C); spaCy's own loop converts one NumPy scalar per (doc, label). A doc
    whose ``cats`` is still empty gets a copy of a dict that already holds every label, so
    the update replaces values instead of growing the dict (about 10% faster).
    """
    template = dict.fromkeys(labels, 0.0)
    if speedups.KERNELS is not None:  # the same loop in C
        speedups.KERNELS.set_cats(
            docs if isinstance(docs, list) else list(docs),
            tuple(labels),
            np.ascontiguousarray(values, dtype=np.float64),
            template,
        )
        return
    for doc, row in zip(docs, values.tolist(), strict=True):
        if doc.cats:
            doc.cats.update(zip(labels, row))
        else:
            cats = template.copy()
            cats.update(zip(labels, row))
            doc.cats = cats


def write_decisions(
    docs: Sequence[Doc], labels: Sequence[str], rule: DecisionRule, probs: np.ndarray
) -> None:
    """Decide ``probs`` with ``rule`` and set ``doc._.decided_labels``; an exclusive rule
    writes from its top label and abstain flag, without a boolean matrix."""
    if rule.exclusive:
        write_exclusive_decided(docs, labels, *rule.exclusive_top(probs))
    else:
        write_decided(docs, labels, rule.decide(probs))


def write_decided(docs: Sequence[Doc], labels: Sequence[str], decided: np.ndarray) -> None:
    """Set ``doc._.decided_labels`` from an (n_docs, n_labels) boolean array."""
    per_doc: list[list[str]] = [[] for _ in docs]
    rows, cols = np.nonzero(decided)
    for i, j in zip(rows.tolist(), cols.tolist(), strict=True):
        per_doc[i].append(labels[j])
    for doc, doc_labels in zip(docs, per_doc, strict=True):
        doc.user_data[_USER_DATA_KEY] = doc_labels  # type: ignore[index]


def write_exclusive_decided(
    docs: Sequence[Doc], labels: Sequence[str], top: np.ndarray, keep: np.ndarray
) -> None:
    """Set ``doc._.decided_labels`` to ``[labels[top]]`` where ``keep``, else ``[]``."""
    if speedups.KERNELS is not None:  # the loop below, in C
        speedups.KERNELS.set_decided_exclusive(
            docs if isinstance(docs, list) else list(docs),
            tuple(labels),
            np.ascontiguousarray(top, dtype=np.int64),
            np.ascontiguousarray(keep, dtype=bool),
            _USER_DATA_KEY,
        )
        return
    for doc, index, kept in zip(docs, top.tolist(), keep.tolist(), strict=True):
        doc.user_data[_USER_DATA_KEY] = [labels[index]] if kept else []  # type: ignore[index]


# --- the decision rule ----------------------------------------------------------------------


@dataclass
class DecisionRule:
    """Per-label thresholds (multi-label) or an abstain threshold (exclusive), as fitted.

    ``thresholds`` maps each label to its threshold (multi-label decisions);
    ``abstain_threshold`` is the minimum top-label probability of an exclusive decision
    (``None``: always decide the top label); ``ensure_one_label`` gives a multi-label doc
    with no label above its threshold its top label. ``fit_info`` is what tune recorded
    (per-label objectives, dev precision/coverage) for reports; it is not used to decide.
    """

    labels: list[str]
    exclusive: bool
    thresholds: dict[str, float]
    global_threshold: float | None = None
    abstain_threshold: float | None = None
    ensure_one_label: bool = False
    fit_info: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._threshold_array = np.array(
            [self.thresholds.get(label, 0.5) for label in self.labels], dtype=np.float64
        )

    def decide(self, probs: np.ndarray) -> np.ndarray:
        """Boolean decisions for an (n_docs, n_labels) array of probabilities."""
        decided: np.ndarray = np.zeros(probs.shape, dtype=bool)
        if probs.shape[0] == 0:
            return decided
        rows = np.arange(probs.shape[0])
        if self.exclusive:
            top, keep = self.exclusive_top(probs)
            decided[rows[keep], top[keep]] = True
            return decided
        top = probs.argmax(axis=1)
        decided = probs >= self._threshold_array[None, :]
        if self.ensure_one_label:
            empty = ~decided.any(axis=1)
            decided[rows[empty], top[empty]] = True
        return decided

    def exclusive_top(self, probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """An exclusive decision as (top label index, kept) per doc: a doc whose top
        probability is under the abstain threshold keeps no label."""
        top = probs.argmax(axis=1)
        if self.abstain_threshold is None:
            return top, np.ones(probs.shape[0], dtype=bool)
        return top, probs[np.arange(probs.shape[0]), top] >= self.abstain_threshold

    def to_dict(self) -> dict[str, Any]:
        """The state as saved in ``decision.json``."""
        return {
            "labels": list(self.labels),
            "exclusive": self.exclusive,
            "thresholds": dict(self.thresholds),
            "global_threshold": self.global_threshold,
            "abstain_threshold": self.abstain_threshold,
            "ensure_one_label": self.ensure_one_label,
            "fit_info": self.fit_info,
        }

    @classmethod
    def from_dict(
        cls, data: dict[str, Any], *, source: str = DECISION_FILE, ensure_one_label: bool = False
    ) -> DecisionRule:
        """Restore a rule; ``data`` is checked first (coded error naming ``source`` and the
        field). ``ensure_one_label`` is the default for files written before it was saved."""
        check_decision_state(data, source)
        return cls(
            labels=[str(label) for label in data["labels"]],
            exclusive=bool(data["exclusive"]),
            thresholds={str(k): float(v) for k, v in data["thresholds"].items()},
            global_threshold=_optional_float(data.get("global_threshold")),
            abstain_threshold=_optional_float(data.get("abstain_threshold")),
            ensure_one_label=bool(data.get("ensure_one_label", ensure_one_label)),
            fit_info=dict(data.get("fit_info") or {}),
        )


def read_state_file(path: Path) -> Any:
    """A fitted-state JSON file; unreadable JSON is E250 naming the file. NaN / Infinity
    are read (the checks then name the field that holds them)."""
    try:
        return json.loads(path.read_text(encoding="utf8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ConfigError(
            Errors.E250.format(
                source=path, field="(file)", value=type(error).__name__, rule=f"not JSON ({error})"
            )
        ) from None


def _optional_float(value: Any) -> float | None:
    return None if value is None else float(value)


def calibrator_state(labels: Sequence[str], calibrator: Calibrator | None) -> dict[str, Any]:
    """The content of ``calibrator.json``."""
    return {
        "labels": list(labels),
        "calibrator": calibrator.to_dict() if calibrator is not None else None,
    }


def load_calibrator(data: dict[str, Any], source: str = CALIBRATOR_FILE) -> Calibrator | None:
    """Restore the calibrator of a ``calibrator.json`` after checking it."""
    check_calibrator_state(data, source)
    state = data.get("calibrator")
    return calibrator_from_dict(state) if state else None


# --- the state a classifier owns ------------------------------------------------------------


@dataclass
class ClassifierState:
    """What ``textcat-kit tune`` fitted for a classifier: calibrator and decision rule.

    Either may be ``None``. :meth:`annotate` is the classifier's ``set_annotations``:
    calibrate the batch scores, write ``doc.cats`` once, decide and set
    ``doc._.decided_labels``. ``enabled`` is switched off by :func:`raw_scores` to read the
    classifier's own scores (evaluation reports before/after calibration).
    """

    calibrator: Calibrator | None = None
    decision: DecisionRule | None = None
    enabled: bool = True

    @property
    def is_fitted(self) -> bool:
        return self.calibrator is not None or self.decision is not None

    @property
    def calibrates_logits(self) -> bool:
        """Calibration is on and maps logits (temperature scaling: ``transform_logits``):
        then a classifier with a parameter-free softmax output hands it its logits."""
        return self.enabled and isinstance(self.calibrator, TemperatureScaling)

    def calibrate_logits(self, logits: np.ndarray) -> np.ndarray:
        """Calibrated probabilities from logits (only when :attr:`calibrates_logits`)."""
        assert isinstance(self.calibrator, TemperatureScaling)
        return self.calibrator.transform_logits(logits)

    def calibrate(self, scores: np.ndarray) -> np.ndarray:
        if self.calibrator is None:
            return scores
        return self.calibrator.transform(scores)

    def annotate(
        self,
        docs: Sequence[Doc],
        labels: Sequence[str],
        scores: np.ndarray,
        *,
        calibrated: bool = False,
    ) -> None:
        """Write ``doc.cats`` (calibrated if fitted) and ``doc._.decided_labels``.
        ``calibrated``: the classifier already applied the calibration (to its logits)."""
        if not self.enabled or not docs:
            write_cats(docs, labels, scores)
            return
        probs = scores if calibrated else self.calibrate(scores)
        write_cats(docs, labels, probs)
        if self.decision is not None:
            write_decisions(docs, labels, self.decision, probs)

    # Serialisation: the same two JSON files as the standalone components write.
    def to_disk(self, path: Path, labels: Sequence[str]) -> None:
        """Write ``calibrator.json`` / ``decision.json`` into the classifier's directory,
        after checking them, and remove stale ones of an earlier state."""
        for file_name, data in self._files(labels).items():
            target = path / file_name
            if data is None:
                target.unlink(missing_ok=True)
            else:
                srsly.write_json(target, data)

    def from_disk(self, path: Path, labels: Sequence[str]) -> None:
        """Read the files :meth:`to_disk` wrote (absent: not fitted), checked against the
        classifier's ``labels``."""
        data = {}
        for file_name in (CALIBRATOR_FILE, DECISION_FILE):
            if (path / file_name).exists():
                data[file_name] = read_state_file(path / file_name)
        self._load(data, labels, str(path))

    def to_bytes_dict(self, labels: Sequence[str]) -> dict[str, Any]:
        return {key: value for key, value in self._files(labels).items() if value is not None}

    def from_bytes_dict(self, data: dict[str, Any], labels: Sequence[str]) -> None:
        self._load(data, labels, "<bytes>")

    def _files(self, labels: Sequence[str]) -> dict[str, dict[str, Any] | None]:
        files: dict[str, dict[str, Any] | None] = {
            CALIBRATOR_FILE: None
            if self.calibrator is None
            else calibrator_state(labels, self.calibrator),
            DECISION_FILE: None if self.decision is None else self.decision.to_dict(),
        }
        for file_name, data in files.items():
            if data is not None:
                check = (
                    check_calibrator_state if file_name == CALIBRATOR_FILE else check_decision_state
                )
                check(data, file_name, labels=labels)
        return files

    def _load(self, data: dict[str, Any], labels: Sequence[str], where: str) -> None:
        calibrator = decision = None
        if CALIBRATOR_FILE in data:
            source = f"{where}/{CALIBRATOR_FILE}"
            check_calibrator_state(data[CALIBRATOR_FILE], source, labels=labels)
            calibrator = load_calibrator(data[CALIBRATOR_FILE], source)
        if DECISION_FILE in data:
            source = f"{where}/{DECISION_FILE}"
            check_decision_state(data[DECISION_FILE], source, labels=labels)
            decision = DecisionRule.from_dict(data[DECISION_FILE], source=source)
        self.calibrator, self.decision = calibrator, decision


class OwnsFittedState:
    """Mixin of our classifiers: they own a :class:`ClassifierState` and apply it in
    ``set_annotations``. Subclasses call :meth:`_annotate` from ``set_annotations``."""

    fitted: ClassifierState
    labels: Any

    def _annotate(self, docs: Iterable[Doc], scores: np.ndarray, calibrated: bool = False) -> None:
        docs = docs if isinstance(docs, list) else list(docs)
        self.fitted.annotate(docs, self.labels, scores, calibrated=calibrated)

    def set_fitted_state(
        self, calibrator: Calibrator | None, decision: DecisionRule | None
    ) -> None:
        """Set the fitted calibrator and decision rule (``textcat-kit tune`` calls this)."""
        state = ClassifierState(calibrator=calibrator, decision=decision)
        state._files(list(self.labels))  # checks labels and values before accepting them
        self.fitted = state


# --- standalone components (for classifiers that are not ours) ------------------------------

_Component = TypeVar("_Component", bound="FittedComponent")


class FittedComponent(Pipe):
    """Base of the standalone calibrator and decision components: fitted by
    ``textcat-kit tune``, never trained, applied to ``doc.cats`` one batch at a time, with
    their fitted state saved as JSON.

    Subclasses set ``state_file`` and implement ``_process_scores`` (annotate a batch from
    its (n_docs, n_labels) scores in ``labels`` order and return the scores ``doc.cats``
    should hold), ``_state`` and ``_set_state``.
    """

    state_file: str
    name: str
    _labels: list[str]

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(self._labels)

    def _process_scores(self, docs: Sequence[Doc], scores: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _state(self) -> dict[str, Any]:
        raise NotImplementedError

    def _set_state(self, state: dict[str, Any], source: str) -> None:
        raise NotImplementedError

    def _process(self, docs: Sequence[Doc]) -> None:
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
        while docs := list(itertools.islice(stream, batch_size)):
            self._process(docs)
            yield from docs

    def to_bytes(self, *, exclude: Iterable[str] = SimpleFrozenList()) -> bytes:
        return srsly.msgpack_dumps(self._state())

    def from_bytes(
        self: _Component, bytes_data: bytes, *, exclude: Iterable[str] = SimpleFrozenList()
    ) -> _Component:
        self._set_state(srsly.msgpack_loads(bytes_data), f"{self.name} (bytes)")
        return self

    def to_disk(self, path: str | Path, *, exclude: Iterable[str] = SimpleFrozenList()) -> None:
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        srsly.write_json(path / self.state_file, self._state())

    def from_disk(
        self: _Component, path: str | Path, *, exclude: Iterable[str] = SimpleFrozenList()
    ) -> _Component:
        file_path = Path(path) / self.state_file
        self._set_state(read_state_file(file_path), str(file_path))
        return self


# --- finding the fitted state of a pipeline -------------------------------------------------


@dataclass
class PipelineDecisions:
    """Where a pipeline's calibration and decisions happen: in the classifier (tuned with
    this version) or in standalone components after it (third-party classifiers, and
    pipelines tuned before the classifier owned its state)."""

    classifier: Any
    owned: ClassifierState | None
    components: list[FittedComponent]

    @property
    def decision(self) -> DecisionRule | None:
        """The decision rule (thresholds, abstain threshold, fit_info), if any."""
        if self.owned is not None and self.owned.decision is not None:
            return self.owned.decision
        for component in self.components:
            rule = getattr(component, "rule", None)
            if isinstance(rule, DecisionRule):
                return rule
        return None

    @property
    def has_calibration(self) -> bool:
        owned = self.owned is not None and self.owned.calibrator is not None
        return owned or any(hasattr(c, "calibrator") for c in self.components)

    @property
    def is_fitted(self) -> bool:
        return (self.owned is not None and self.owned.is_fitted) or bool(self.components)

    def apply(self, docs: list[Doc]) -> None:
        """Calibrate and decide docs whose ``doc.cats`` hold the classifier's raw scores."""
        if self.owned is not None and self.owned.is_fitted and docs:
            labels = list(self.classifier.labels)
            self.owned.annotate(docs, labels, cats_to_array(docs, labels))
        for component in self.components:
            component._process(docs)


def pipeline_decisions(nlp: Language, classifier_name: str) -> PipelineDecisions:
    """The fitted state applied after ``classifier_name``'s scores in ``nlp``."""
    classifier = nlp.get_pipe(classifier_name)
    owned = classifier.fitted if isinstance(classifier, OwnsFittedState) else None
    names = nlp.pipe_names
    after = names[names.index(classifier_name) + 1 :]
    components = [
        cast_component(nlp.get_pipe(name))
        for name in after
        if isinstance(nlp.get_pipe(name), FittedComponent)
    ]
    return PipelineDecisions(classifier, owned, components)


def cast_component(pipe: Any) -> FittedComponent:
    assert isinstance(pipe, FittedComponent)
    return pipe


class raw_scores:  # noqa: N801 - used like a function: ``with raw_scores(nlp, name):``
    """Context manager: run ``nlp`` with the classifier's fitted state and the standalone
    components after it switched off, so ``doc.cats`` holds the classifier's own scores."""

    def __init__(self, nlp: Language, classifier_name: str) -> None:
        self.decisions = pipeline_decisions(nlp, classifier_name)
        self.nlp = nlp
        self._disabled: Any = None

    def __enter__(self) -> PipelineDecisions:
        if self.decisions.owned is not None:
            self.decisions.owned.enabled = False
        names = [c.name for c in self.decisions.components if c.name in self.nlp.pipe_names]
        self._disabled = self.nlp.select_pipes(disable=names) if names else None
        return self.decisions

    def __exit__(self, *exc: object) -> None:
        if self.decisions.owned is not None:
            self.decisions.owned.enabled = True
        if self._disabled is not None:
            self._disabled.restore()

"""A trained pipeline's predictions as Label Studio pre-annotations.

Label Studio shows a prediction's ``result`` as a pre-filled answer and lets annotators sort
tasks by its ``score``; with the score of the decision the model took, sorting ascending
puts the least confident tasks first (uncertainty sampling). Which labels to pre-fill is a
small function (:data:`LabelChooser`) so that a decision component with tuned thresholds
can replace the plain argmax / 0.5 rule.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from spacy.language import Language
from spacy.tokens import Doc

from ..errors import ConfigError, Errors
from .config import LabelingScheme

#: ``doc._`` attributes holding labels a decision component decided on, first found wins:
#: ``decided_labels`` is set by ``textcat_kit_decision`` (``pipeline/decision.py``).
DECIDED_LABELS_ATTRS = ("decided_labels", "textcat_kit_labels")
LabelChooser = Callable[[Doc], Sequence[str]]


@dataclass(frozen=True)
class PredictionPayload:
    """One pre-annotation, ready for ``predictions.create`` / ``import_predictions``."""

    task_id: int
    labels: tuple[str, ...]
    score: float
    model_version: str
    result: list[dict[str, Any]]

    def to_request(self) -> dict[str, Any]:
        """The body Label Studio's prediction API takes."""
        return {
            "task": self.task_id,
            "result": self.result,
            "score": self.score,
            "model_version": self.model_version,
        }


def choose_labels(
    cats: Mapping[str, float], *, exclusive: bool, threshold: float = 0.5
) -> list[str]:
    """Exclusive: the argmax label. Multi-label: every label scoring ``>= threshold``."""
    if not cats:
        return []
    if exclusive:
        return [max(cats, key=lambda label: cats[label])]
    return [label for label, score in cats.items() if score >= threshold]


def decision_confidence(
    cats: Mapping[str, float], labels: Iterable[str], *, exclusive: bool
) -> float:
    """How sure the model is of the decision it took, in [0, 1].

    Exclusive: the score of the chosen label (Label Studio's usual meaning of ``score``).
    Multi-label: for each label its score if chosen and one minus it if not, and the least
    of these, so one borderline label makes the whole task uncertain.
    """
    if not cats:
        return 0.0
    chosen = set(labels)
    if exclusive:
        return float(max((cats[label] for label in chosen if label in cats), default=0.0))
    return float(min(cats[label] if label in chosen else 1.0 - cats[label] for label in cats))


def default_label_chooser(exclusive: bool, threshold: float = 0.5) -> LabelChooser:
    """Use the labels a decision component set (:data:`DECIDED_LABELS_ATTRS`; tuned
    thresholds, possibly ``[]`` for "not sure"), else :func:`choose_labels` on ``doc.cats``."""

    def choose(doc: Doc) -> Sequence[str]:
        for attr in DECIDED_LABELS_ATTRS:
            if Doc.has_extension(attr):
                decided = getattr(doc._, attr)
                if decided is not None:
                    return list(decided)
        return choose_labels(doc.cats, exclusive=exclusive, threshold=threshold)

    return choose


def choices_result(labels: Sequence[str], scheme: LabelingScheme) -> list[dict[str, Any]]:
    """Label Studio ``result`` JSON selecting ``labels`` in the scheme's Choices."""
    if not labels:
        return []
    return [
        {
            "from_name": scheme.choices_name,
            "to_name": scheme.to_name,
            "type": "choices",
            "value": {"choices": list(labels)},
        }
    ]


def predict_tasks(
    nlp: Language,
    tasks: Sequence[tuple[int, str]],
    scheme: LabelingScheme,
    *,
    model_version: str,
    choose: LabelChooser | None = None,
    threshold: float = 0.5,
    batch_size: int = 64,
) -> list[PredictionPayload]:
    """Predict ``(task_id, text)`` pairs; return payloads, least confident first.

    Every label of the scheme must have a score in ``doc.cats`` and every chosen label must
    be a choice of the scheme, otherwise the model and the project do not match.
    """
    choose = choose or default_label_chooser(scheme.exclusive, threshold)
    allowed = set(scheme.labels)
    payloads = []
    texts = [text for _, text in tasks]
    docs = nlp.pipe(texts, batch_size=batch_size)
    for (task_id, _), doc in zip(tasks, docs, strict=True):
        missing = [label for label in scheme.labels if label not in doc.cats]
        if missing:
            raise ConfigError(
                Errors.E128.format(
                    label=missing[0],
                    name=scheme.choices_name,
                    present=", ".join(doc.cats) or "nothing",
                )
            )
        cats = {label: float(doc.cats[label]) for label in scheme.labels}
        labels = tuple(choose(doc))
        for label in labels:
            if label not in allowed:
                raise ConfigError(
                    Errors.E129.format(
                        label=label,
                        task_id=task_id,
                        name=scheme.choices_name,
                        labels=", ".join(scheme.labels),
                    )
                )
        payloads.append(
            PredictionPayload(
                task_id=task_id,
                labels=labels,
                score=round(decision_confidence(cats, labels, exclusive=scheme.exclusive), 6),
                model_version=model_version,
                result=choices_result(labels, scheme),
            )
        )
    return sorted(payloads, key=lambda p: (p.score, p.task_id))

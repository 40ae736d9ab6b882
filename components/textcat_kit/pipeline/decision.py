"""The decision component: from probabilities to decided labels, per label.

spaCy has one global threshold, and only at evaluation time. Applications need a
decision per label at inference: a rare label (complaint, grief) needs a different
cut-off than a common one, and an exclusive classifier should be able to say "not
sure, route this to a person". This component reads ``doc.cats`` (ideally calibrated
by :mod:`textcat_kit.pipeline.calibrator`) and sets ``doc._.decided_labels``:

* multi-label: every label whose probability reaches its tuned threshold
  (optionally at least the top label, ``ensure_one_label``);
* exclusive: the top label, or ``[]`` when its probability is below the abstain
  threshold tuned to reach ``abstain_precision`` on held-out data.

Thresholds are fitted by ``textcat-kit tune`` through :mod:`textcat_kit.maths.thresholds`
(cross-fitted and shrunk towards the global threshold so rare labels don't overfit).
The registered scorer ``textcat_kit.decision_scorer.v1`` scores the decided labels, so
``spacy evaluate`` reports P/R/F with the tuned thresholds.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np
from spacy.language import Language
from spacy.tokens import Doc
from spacy.training import Example
from spacy.util import registry

from ..errors import ConfigError, Errors
from ..maths import metrics
from ..maths.thresholds import OBJECTIVES, abstain_threshold, tune_thresholds
from ._state import FittedComponent

EXTENSION = "decided_labels"

if not Doc.has_extension(EXTENSION):
    Doc.set_extension(EXTENSION, default=None)
#: The doc.user_data key of doc._.decided_labels (spaCy's Underscore key for a Doc).
_USER_DATA_KEY = ("._.", EXTENSION, None, None)


@Language.factory(
    "textcat_kit_decision",
    default_config={
        "objective": "f1",
        "beta": 1.0,
        "target": None,
        "label_objectives": {},
        "ensure_one_label": False,
        "abstain_precision": None,
        "min_positives": 10,
        "shrinkage": "auto",
        "n_folds": 5,
        "scorer": {"@scorers": "textcat_kit.decision_scorer.v1"},
    },
    assigns=[f"doc._.{EXTENSION}"],
    requires=["doc.cats"],
)
def make_decision(
    nlp: Language,
    name: str,
    objective: str,
    beta: float,
    target: float | None,
    label_objectives: dict[str, dict[str, Any]],
    ensure_one_label: bool,
    abstain_precision: float | None,
    min_positives: int,
    shrinkage: float | str | None,
    n_folds: int,
    scorer: Callable[..., dict[str, Any]] | None,
) -> Decision:
    """Create a decision component; thresholds are fitted by ``textcat-kit tune``.

    ``objective`` is one of ``f1``, ``fbeta`` (with ``beta``), ``recall_at_precision``
    and ``precision_at_recall`` (with ``target``); ``label_objectives`` overrides it for
    single labels, e.g. ``{"complaint": {"objective": "recall_at_precision", "target": 0.9}}``.
    """
    decision = Decision(
        nlp.vocab,
        name,
        objective=objective,
        beta=beta,
        target=target,
        label_objectives=label_objectives,
        ensure_one_label=ensure_one_label,
        abstain_precision=abstain_precision,
        min_positives=min_positives,
        shrinkage=shrinkage,
        n_folds=n_folds,
        scorer=scorer,
    )
    decision.set_pipeline(nlp)
    return decision


class Decision(FittedComponent):
    """Applies per-label thresholds (multi-label) or an abstain threshold (exclusive)."""

    state_file = "decision.json"

    def __init__(
        self,
        vocab: Any,
        name: str = "textcat_kit_decision",
        *,
        objective: str = "f1",
        beta: float = 1.0,
        target: float | None = None,
        label_objectives: dict[str, dict[str, Any]] | None = None,
        ensure_one_label: bool = False,
        abstain_precision: float | None = None,
        min_positives: int = 10,
        shrinkage: float | str | None = "auto",
        n_folds: int = 5,
        scorer: Callable[..., dict[str, Any]] | None = None,
    ) -> None:
        for value in [
            objective,
            *(o.get("objective", objective) for o in (label_objectives or {}).values()),
        ]:
            if value not in OBJECTIVES:
                raise ConfigError(
                    Errors.E013.format(
                        what="threshold objective", value=value, options=", ".join(OBJECTIVES)
                    )
                )
        self.vocab = vocab
        self.name = name
        self.objective = objective
        self.beta = beta
        self.target = target
        self.label_objectives = dict(label_objectives or {})
        self.ensure_one_label = ensure_one_label
        self.abstain_precision = abstain_precision
        self.min_positives = min_positives
        self.shrinkage = shrinkage
        self.n_folds = n_folds
        self.scorer = scorer
        # Fitted state
        self._labels: list[str] = []
        self.exclusive = False
        self.thresholds: dict[str, float] = {}
        self.global_threshold: float | None = None
        self.abstain_threshold: float | None = None
        self.fit_info: dict[str, Any] = {}
        self._threshold_array: np.ndarray = np.zeros(0)

    @property
    def is_fitted(self) -> bool:
        return bool(self.labels)

    def _objective_groups(self) -> dict[tuple[str, float, float | None], list[str]]:
        groups: dict[tuple[str, float, float | None], list[str]] = defaultdict(list)
        for label in self.labels:
            spec = self.label_objectives.get(label, {})
            key = (
                spec.get("objective", self.objective),
                float(spec.get("beta", self.beta)),
                spec.get("target", self.target),
            )
            groups[key].append(label)
        return groups

    def fit(
        self, probs: np.ndarray, gold: np.ndarray, labels: Sequence[str], exclusive: bool
    ) -> Decision:
        """Tune thresholds on held-out (calibrated) ``probs`` against ``gold``."""
        self._labels = list(labels)
        self.exclusive = exclusive
        unknown = set(self.label_objectives) - set(self.labels)
        if unknown:
            raise ConfigError(
                Errors.E013.format(
                    what="label in label_objectives",
                    value=sorted(unknown)[0],
                    options=", ".join(self.labels),
                )
            )
        column = {label: j for j, label in enumerate(self.labels)}
        info: dict[str, Any] = {"per_label": {}}
        thresholds: dict[str, float] = {}
        global_thresholds = []
        for (objective, beta, target), group in self._objective_groups().items():
            cols = [column[label] for label in group]
            tuned = tune_thresholds(
                probs[:, cols],
                gold[:, cols],
                group,
                objective=objective,  # type: ignore[arg-type]
                beta=beta,
                target=target,
                min_positives=self.min_positives,
                shrinkage=self.shrinkage,  # type: ignore[arg-type]
                n_folds=self.n_folds,  # type: ignore[arg-type]
            )
            thresholds.update(tuned.thresholds)
            global_thresholds.append(tuned.global_threshold)
            summary = tuned.to_dict()
            info["per_label"].update(summary.get("per_label", {}))
            info.setdefault("groups", []).append(
                {
                    "objective": objective,
                    "beta": beta,
                    "target": target,
                    "labels": group,
                    "global_threshold": tuned.global_threshold,
                    "shrinkage_k": summary.get("shrinkage_k"),
                }
            )
        self.thresholds = thresholds
        self.global_threshold = float(np.mean(global_thresholds))
        if exclusive and self.abstain_precision is not None:
            top = probs.max(axis=1)
            correct = probs.argmax(axis=1) == gold.argmax(axis=1)
            result = abstain_threshold(top, correct, self.abstain_precision)
            self.abstain_threshold = result.threshold
            info["abstain"] = {
                "target_precision": self.abstain_precision,
                "threshold": result.threshold,
                "dev_precision": result.precision,
                "dev_coverage": result.coverage,
                "feasible": result.feasible,
            }
        else:
            self.abstain_threshold = None
        self.fit_info = info
        self._sync()
        return self

    def _sync(self) -> None:
        self._threshold_array = np.array(
            [self.thresholds.get(label, 0.5) for label in self.labels], dtype=np.float64
        )

    def decide(self, probs: np.ndarray) -> np.ndarray:
        """0/1 decisions for an (n_docs, n_labels) array of probabilities."""
        decided: np.ndarray = np.zeros(probs.shape, dtype=bool)
        if probs.shape[0] == 0:
            return decided
        rows = np.arange(probs.shape[0])
        top = probs.argmax(axis=1)
        if self.exclusive:
            keep = np.ones(probs.shape[0], dtype=bool)
            if self.abstain_threshold is not None:
                keep = probs[rows, top] >= self.abstain_threshold
            decided[rows[keep], top[keep]] = True
            return decided
        decided = probs >= self._threshold_array[None, :]
        if self.ensure_one_label:
            empty = ~decided.any(axis=1)
            decided[rows[empty], top[empty]] = True
        return decided

    def _process_scores(self, docs: Sequence[Doc], scores: np.ndarray) -> np.ndarray:
        if not self.is_fitted:
            raise ConfigError(Errors.E011.format(name=self.name, what="thresholds"))
        labels = self._labels
        decided: list[list[str]] = [[] for _ in docs]
        rows, cols = np.nonzero(self.decide(scores))
        for i, j in zip(rows.tolist(), cols.tolist(), strict=True):
            decided[i].append(labels[j])
        for doc, doc_labels in zip(docs, decided, strict=True):
            # What doc._.set(EXTENSION, ...) writes, without building an Underscore per doc
            # (2 µs, a third of this component's time on the bow pipeline).
            doc.user_data[_USER_DATA_KEY] = doc_labels  # type: ignore[index]
        return scores

    def initialize(
        self, get_examples: Callable[[], Iterable[Example]], *, nlp: Language | None = None
    ) -> None:
        """Thresholds are not learned from training data (they would be over-optimistic);
        fit them on held-out data with ``textcat-kit tune``."""

    def score(self, examples: Iterable[Example], **kwargs: Any) -> dict[str, Any]:
        if self.scorer is None:
            return {}
        return self.scorer(examples, labels=self.labels, exclusive=self.exclusive, **kwargs)

    # Serialisation -------------------------------------------------------------------------
    def _state(self) -> dict[str, Any]:
        return {
            "labels": self.labels,
            "exclusive": self.exclusive,
            "thresholds": self.thresholds,
            "global_threshold": self.global_threshold,
            "abstain_threshold": self.abstain_threshold,
            "fit_info": self.fit_info,
        }

    def _set_state(self, state: dict[str, Any]) -> None:
        self._labels = list(state["labels"])
        self.exclusive = bool(state["exclusive"])
        self.thresholds = {k: float(v) for k, v in state["thresholds"].items()}
        self.global_threshold = state.get("global_threshold")
        self.abstain_threshold = state.get("abstain_threshold")
        self.fit_info = state.get("fit_info", {})
        self._sync()


def score_decisions(
    examples: Iterable[Example], *, labels: Sequence[str], exclusive: bool = False, **_: Any
) -> dict[str, Any]:
    """P/R/F of ``doc._.decided_labels`` against the reference ``doc.cats`` (>= 0.5).

    Keys follow spaCy's textcat scorer (``cats_score``, ``cats_macro_f``,
    ``cats_f_per_type`` ...), so ``spacy evaluate`` prints them; because this component
    runs after the classifier its scores replace the classifier's single-threshold ones.
    ``cats_coverage`` is the share of docs that got at least one label.
    """
    examples = list(examples)
    labels = list(labels)
    index = {label: j for j, label in enumerate(labels)}
    decided = np.zeros((len(examples), len(labels)))
    gold = np.zeros((len(examples), len(labels)))
    for i, eg in enumerate(examples):
        for label in eg.predicted._.get(EXTENSION) or []:
            decided[i, index[label]] = 1.0
        cats = eg.reference.cats
        gold[i] = [cats.get(label, 0.0) for label in labels]
    if not examples or not labels:
        return {}
    prf = metrics.prf_per_label(decided, gold)
    return {
        "cats_score": prf.macro_f,
        "cats_score_desc": "macro F (tuned thresholds)",
        "cats_micro_p": prf.micro_p,
        "cats_micro_r": prf.micro_r,
        "cats_micro_f": prf.micro_f,
        "cats_macro_p": prf.macro_p,
        "cats_macro_r": prf.macro_r,
        "cats_macro_f": prf.macro_f,
        "cats_coverage": float((decided.sum(axis=1) > 0).mean()),
        "cats_f_per_type": {
            label: {"p": float(prf.precision[j]), "r": float(prf.recall[j]), "f": float(prf.f1[j])}
            for j, label in enumerate(labels)
        },
    }


@registry.scorers("textcat_kit.decision_scorer.v1")
def make_decision_scorer() -> Callable[..., dict[str, Any]]:
    """Scorer of the decision component (registered; also exposed by entry point)."""
    return score_decisions

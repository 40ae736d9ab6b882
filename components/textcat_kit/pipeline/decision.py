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
The rule itself (:class:`~textcat_kit.pipeline.fitted.DecisionRule`) is what our
classifiers apply in ``set_annotations`` once tuned; this component fits it and applies it
to ``doc.cats`` for classifiers that are not ours. The registered scorer
``textcat_kit.decision_scorer.v1`` scores the decided labels, so ``spacy evaluate`` reports
P/R/F with the tuned thresholds.
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
from ..maths.thresholds import OBJECTIVES, abstain_threshold, tune_thresholds
from .fitted import EXTENSION, DecisionRule, FittedComponent, write_decisions
from .state_schema import check_decision_state

__all__ = ["EXTENSION", "Decision", "make_decision", "score_decisions"]


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
    return Decision(
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
        self._labels: list[str] = []
        self.rule: DecisionRule | None = None  # the fitted state

    @property
    def is_fitted(self) -> bool:
        return self.rule is not None

    # Read-only views of the fitted rule (reports read them).
    @property
    def exclusive(self) -> bool:
        return self.rule.exclusive if self.rule is not None else False

    @property
    def thresholds(self) -> dict[str, float]:
        return self.rule.thresholds if self.rule is not None else {}

    @property
    def global_threshold(self) -> float | None:
        return self.rule.global_threshold if self.rule is not None else None

    @property
    def abstain_threshold(self) -> float | None:
        return self.rule.abstain_threshold if self.rule is not None else None

    @property
    def fit_info(self) -> dict[str, Any]:
        return self.rule.fit_info if self.rule is not None else {}

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
        abstain: float | None = None
        if exclusive and self.abstain_precision is not None:
            top = probs.max(axis=1)
            correct = probs.argmax(axis=1) == gold.argmax(axis=1)
            result = abstain_threshold(top, correct, self.abstain_precision)
            abstain = result.threshold
            info["abstain"] = {
                "target_precision": self.abstain_precision,
                "threshold": result.threshold,
                "dev_precision": result.precision,
                "dev_coverage": result.coverage,
                "feasible": result.feasible,
            }
        self.rule = DecisionRule(
            labels=list(labels),
            exclusive=exclusive,
            thresholds={label: float(value) for label, value in thresholds.items()},
            global_threshold=float(np.mean(global_thresholds)),
            abstain_threshold=None if abstain is None else float(abstain),
            ensure_one_label=self.ensure_one_label,
            fit_info=info,
        )
        return self

    def decide(self, probs: np.ndarray) -> np.ndarray:
        """Boolean decisions for an (n_docs, n_labels) array of probabilities."""
        if self.rule is None:
            raise ConfigError(Errors.E011.format(name=self.name, what="thresholds"))
        return self.rule.decide(probs)

    def _process_scores(self, docs: Sequence[Doc], scores: np.ndarray) -> np.ndarray:
        if self.rule is None:
            raise ConfigError(Errors.E011.format(name=self.name, what="thresholds"))
        write_decisions(docs, self._labels, self.rule, scores)
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
        if self.rule is None:
            return {"labels": [], "exclusive": False, "thresholds": {}}
        state = self.rule.to_dict()
        check_decision_state(state, f"{self.name}/{self.state_file}")  # never save nonsense
        return state

    def _set_state(self, state: dict[str, Any], source: str) -> None:
        # Files written before ensure_one_label was saved take it from the config.
        rule = DecisionRule.from_dict(state, source=source, ensure_one_label=self.ensure_one_label)
        self._labels = list(rule.labels)
        self.rule = rule if rule.labels else None


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
    from ..maths import metrics  # scikit-learn: imported when scoring, not when loading

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

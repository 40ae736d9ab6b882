"""Store what ``textcat-kit tune`` fitted in a pipeline.

Our classifiers own their calibration and decision rule
(:class:`~textcat_kit.pipeline.fitted.ClassifierState`), saved in their own directory as
``calibrator.json`` / ``decision.json``. A classifier that is not ours (spaCy's ``textcat``,
a transformer pipeline's classifier) gets the standalone ``textcat_kit_calibrator`` and
``textcat_kit_decision`` components after it, holding the same state.
"""

from __future__ import annotations

from typing import Any

from spacy.language import Language

from .calibrator import Calibration
from .decision import Decision
from .fitted import OwnsFittedState

CALIBRATOR = "textcat_kit_calibrator"
DECISION = "textcat_kit_decision"


def clear_fitted_state(nlp: Language, classifier_name: str) -> None:
    """Remove earlier tuning: the standalone components and the classifier's own state, so
    that the classifier's raw scores can be read and fitted again."""
    for name in (CALIBRATOR, DECISION):
        if name in nlp.pipe_names:
            nlp.remove_pipe(name)
    classifier = nlp.get_pipe(classifier_name)
    if isinstance(classifier, OwnsFittedState):
        classifier.set_fitted_state(None, None)


def attach_fitted_state(
    nlp: Language,
    classifier_name: str,
    calibration: Calibration,
    decision: Decision,
    decision_config: dict[str, Any] | None = None,
) -> str:
    """Give the classifier ``classifier_name`` the fitted ``calibration`` and ``decision``;
    returns where they went: ``"classifier"`` or ``"components"``."""
    classifier = nlp.get_pipe(classifier_name)
    if isinstance(classifier, OwnsFittedState):
        classifier.set_fitted_state(calibration.calibrator, decision.rule)
        return "classifier"
    calibrator: Calibration = nlp.add_pipe(
        CALIBRATOR,
        after=classifier_name,
        config={"method": calibration.method, "min_positives": calibration.min_positives},
    )  # type: ignore[assignment]
    calibrator.calibrator, calibrator._labels = calibration.calibrator, list(calibration.labels)
    component: Decision = nlp.add_pipe(DECISION, after=CALIBRATOR, config=decision_config or {})  # type: ignore[assignment]
    component.rule, component._labels = decision.rule, list(decision.labels)
    return "components"

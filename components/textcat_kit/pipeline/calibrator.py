"""The calibrator: rewrites ``doc.cats`` into probabilities that mean what they say.

spaCy's text classifiers are trained with a squared-error-style loss and nothing
calibrates them: a 0.9 in ``doc.cats`` is not right nine times in ten. This component
sits after ``textcat`` / ``textcat_multilabel`` (or a transformer-based classifier) and
maps the scores through a calibrator fitted on held-out data by ``textcat-kit tune``:

* ``temperature`` (exclusive classes): one temperature for all labels; never changes the
  argmax, so accuracy is untouched.
* ``platt`` / ``isotonic`` (multi-label): one binary calibrator per label.
* ``auto``: temperature for an exclusive classifier, Platt for a multi-label one.

Our own classifiers apply their calibration themselves (:mod:`textcat_kit.pipeline.fitted`);
this component is for classifiers that are not ours. The maths lives in
:mod:`textcat_kit.maths.calibration`; this module only moves ``doc.cats`` in and out of
arrays, one batch at a time. Fitted state is JSON (``calibrator.json``), checked on load.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np
from spacy.language import Language
from spacy.tokens import Doc

from ..errors import ConfigError, Errors
from ..maths.calibration import (
    CALIBRATION_METHODS,
    Calibrator,
    PerLabelCalibration,
    TemperatureScaling,
)
from .fitted import FittedComponent, calibrator_state, load_calibrator
from .state_schema import check_calibrator_state


@Language.factory(
    "textcat_kit_calibrator",
    default_config={"method": "auto", "min_positives": 10},
    assigns=["doc.cats"],
    requires=["doc.cats"],
)
def make_calibrator(nlp: Language, name: str, method: str, min_positives: int) -> Calibration:
    """Create a calibrator; it is fitted by ``textcat-kit tune`` (or :meth:`Calibration.fit`)."""
    return Calibration(nlp.vocab, name=name, method=method, min_positives=min_positives)


class Calibration(FittedComponent):
    """Maps raw classifier scores in ``doc.cats`` to calibrated probabilities.

    Settings (from config): ``method`` and ``min_positives`` (per-label methods leave a
    label with fewer positives in the tuning data uncalibrated). Fitted state:
    ``labels`` and the calibrator's parameters, saved as ``calibrator.json``. An unfitted
    calibrator passes scores through unchanged and warns once, so a pipeline that lists
    it in its training config still trains and evaluates.
    """

    state_file = "calibrator.json"

    def __init__(
        self,
        vocab: Any,
        name: str = "textcat_kit_calibrator",
        *,
        method: str = "auto",
        min_positives: int = 10,
    ) -> None:
        if method not in ("auto", *CALIBRATION_METHODS):
            raise ConfigError(
                Errors.E013.format(
                    what="calibration method",
                    value=method,
                    options=", ".join(("auto", *CALIBRATION_METHODS)),
                )
            )
        self.vocab = vocab
        self.name = name
        self.method = method
        self.min_positives = min_positives
        self._labels: list[str] = []
        self.calibrator: Calibrator | None = None
        self._warned_unfitted = False

    @property
    def is_fitted(self) -> bool:
        return self.calibrator is not None

    def resolved_method(self, exclusive: bool) -> str:
        if self.method != "auto":
            return self.method
        return "temperature" if exclusive else "platt"

    def fit(
        self, probs: np.ndarray, gold: np.ndarray, labels: list[str], exclusive: bool
    ) -> Calibration:
        """Fit on held-out raw scores ``probs`` and ``gold`` (both (n_docs, n_labels))."""
        method = self.resolved_method(exclusive)
        calibrator: Calibrator
        if method == "temperature":
            if not exclusive:
                raise ConfigError(
                    Errors.E013.format(
                        what="calibration method for a multi-label classifier",
                        value=method,
                        options="platt, isotonic, auto",
                    )
                )
            calibrator = TemperatureScaling().fit(probs, gold)
        else:
            calibrator = PerLabelCalibration(method, min_positives=self.min_positives).fit(  # type: ignore[arg-type]
                probs, gold, labels
            )
        self.calibrator = calibrator
        self._labels = list(labels)
        return self

    def transform(self, probs: np.ndarray) -> np.ndarray:
        if self.calibrator is None:
            return probs
        return self.calibrator.transform(probs)

    def _process_scores(self, docs: Sequence[Doc], scores: np.ndarray) -> np.ndarray:
        if self.calibrator is None and not self._warned_unfitted:
            warnings.warn(
                Errors.E011.format(name=self.name, what="calibrator")
                + " Scores pass through unchanged.",
                stacklevel=3,
            )
            self._warned_unfitted = True
        return self.transform(scores)

    def initialize(
        self, get_examples: Callable[[], Iterable[Any]], *, nlp: Language | None = None
    ) -> None:
        """Nothing to learn from training data: calibrating on the examples the classifier
        was trained on would learn its over-confidence. Fit on held-out data with
        ``textcat-kit tune``."""

    # Serialisation -------------------------------------------------------------------------
    def _state(self) -> dict[str, Any]:
        state = calibrator_state(self.labels, self.calibrator)
        check_calibrator_state(state, f"{self.name}/{self.state_file}")  # never save nonsense
        return state

    def _set_state(self, state: dict[str, Any], source: str) -> None:
        self.calibrator = load_calibrator(state, source)
        self._labels = list(state["labels"])

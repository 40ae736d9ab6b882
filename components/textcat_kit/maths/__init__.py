"""Pure NumPy maths behind the components: no spaCy is imported anywhere in here.

* :mod:`.metrics` - calibration error (ECE, reliability curves), Brier score, log loss,
  precision/recall/F1 per label, ROC AUC, accuracy and ``decide`` (scores to 0/1).
* :mod:`.calibration` - temperature scaling, Platt scaling and isotonic regression, as
  pure functions and as JSON-serialisable calibrator objects.
* :mod:`.thresholds` - exact threshold search, the global threshold, per-label threshold
  tuning that generalises, and abstention thresholds.
* :mod:`.validation` - shared input checks and their coded error messages.

Submodules are imported explicitly (``from textcat_kit.maths.metrics import ece``) so that
importing one does not pull in the dependencies of the others.
"""

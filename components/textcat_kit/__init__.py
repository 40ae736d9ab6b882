"""textcat-kit: spaCy text classification components you can ship.

Calibrated probabilities, per-label decision thresholds, Label Studio import and
export, and ONNX Runtime export for spaCy ``textcat`` / ``textcat_multilabel``
pipelines. Components, scorers and readers are registered through entry points, so
packaged pipelines load with a plain ``spacy.load``.
"""

__version__ = "0.1.0"

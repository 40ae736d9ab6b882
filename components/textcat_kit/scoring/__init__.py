"""Batch scoring: texts in files → decided labels, abstain flag and calibrated probabilities.

``textcat-kit score MODEL INPUT OUTPUT`` and :func:`score_files` read CSV / TSV / JSONL /
Parquet in bounded memory, score on local cores (forked workers) or on Ray Data, write
Parquet or JSON lines in committed parts (resumable with ``--resume``) and account for
every record: rows in = scored + rejected. See docs/batch-scoring.md.
"""

from .inputs import Fields, InputFile, discover_inputs
from .job import ScoreResult, ScoreSettings, score_files
from .results import OutputSpec
from .store import Summary

__all__ = [
    "Fields",
    "InputFile",
    "OutputSpec",
    "ScoreResult",
    "ScoreSettings",
    "Summary",
    "discover_inputs",
    "score_files",
]

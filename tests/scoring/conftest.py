"""Fixtures of the scoring tests: one tuned Banking77 pipeline (abstains on some texts)."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import pytest

from kit_testing import write_docbin
from textcat_kit.tuning import tune_pipeline


@pytest.fixture(scope="session")
def tuned_model(banking_small: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``banking_small``'s pipeline with a calibrator and an abstain threshold (precision 0.9)."""
    tmp = tmp_path_factory.mktemp("score-model")
    banking_small["nlp"].to_disk(tmp / "model")
    dev = write_docbin(banking_small["dev"], banking_small["labels"], tmp / "dev.spacy")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tune_pipeline(tmp / "model", dev, tmp / "tuned", decision_config={"abstain_precision": 0.9})
    return tmp / "tuned"

"""Fixtures for the Label Studio tests (helpers and the server recipe: ``ls_testing.py``).

``labelstudio_server`` is a real Label Studio started from its own virtualenv for the
session; it skips (the only allowed skip) when that virtualenv is absent.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from ls_testing import LABELSTUDIO_DATA, REAL_EXPORTS, LabelStudioServer, running_labelstudio


@pytest.fixture(scope="session")
def real_exports() -> Path:
    if not REAL_EXPORTS.is_dir():
        pytest.fail(f"shared Label Studio exports not found at {REAL_EXPORTS}")
    return REAL_EXPORTS


@pytest.fixture(scope="session")
def labelstudio_data() -> Path:
    if not LABELSTUDIO_DATA.is_dir():
        pytest.fail(f"shared Label Studio data not found at {LABELSTUDIO_DATA}")
    return LABELSTUDIO_DATA


@pytest.fixture(scope="session")
def labelstudio_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabelStudioServer]:
    """One real Label Studio server for the session (skips if its venv is absent)."""
    with running_labelstudio(tmp_path_factory.mktemp("labelstudio")) as server:
        yield server

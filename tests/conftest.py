"""Shared fixtures: small corpora built from the real shared data, trained tiny pipelines,
and a fresh virtualenv for install tests."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from kit_testing import banking77_subset, goemotions_subset, make_fresh_venv, train_bow_pipeline

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("TEXTCAT_KIT_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))


#: Fixtures that read the shared data mirror; tests using them (directly or through other
#: fixtures) are marked ``needs_data`` and skipped, with the reason, when it is absent.
DATA_FIXTURES = frozenset({"shared_data", "real_exports", "labelstudio_data"})


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "needs_data: reads the shared data mirror (../shared/data); skipped without it"
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    skip = pytest.mark.skip(
        reason=f"needs the shared data mirror, not found at {SHARED_DATA} (set "
        "TEXTCAT_KIT_SHARED_DATA to the folder holding banking77/ and goemotions/)"
    )
    for item in items:
        if DATA_FIXTURES & set(getattr(item, "fixturenames", ())) or _module_reads_data(item):
            item.add_marker(pytest.mark.needs_data)
            if not SHARED_DATA.is_dir():
                item.add_marker(skip)


def _module_reads_data(item: pytest.Item) -> bool:
    """Whether the test's module holds a path inside the shared data mirror at module level
    (e.g. ``from ls_testing import REAL_EXPORTS``)."""
    module = getattr(item, "module", None)
    if module is None:
        return False
    root = SHARED_DATA.resolve()
    return any(
        isinstance(value, Path) and (value.resolve() == root or root in value.resolve().parents)
        for value in vars(module).values()
    )


@pytest.fixture(scope="session")
def shared_data() -> Path:
    return SHARED_DATA


@pytest.fixture(scope="session")
def fresh_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Python of a clean virtualenv (no torch, nothing but pip) shared by install tests."""
    return make_fresh_venv(tmp_path_factory.mktemp("fresh-venv") / "venv")


@pytest.fixture(scope="session")
def banking_small(shared_data: Path) -> dict[str, Any]:
    """8 Banking77 intents: train/dev/test records and a bow pipeline trained on train."""
    train = banking77_subset(shared_data, 8, 60)
    dev = banking77_subset(shared_data, 8, 25, offset=60)
    test = banking77_subset(shared_data, 8, 15, offset=85)
    labels = sorted({r[1][0] for r in train})
    nlp = train_bow_pipeline(train, labels, exclusive=True)
    return {"nlp": nlp, "labels": labels, "train": train, "dev": dev, "test": test}


@pytest.fixture(scope="session")
def goemotions_small(shared_data: Path) -> dict[str, Any]:
    train, labels = goemotions_subset(shared_data, "train", 3000)
    dev, _ = goemotions_subset(shared_data, "dev", 1500)
    test, _ = goemotions_subset(shared_data, "test", 800)
    nlp = train_bow_pipeline(train, labels, exclusive=False, epochs=5)
    return {"nlp": nlp, "labels": labels, "train": train, "dev": dev, "test": test}

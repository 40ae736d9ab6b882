"""Shared fixtures: small corpora built from the real shared data, trained tiny pipelines,
and a fresh virtualenv for install tests."""

from __future__ import annotations

import os
import subprocess
import sys
import venv
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("TEXTCAT_KIT_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))


def pytest_configure(config: pytest.Config) -> None:
    if not SHARED_DATA.is_dir():
        raise pytest.UsageError(
            f"Shared data not found at {SHARED_DATA}; set TEXTCAT_KIT_SHARED_DATA to the folder "
            "holding banking77/ and goemotions/."
        )


@pytest.fixture(scope="session")
def shared_data() -> Path:
    return SHARED_DATA


def make_fresh_venv(path: Path) -> Path:
    """A new virtualenv without system site-packages; returns its python executable."""
    venv.EnvBuilder(with_pip=True, clear=True).create(path)
    python = path / "bin" / "python"
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
         "--upgrade", "pip"],
        check=True,
    )
    return python


@pytest.fixture(scope="session")
def fresh_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Python of a clean virtualenv (no torch, nothing but pip) shared by install tests."""
    return make_fresh_venv(tmp_path_factory.mktemp("fresh-venv") / "venv")


def run_in(python: Path, code: str, **kwargs: object) -> subprocess.CompletedProcess[str]:
    """Run ``code`` with ``python`` and return the completed process (text mode)."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    return subprocess.run(
        [str(python), "-c", code], capture_output=True, text=True, env=env, check=False,
        **kwargs,  # type: ignore[arg-type]
    )


@pytest.fixture
def cli_python() -> str:
    return sys.executable

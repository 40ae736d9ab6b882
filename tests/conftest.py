"""Shared fixtures: small corpora built from the real shared data, trained tiny pipelines,
and a fresh virtualenv for install tests."""

from __future__ import annotations

import csv
import os
import random
import subprocess
import sys
import venv
from pathlib import Path
from typing import Any

import pytest
import spacy
from spacy.training import Example
from thinc.api import fix_random_seed

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
        [
            str(python),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--upgrade",
            "pip",
        ],
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
        [str(python), "-c", code],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        **kwargs,  # type: ignore[arg-type]
    )


@pytest.fixture
def cli_python() -> str:
    return sys.executable


# --- small trained pipelines ---------------------------------------------------------------


def train_bow_pipeline(
    records: list[tuple[str, list[str]]],
    labels: list[str],
    exclusive: bool,
    epochs: int = 8,
    seed: int = 0,
) -> spacy.Language:
    """A bag-of-words textcat / textcat_multilabel fitted in-process (seconds)."""
    fix_random_seed(seed)
    nlp = spacy.blank("en")
    factory = "textcat" if exclusive else "textcat_multilabel"
    nlp.add_pipe(
        factory,
        config={
            "model": {
                "@architectures": "spacy.TextCatBOW.v3",
                "exclusive_classes": exclusive,
                "ngram_size": 1,
                "no_output_layer": False,
                "length": 2**14,
            }
        },
    )
    examples = [
        Example.from_dict(nlp.make_doc(text), {"cats": {lab: float(lab in pos) for lab in labels}})
        for text, pos in records
    ]
    optimizer = nlp.initialize(lambda: examples)
    optimizer.learn_rate = 0.01
    rng = random.Random(seed)
    for _ in range(epochs):
        rng.shuffle(examples)
        for batch in spacy.util.minibatch(examples, size=64):
            nlp.update(batch, sgd=optimizer)
    return nlp


def banking77_subset(
    shared: Path, n_labels: int, per_label: int, offset: int = 0
) -> list[tuple[str, list[str]]]:
    rows: dict[str, list[str]] = {}
    with open(shared / "banking77" / "train.csv", newline="", encoding="utf8") as f:
        for row in csv.DictReader(f):
            rows.setdefault(row["category"], []).append(row["text"].strip())
    chosen = sorted(rows)[:n_labels]
    return [
        (text, [label]) for label in chosen for text in rows[label][offset : offset + per_label]
    ]


def goemotions_subset(
    shared: Path, split: str, limit: int
) -> tuple[list[tuple[str, list[str]]], list[str]]:
    names = (shared / "goemotions" / "emotions.txt").read_text().split()
    out = []
    with open(shared / "goemotions" / f"{split}.tsv", newline="", encoding="utf8") as f:
        for row in csv.reader(f, delimiter="\t"):
            out.append((row[0], [names[int(i)] for i in row[1].split(",")]))
            if len(out) >= limit:
                break
    return out, names


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


def write_docbin(records: list[tuple[str, list[str]]], labels: list[str], path: Path) -> Path:
    from textcat_kit.data.records import Record, write_records

    write_records([Record(text, pos) for text, pos in records], path, labels)
    return path

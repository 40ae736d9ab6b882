"""Helpers shared by the test modules (importable, unlike conftest.py)."""

from __future__ import annotations

import csv
import os
import random
import subprocess
import venv
from pathlib import Path

import spacy
from spacy.training import Example
from thinc.api import fix_random_seed


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


def run_in(python: Path, code: str, **kwargs: object) -> subprocess.CompletedProcess[str]:
    """Run ``code`` with ``python`` and return the completed process (text mode)."""
    return run_clean([str(python), "-c", code], **kwargs)


def run_clean(args: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    """Run ``args`` without this environment's PYTHONPATH / VIRTUAL_ENV (text mode)."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    return subprocess.run(
        args,
        capture_output=True,
        text=True,
        env=env,
        check=False,
        **kwargs,  # type: ignore[arg-type]
    )


def train_bow_pipeline(
    records: list[tuple[str, list[str]]],
    labels: list[str],
    exclusive: bool,
    epochs: int = 8,
    seed: int = 0,
    kit_classifier: bool = False,
) -> spacy.Language:
    """A bag-of-words textcat / textcat_multilabel fitted in-process (seconds); with
    ``kit_classifier`` our ``textcat_kit_textcat[_multilabel]`` over uni+bigrams."""
    fix_random_seed(seed)
    nlp = spacy.blank("en")
    factory = "textcat" if exclusive else "textcat_multilabel"
    model: dict[str, object] = {
        "@architectures": "spacy.TextCatBOW.v3",
        "exclusive_classes": exclusive,
        "ngram_size": 1,
        "no_output_layer": False,
        "length": 2**14,
    }
    if kit_classifier:
        factory = f"textcat_kit_{factory}"
        model.update({"@architectures": "textcat_kit.TextCatBOW.v1", "ngram_size": 2})
    nlp.add_pipe(factory, name="textcat", config={"model": model})
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


def write_docbin(records: list[tuple[str, list[str]]], labels: list[str], path: Path) -> Path:
    from textcat_kit.data.records import Record, write_records

    write_records([Record(text, pos) for text, pos in records], path, labels)
    return path

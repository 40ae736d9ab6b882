"""Distillation: a bow student trained on a tuned teacher's calibrated probabilities."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import spacy
from embed_testing import LABELS, make_records

from kit_testing import train_bow_pipeline, write_docbin
from textcat_kit.distil import DistilSettings, distil, read_unlabelled
from textcat_kit.errors import ConfigError, DataError, OutputError
from textcat_kit.tuning import tune_pipeline

REPO_ROOT = Path(__file__).resolve().parents[2]
SETTINGS = DistilSettings(max_epochs=4, patience=2)


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("distil")
    train = make_records(20, seed=21)
    teacher = train_bow_pipeline(train, LABELS, exclusive=True, kit_classifier=True)
    teacher.to_disk(root / "teacher")
    dev = write_docbin(make_records(10, seed=22), LABELS, root / "dev.spacy")
    tune_pipeline(root / "teacher", dev, root / "teacher-tuned")
    unlabelled = root / "unlabelled.jsonl"
    extra = [text for text, _ in make_records(10, seed=23)]
    unlabelled.write_text("".join(json.dumps({"text": t}) + "\n" for t in extra) + "\n")
    return {
        "root": root,
        "teacher": root / "teacher-tuned",
        "train": write_docbin(train, LABELS, root / "train.spacy"),
        "dev": dev,
        "unlabelled": unlabelled,
        "n_extra": len(extra),
    }


@pytest.mark.slow
def test_student_learns_the_teachers_decisions(setup: dict[str, Any]) -> None:
    out = setup["root"] / "student"
    record = distil(
        setup["teacher"],
        REPO_ROOT / "configs" / "textcat_bow.cfg",
        setup["train"],
        setup["dev"],
        out,
        unlabelled_path=setup["unlabelled"],
        settings=SETTINGS,
    )
    assert record["n_labelled"] == 60 and record["n_unlabelled"] == setup["n_extra"]
    assert 1 <= record["best_epoch"] <= 4 and len(record["history"]) >= record["best_epoch"]
    assert json.loads((out / "distil.json").read_text())["best_epoch"] == record["best_epoch"]
    student = spacy.load(out / "model-best")
    teacher = spacy.load(setup["teacher"])
    texts = [text for text, _ in make_records(10, seed=24)]
    agree = np.mean(
        [
            max(s.cats, key=s.cats.get) == max(t.cats, key=t.cats.get)
            for s, t in zip(student.pipe(texts), teacher.pipe(texts), strict=True)
        ]
    )
    assert agree >= 0.9
    assert record["best_dev_macro_f"] >= 0.9
    # the output is refused a second time without overwrite, replaced with it
    with pytest.raises(OutputError):
        distil(
            setup["teacher"],
            REPO_ROOT / "configs" / "textcat_bow.cfg",
            setup["train"],
            setup["dev"],
            out,
            settings=SETTINGS,
        )


def test_user_directory_is_never_overwritten(setup: dict[str, Any], tmp_path: Path) -> None:
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep")
    with pytest.raises(OutputError):
        distil(
            setup["teacher"],
            REPO_ROOT / "configs" / "textcat_bow.cfg",
            setup["train"],
            setup["dev"],
            mine,
            settings=SETTINGS,
            overwrite=True,
        )
    assert (mine / "notes.txt").read_text() == "keep"


def test_task_mismatch_is_a_coded_error(setup: dict[str, Any], tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"\[E462\]"):
        distil(
            setup["teacher"],
            REPO_ROOT / "configs" / "textcat_multilabel_bow.cfg",
            setup["train"],
            setup["dev"],
            tmp_path / "out",
            settings=SETTINGS,
        )


def test_unlabelled_reader(tmp_path: Path) -> None:
    plain = tmp_path / "texts.txt"
    plain.write_text("one\n\n two \n")
    assert read_unlabelled(plain) == ["one", "two"]
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "ok"}\n{"txt": "no"}\n')
    with pytest.raises(DataError, match=r"\[E461\].*bad.jsonl:2"):
        read_unlabelled(bad)


def test_settings_are_validated() -> None:
    with pytest.raises(ConfigError, match=r"\[E463\].*hard_weight"):
        DistilSettings(hard_weight=1.5).validate()

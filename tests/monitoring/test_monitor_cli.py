"""``textcat-kit monitor`` and ``monitor-reference`` end to end on a small tuned pipeline."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from typer.testing import CliRunner

from serving_testing import LABELS, build_tuned_pipeline, synthetic_records
from textcat_kit.cli import app

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tuned_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tuned_pipeline(tmp_path_factory.getbasetemp() / "serve-model")


def _jsonl(path: Path, records: list[tuple[str, list[str]]]) -> Path:
    with open(path, "w", encoding="utf8") as f:
        for text, labels in records:
            f.write(json.dumps({"text": text, "label": labels[0]}) + "\n")
    return path


def _said(result: object) -> str:
    """What a CLI run said: its output and the coded error it stopped with."""
    return f"{getattr(result, 'output', '')} {getattr(result, 'exception', '')}"


def test_reference_profile_describes_the_dev_data(tuned_model: Path) -> None:
    profile = json.loads((tuned_model / "monitor_reference.json").read_text())
    assert profile["labels"] == LABELS
    assert sum(profile["category_counts"]) == profile["n_docs"]
    assert abs(profile["expected_accuracy"] - profile["observed_accuracy"]) < 0.1


def test_monitor_in_distribution_and_shifted(tuned_model: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    same = _jsonl(tmp_path / "same.jsonl", synthetic_records(600, 5))
    result = runner.invoke(
        app,
        [
            "monitor",
            str(tuned_model),
            str(same),
            "--output-dir",
            str(tmp_path / "same"),
            "--label-key",
            "label",
            "--fail-on-alert",
        ],
    )
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "same" / "monitor.json").read_text())
    assert not report["alert"]
    assert (
        abs(report["figures"]["expected_accuracy"]["value"] - report["observed"]["accuracy"]) < 0.05
    )
    markdown = (tmp_path / "same" / "monitor.md").read_text()
    assert "No alert" in markdown and "confidence.png" in markdown
    assert report["prior_shift"]["status"] == "adjusted"
    assert (tmp_path / "same" / "labels.png").is_file()

    # Only 'billing' texts, a third of them scrambled into unseen words: labels and
    # confidence move, expected accuracy drops.
    rng = random.Random(0)
    shifted = [
        ("".join(rng.sample(text, len(text))) if i % 3 == 0 else text, labels)
        for i, (text, labels) in enumerate(synthetic_records(600, 6, labels=["billing"]))
    ]
    moved = _jsonl(tmp_path / "moved.jsonl", shifted)
    result = runner.invoke(
        app,
        [
            "monitor",
            str(tuned_model),
            str(moved),
            "--output-dir",
            str(tmp_path / "moved"),
            "--fail-on-alert",
            "--no-plots",
        ],
    )
    assert result.exit_code == 3, result.output
    report = json.loads((tmp_path / "moved" / "monitor.json").read_text())
    assert {"label_chi2_pvalue", "label_psi"} <= set(report["alerts"])
    # the window's priors moved to 'billing': the expected scores were re-weighted
    correction = report["prior_shift"]
    assert correction["status"] == "adjusted" and correction["shrinkage"] > 0.5
    assert correction["largest_changes"][0]["label"] == "billing"
    assert correction["largest_changes"][0]["estimated"] > 0.5
    assert "label-prior correction" in result.output
    assert "## Label-prior correction" in (tmp_path / "moved" / "monitor.md").read_text()
    # an earlier report is never replaced unless asked
    again = runner.invoke(
        app, ["monitor", str(tuned_model), str(moved), "--output-dir", str(tmp_path / "moved")]
    )
    assert again.exit_code != 0 and "E023" in _said(again)


def test_monitor_errors_are_coded(tuned_model: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"body": "no text key"}\n')
    result = runner.invoke(
        app, ["monitor", str(tuned_model), str(bad), "--output-dir", str(tmp_path / "o")]
    )
    assert "E314" in _said(result)
    few = _jsonl(tmp_path / "few.jsonl", synthetic_records(5, 1))
    result = runner.invoke(
        app, ["monitor", str(tuned_model), str(few), "--output-dir", str(tmp_path / "o")]
    )
    assert "E313" in _said(result)
    result = runner.invoke(
        app, ["monitor-reference", str(tuned_model), str(tuned_model.parent / "dev.spacy")]
    )
    assert "E023" in _said(result)  # the profile tune wrote is not overwritten

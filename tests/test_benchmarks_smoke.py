"""Smoke tests of the benchmark entry point and of the pipeline benchmarks: every code path
on a small synthetic corpus (no shared data). They assert the shape and consistency of
the results, never a timing."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import pytest

from kit_testing import train_bow_pipeline, write_docbin
from test_inference_path import LABELS, synthetic

REPO_ROOT = Path(__file__).resolve().parents[1]


def run_benchmarks(*args: str, results: Path) -> subprocess.CompletedProcess[str]:
    env = {**__import__("os").environ, "TEXTCAT_KIT_BENCHMARK_RESULTS": str(results)}
    return subprocess.run(
        [sys.executable, "-m", "benchmarks", *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )


def test_list_shows_every_benchmark_with_its_summary(tmp_path: Path) -> None:
    listed = run_benchmarks("--list", results=tmp_path)
    assert listed.returncode == 0, listed.stderr
    names = {line.split()[0] for line in listed.stdout.splitlines()}
    modules = {
        p.stem for p in (REPO_ROOT / "benchmarks").glob("*.py") if not p.stem.startswith("_")
    }
    assert names == modules
    assert all(len(line.split(maxsplit=1)) == 2 for line in listed.stdout.splitlines())


def test_unknown_benchmark_is_a_coded_error(tmp_path: Path) -> None:
    result = run_benchmarks("no_such_benchmark", results=tmp_path)
    assert result.returncode == 1
    assert "[E252]" in result.stderr and "speed" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("bench-corpus")
    for split, (n, seed) in {"train": (400, 0), "dev": (150, 1), "test": (150, 2)}.items():
        write_docbin(synthetic(n, seed, False), LABELS, root / f"{split}.spacy")
    return root


def test_speed_benchmark_writes_consistent_figures(corpus: Path, tmp_path: Path) -> None:
    from textcat_kit.tuning import tune_pipeline

    nlp = train_bow_pipeline(synthetic(400, 0, False), LABELS, True, epochs=2, kit_classifier=True)
    nlp.to_disk(tmp_path / "model")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # small dev set
        tune_pipeline(tmp_path / "model", corpus / "dev.spacy", tmp_path / "tuned")
    args = [str(tmp_path / "tuned"), str(corpus / "test.spacy"), "--name", "smoke"]
    result = run_benchmarks("speed", *args, "--rounds", "1", "--processes", "2", results=tmp_path)
    assert result.returncode == 0, result.stderr
    data: dict[str, Any] = json.loads((tmp_path / "speed_smoke.json").read_text())
    assert data["command"].startswith("python -m benchmarks speed")
    assert data["n_docs"] == 150 and data["pipe_names"] == ["textcat"]
    assert set(data["docs_per_second"]) == {"tokenizer", "raw", "full", "pipe_scores"}
    tokens, full = data["docs_per_second"]["tokenizer"], data["docs_per_second"]["full"]
    assert data["full_vs_tokenizer"] == pytest.approx(full / tokens, rel=0.01)
    assert data["load_seconds"]["load"] > 0 and data["load_seconds"]["blank"] > 0


@pytest.mark.slow
def test_compare_benchmark_scores_both_systems(corpus: Path, tmp_path: Path) -> None:
    args = [str(corpus), "--name", "smoke", "--work-dir", str(tmp_path / "work")]
    result = run_benchmarks("compare", *args, "--max-epochs", "2", results=tmp_path)
    assert result.returncode == 0, result.stderr
    data = json.loads((tmp_path / "compare_smoke.json").read_text())
    assert data["task"] == "exclusive" and data["labels"] == len(LABELS)
    for system in ("bow", "tfidf_lr"):
        row = data["systems"][system]
        assert 0.0 <= row["macro_f"] <= 1.0 and 0.0 <= row["top_label_ece"] <= 1.0
    assert data["systems"]["tfidf_lr"]["accuracy"] >= 0.5  # an easy synthetic task
    assert (
        tmp_path / "work" / "smoke" / "bow" / "model-tuned" / "textcat" / "decision.json"
    ).exists()

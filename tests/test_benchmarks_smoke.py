"""Smoke test of the benchmark scripts: every code path on a few hundred real texts.

Runs ``benchmarks/compare.py``'s pipeline in-process (train, predict, speed; scoring;
tables; RESULTS.md) for an exclusive and a multi-label corpus cut from the shared data,
and ``benchmarks/speed_pipeline.py`` / ``speed_components.py`` on the tuned pipelines.
Asserts the shape of the tables and the consistency of the figures, never a timing.

The tests that use the trained systems are marked ``slow`` (they train two spaCy
pipelines, two baselines of each kind and fork worker processes: ~45 s of wall clock on
an idle 2-core machine); the scoring maths at the end runs in milliseconds.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from kit_testing import banking77_subset, goemotions_subset, write_docbin

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

import compare  # noqa: E402
import compare_metrics  # noqa: E402
import compare_report  # noqa: E402
import compare_systems  # noqa: E402
import speed_components  # noqa: E402
import speed_pipeline  # noqa: E402

#: Short training: a few hundred docs are one batch per epoch at the configs' batch size.
SHORT_TRAINING = {"training.max_epochs": 3, "training.eval_frequency": 2}
SYSTEMS = ["bow", "tfidf_lr", "fasttext"]
FASTTEXT_MISSING = compare_systems.FastText().available()


def _write_corpus(
    directory: Path,
    splits: dict[str, list[tuple[str, list[str]]]],
    labels: list[str],
) -> Path:
    for name, records in splits.items():
        write_docbin(records, labels, directory / f"{name}.spacy")
    return directory


@pytest.fixture(scope="module")
def corpora(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("bench-corpora")
    banking = {
        "train": banking77_subset(shared_data, 6, 40),
        "dev": banking77_subset(shared_data, 6, 15, offset=40),
        "test": banking77_subset(shared_data, 6, 15, offset=55),
    }
    banking_labels = sorted({labels[0] for _, labels in banking["train"]})
    train, emotions = goemotions_subset(shared_data, "train", 400)
    dev, _ = goemotions_subset(shared_data, "dev", 200)
    test, _ = goemotions_subset(shared_data, "test", 200)
    return {
        "banking": _write_corpus(root / "banking", banking, banking_labels),
        "emotions": _write_corpus(
            root / "emotions", {"train": train, "dev": dev, "test": test}, emotions
        ),
    }


@pytest.fixture(scope="module")
def results(corpora: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("bench-run")
    out: dict[str, Any] = {"workdir": root / "work", "results_dir": root / "results"}
    with pytest.MonkeyPatch.context() as patch:
        # One candidate each: the selection loop still runs, at a third of the cost.
        patch.setattr(compare_systems, "TFIDF_C_GRID", (16.0,))
        patch.setattr(compare_systems, "FASTTEXT_LR_GRID", (0.5,))
        for name, directory in corpora.items():
            out[name] = compare.compare_dataset(
                name,
                directory,
                SYSTEMS,
                workdir=out["workdir"],
                results_dir=out["results_dir"],
                n_speed_docs=300,
                repeats=1,
                isolate=False,
                overrides=SHORT_TRAINING,
            )
    return out


EXPECTED_RULES = {
    "banking": {
        ("raw", "argmax"),
        ("raw", "abstain (dev precision 0.95)"),
    },
    "emotions": {
        ("raw", "0.5"),
        ("raw", "global (dev)"),
        ("raw", "per-label (dev)"),
    },
}
OURS_AFTER_TUNING = {
    "banking": {("calibrated", "argmax"), ("calibrated", "decision component (abstain)")},
    "emotions": {("calibrated", "0.5"), ("calibrated", "decision component (per-label)")},
}


@pytest.mark.slow
@pytest.mark.parametrize("dataset", ["banking", "emotions"])
def test_table_has_every_system_and_rule(results: dict[str, Any], dataset: str) -> None:
    result = results[dataset]
    assert result["task"] == ("exclusive" if dataset == "banking" else "multilabel")
    assert set(result["systems"]) == set(SYSTEMS)
    for name, entry in result["systems"].items():
        if name == "fasttext" and FASTTEXT_MISSING:
            assert entry["skipped"] == FASTTEXT_MISSING
            continue
        rows = entry["rows"]
        expected = EXPECTED_RULES[dataset] | (
            OURS_AFTER_TUNING[dataset] if name == "bow" else set()
        )
        assert {(row["scores"], row["rule"]) for row in rows} == expected
        for row in rows:
            assert set(row) == {key for _, key in compare_report.ACCURACY_COLUMNS} | {
                "kept_precision"
            }
            for key in ("accuracy", "macro_f", "micro_f", "ece", "coverage", "kept_precision"):
                assert 0.0 <= row[key] <= 1.0, (name, row)


@pytest.mark.slow
@pytest.mark.parametrize("dataset", ["banking", "emotions"])
def test_costs_are_recorded(results: dict[str, Any], dataset: str) -> None:
    for name, entry in results[dataset]["systems"].items():
        if "skipped" in entry:
            continue
        assert entry["train"]["train_s"] > 0
        assert entry["train"]["model_bytes"] > 0
        assert entry["train"]["command"]
        speed = entry["speed"]
        assert speed["n_docs"] == 300
        assert speed["docs_per_s"] > 0 and speed["docs_per_s_2proc"] > 0
        assert speed["peak_rss_mb"] > 0
        if name == "bow":
            assert entry["train"]["tune_s"] > 0
            assert entry["train"]["tune_command"].startswith("textcat-kit tune")


@pytest.mark.slow
@pytest.mark.parametrize("dataset", ["banking", "emotions"])
def test_pipeline_decisions_match_evaluate(results: dict[str, Any], dataset: str) -> None:
    """The decision-component row is what textcat_kit.evaluation.evaluate reports."""
    bow = results[dataset]["systems"]["bow"]
    row = next(r for r in bow["rows"] if r["rule"].startswith("decision component"))
    evaluate = bow["predict"]["evaluate"]
    assert row["macro_f"] == pytest.approx(evaluate["macro_f"])
    assert row["micro_f"] == pytest.approx(evaluate["micro_f"])
    assert row["coverage"] == pytest.approx(evaluate["coverage"])


@pytest.mark.slow
def test_calibration_keeps_the_exclusive_argmax(results: dict[str, Any]) -> None:
    rows = {(r["scores"], r["rule"]): r for r in results["banking"]["systems"]["bow"]["rows"]}
    raw, calibrated = rows[("raw", "argmax")], rows[("calibrated", "argmax")]
    assert calibrated["accuracy"] == pytest.approx(raw["accuracy"])
    assert calibrated["macro_f"] == pytest.approx(raw["macro_f"])


@pytest.mark.slow
def test_results_file_tables_and_markdown(results: dict[str, Any], tmp_path: Path) -> None:
    results_dir: Path = results["results_dir"]
    saved = json.loads((results_dir / "banking.json").read_text(encoding="utf8"))
    assert set(saved["systems"]) == set(SYSTEMS)
    tables = compare_report.dataset_tables(saved)
    headers = [line for line in tables.splitlines() if line.startswith("| system |")]
    assert headers == [
        "| " + " | ".join(h for h, _ in compare_report.ACCURACY_COLUMNS) + " |",
        "| " + " | ".join(compare_report.COST_COLUMNS) + " |",
    ]
    for name in SYSTEMS:
        assert f"| {name} |" in tables
    output = tmp_path / "RESULTS.md"
    output.write_text("# Results\n\nHand-written context.\n", encoding="utf8")
    compare_report.write_results_markdown(results_dir, output)
    compare_report.write_results_markdown(results_dir, output)
    text = output.read_text(encoding="utf8")
    assert text.startswith("# Results\n\nHand-written context.\n")
    assert text.count(compare_report.GENERATED_START) == 1
    assert "### banking (exclusive" in text and "### emotions (multilabel" in text


@pytest.mark.slow
def test_results_merge_keeps_other_systems(
    results: dict[str, Any], corpora: dict[str, Path], tmp_path: Path
) -> None:
    """Rerunning one system (e.g. the slow quickstart alone) keeps the others' entries."""
    path = tmp_path / "banking.json"
    path.write_text((results["results_dir"] / "banking.json").read_text(encoding="utf8"))
    before = json.loads(path.read_text(encoding="utf8"))
    split = compare_systems.Split(["a text"], np.ones((1, 1)))
    corpus = compare_systems.Corpus(
        "banking", corpora["banking"], ["label"], True, split, split, split
    )
    merged = compare._merge_results(path, corpus, {"quickstart": {"skipped": "not run"}})
    assert set(merged["systems"]) == set(before["systems"]) | {"quickstart"}
    assert merged["systems"]["bow"] == before["systems"]["bow"]


@pytest.mark.slow
def test_speed_breakdown_stages(results: dict[str, Any], corpora: dict[str, Path]) -> None:
    model = results["workdir"] / "banking" / "bow" / "model-tuned"
    report = speed_pipeline.run_speed_breakdown(
        model,
        corpora["banking"],
        baselines_dir=results["workdir"] / "banking",
        n_docs=200,
        rounds=1,
        n_process=2,
    )
    expected = {"tokenizer", "textcat", "full", "components", "full_2proc", "full_pool2"}
    expected |= {"tfidf_lr"} | (set() if FASTTEXT_MISSING else {"fasttext"})
    assert set(report["stages"]) == expected
    for name, stage in report["stages"].items():
        assert len(stage["runs"]) == 1 and stage["docs_per_s"] > 0
        assert ("cpu_docs_per_s" in stage) == (name not in speed_pipeline.MULTIPROCESS_STAGES)
    assert len(report["overhead"]["per_round_percent"]) == 1
    assert report["full_2proc_ratio"]["ratio"] > 0
    report["command"] = "python benchmarks/speed_pipeline.py ..."
    section = compare_report.speed_section(report)
    assert "calibrator + decision add" in section


@pytest.mark.slow
@pytest.mark.parametrize("dataset", ["banking", "emotions"])
def test_component_breakdown_steps(
    results: dict[str, Any], corpora: dict[str, Path], dataset: str
) -> None:
    model = results["workdir"] / dataset / "bow" / "model-tuned"
    report = speed_components.run_component_breakdown(
        model, corpora[dataset], n_docs=200, repeats=1
    )
    steps = report["us_per_doc"]
    assert {"calibrator: whole _process", "decision: whole _process"} <= set(steps)
    assert set(compare_report.SPACY_STEPS) <= set(steps)
    assert all(value > 0 for value in steps.values())
    report["command"] = "python benchmarks/speed_components.py ..."
    assert "| calibrator: whole _process |" in compare_report.components_section(report)


@pytest.mark.slow
def test_timed_steps_write_what_the_components_write(results: dict[str, Any]) -> None:
    """The steps timed by speed_components.py, run by hand, give the pipeline's exact output."""
    import spacy

    from textcat_kit.pipeline.fitted import cats_to_array, write_cats

    nlp = spacy.load(results["workdir"] / "emotions" / "bow" / "model-tuned")
    texts = ["I love this, thank you!", "This is awful.", "Why would you do that?", ""]
    expected = list(nlp.pipe(texts))
    labels = list(nlp.get_pipe("textcat").labels)
    with nlp.select_pipes(disable=list(compare_systems.OUR_COMPONENTS)):
        docs = list(nlp.pipe(texts))
    raw = cats_to_array(docs, labels)
    calibrated = nlp.get_pipe("textcat_kit_calibrator").transform(raw)
    write_cats(docs, labels, calibrated)
    nlp.get_pipe("textcat_kit_decision")._process(docs)
    chosen = [doc._.decided_labels for doc in docs]
    for doc, want, labels_of_doc in zip(docs, expected, chosen, strict=True):
        assert doc.cats == pytest.approx(want.cats)
        assert labels_of_doc == want._.decided_labels


# --- the scoring maths on hand-made arrays ----------------------------------------------------


def test_decision_scores_by_hand() -> None:
    gold = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 0, 0]], dtype=float)
    decided = np.array([[1, 0, 0], [0, 0, 1], [0, 0, 1], [0, 0, 0]])
    scores = compare_metrics.decision_scores(decided, gold)
    assert scores["accuracy"] == pytest.approx(2 / 4)
    assert scores["coverage"] == pytest.approx(3 / 4)
    assert scores["kept_precision"] == pytest.approx(2 / 3)
    # F1 per label: 2/3 (1 tp, 1 fn), 0 (1 fn), 2/3 (1 tp, 1 fp)
    assert scores["macro_f"] == pytest.approx((2 / 3 + 0 + 2 / 3) / 3)
    assert scores["micro_f"] == pytest.approx(2 * 2 / (2 * 2 + 1 + 2))


def test_abstain_rule_keeps_confident_docs_only() -> None:
    probs = np.array([[0.9, 0.1], [0.55, 0.45], [0.2, 0.8], [0.4, 0.6]])
    decided = compare_metrics.abstain_decisions(probs, 0.7)
    assert decided.tolist() == [[1, 0], [0, 0], [0, 1], [0, 0]]


def test_multilabel_rules_apply_their_thresholds() -> None:
    rng = np.random.default_rng(0)
    gold = (rng.random((400, 4)) < 0.3).astype(float)
    probs = np.clip(0.3 * gold + 0.5 * rng.random((400, 4)), 0, 1)
    rules = compare_metrics.fit_decision_rules(probs, gold, exclusive=False)
    assert list(rules) == ["0.5", "global (dev)", "per-label (dev)"]
    test_probs = np.full((3, 4), 0.49)
    assert rules["0.5"][0](test_probs).sum() == 0
    global_t = float(rules["global (dev)"][1])
    assert rules["global (dev)"][0](np.full((1, 4), global_t + 0.01)).sum() == 4

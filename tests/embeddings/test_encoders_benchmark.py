"""The encoders benchmark's own logic: few-shot samples, step counts, rendered tables."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
import spacy
from benchmarks import encoders
from spacy.tokens import DocBin

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_subset_indices_takes_n_per_label_and_is_seeded() -> None:
    labels = ["a"] * 30 + ["b"] * 5 + ["c"] * 12
    keep = encoders.subset_indices(labels, 10, seed=0)
    assert Counter(labels[i] for i in keep) == {"a": 10, "b": 5, "c": 10}
    assert keep == sorted(keep)
    assert keep == encoders.subset_indices(labels, 10, seed=0)
    assert keep != encoders.subset_indices(labels, 10, seed=1)


def test_epochs_steps_counts_the_configs_batches(tmp_path: Path) -> None:
    nlp = spacy.blank("en")
    docs = [nlp.make_doc(f"short text number {i}") for i in range(300)]
    DocBin(docs=docs).to_disk(tmp_path / "train.spacy")
    config = REPO_ROOT / "configs" / "textcat_transformer.cfg"
    one = encoders.epochs_steps(config, tmp_path / "train.spacy", 1)
    # 300 docs of 4 tokens in batches of at most 500 padded tokens: about 125 per batch
    assert 2 <= one <= 6
    assert encoders.epochs_steps(config, tmp_path / "train.spacy", 3) == 3 * one


def test_transformer_overrides_size_the_schedule_and_set_threads(tmp_path: Path) -> None:
    nlp = spacy.blank("en")
    DocBin(docs=[nlp.make_doc(f"text {i}") for i in range(600)]).to_disk(tmp_path / "t.spacy")
    config = REPO_ROOT / "configs" / "textcat_transformer.cfg"
    kwargs = {"epochs": 2, "max_steps": 0, "eval_frequency": 10, "learn_rate": 0.0, "threads": 0}
    plain, steps = encoders.transformer_overrides(config, tmp_path / "t.spacy", tmp_path, **kwargs)
    assert steps == encoders.epochs_steps(config, tmp_path / "t.spacy", 2)
    pairs = dict(zip(plain[::2], plain[1::2], strict=True))
    assert pairs["--training.optimizer.learn_rate.total_steps"] == str(steps)
    assert pairs["--training.optimizer.learn_rate.warmup_steps"] == str(max(1, steps // 10))
    assert "--initialize.before_init.threads" not in pairs
    assert "--training.optimizer.learn_rate.initial_rate" not in pairs
    kwargs.update(max_steps=3, learn_rate=2e-4, threads=1)
    capped, steps = encoders.transformer_overrides(config, tmp_path / "t.spacy", tmp_path, **kwargs)
    pairs = dict(zip(capped[::2], capped[1::2], strict=True))
    assert steps == 3
    assert pairs["--initialize.before_init.threads"] == "1"
    assert pairs["--training.optimizer.learn_rate.initial_rate"] == "0.0002"


def test_report_renders_reference_and_onnx_tables(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(encoders, "RESULTS_DIR", tmp_path)
    (tmp_path / "encoders_reference_toy_10pc.json").write_text(
        json.dumps(
            {
                "command": "python -m benchmarks encoders reference",
                "dataset": "toy",
                "per_class": 10,
                "recipe": "LR",
                "test_macro_f": {"C=10": {"0": 0.8, "1": 0.9}},
                "summary": {"C=10": {"mean": 0.85, "sd": 0.05}},
            }
        )
    )
    row = {
        "macro_f": 0.5,
        "max_abs_diff": 0.0,
        "same_decision": 1.0,
        "docs_per_cpu_s_batch64": 100.0,
        "docs_per_cpu_s_batch1": 50.0,
    }
    (tmp_path / "onnx_quality_toy.json").write_text(
        json.dumps(
            {
                "command": "python -m benchmarks onnx_int8_quality --model m",
                "machine": {"load_average": [1.0, 1.0, 1.0]},
                "model": "m",
                "n_test": 2,
                "clock": "process CPU time",
                "threads": 1,
                "n_speed_batch64": 2,
                "n_speed_batch1": 1,
                "int8_minus_fp32_macro_f_points": -0.25,
                "pipelines": {"onnx fp32": row, "onnx int8": {**row, "macro_f": 0.4975}},
            }
        )
    )
    reference = "\n".join(encoders.reference_lines())
    assert "| 10 | 0.800 | 0.900 | 0.850 (0.050) |" in reference
    onnx = "\n".join(encoders.onnx_lines())
    assert "| onnx int8 | 0.4975 |" in onnx
    assert "-0.25 points" in onnx


def test_report_renders_step_time(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(encoders, "RESULTS_DIR", tmp_path)
    assert encoders.step_time_lines() == []
    (tmp_path / "encoders_step_time_banking77.json").write_text(
        json.dumps(
            {
                "command": "python -m benchmarks encoders step-time --threads 1,2",
                "machine": {"load_average": [3.0, 2.0, 1.0], "cpus": 2},
                "config": "configs/textcat_transformer.cfg",
                "steps": 10,
                "docs_per_step": 31.6,
                "rounds": 2,
                "seconds_per_step": {
                    "1": {"wall": 0.61, "cpu": 0.6},
                    "2": {"wall": 2.27, "cpu": 3.1},
                },
            }
        )
    )
    line = "\n".join(encoders.step_time_lines())
    assert "1 thread(s) 0.61 s per step (0.60 CPU-s)" in line
    assert "2 thread(s) 2.27 s per step (3.10 CPU-s)" in line
    assert "load average 3.0 on 2 cores" in line


def test_distil_sentence_names_its_teacher_and_a_weaker_teacher() -> None:
    rows = {
        "bow": {"macro_f": 0.80},
        "embed": {"macro_f": 0.90},
        "transformer": {"macro_f": 0.75},
        "distil": {"macro_f": 0.85, "n_unlabelled": 7},
    }
    assert "closes 50% of the macro-F1 gap" in encoders.distil_sentence(rows)
    assert "7 unlabelled" in encoders.distil_sentence(rows)
    rows["distil"] = {"macro_f": 0.82, "teacher": "transformer"}
    weaker = encoders.distil_sentence(rows)
    assert "weaker than bow" in weaker and "0.750" in weaker and "+2.0 points" in weaker
    assert "closes" not in weaker
    assert "fine-tuned MiniLM" in encoders.system_name("distil", rows["distil"])
    rows["distil"] = {"macro_f": 0.85, "teacher_macro_f": 0.95}  # its teacher, then
    assert "closes 33% of the macro-F1 gap" in encoders.distil_sentence(rows)
    assert "frozen" in encoders.system_name("embed", {})
    tuned = encoders.system_name("embed", {"contrastive": {"steps": 130}})
    assert "contrastively fine-tuned" in tuned and "130 steps" in tuned
    assert "frozen" in encoders.system_name("embed", {"contrastive": {"skipped": "why"}})


def test_onnx_quality_scores_the_pipelines_own_decisions() -> None:
    import numpy as np
    from benchmarks.onnx_int8_quality import pipeline_decisions
    from spacy.tokens import Doc

    nlp = spacy.blank("en")
    probs = np.array([[0.6, 0.3], [0.2, 0.4]])
    docs = [nlp.make_doc("a"), nlp.make_doc("b")]
    decided, rule = pipeline_decisions(docs, ["x", "y"], probs, exclusive=False)
    if not Doc.has_extension("decided_labels"):
        assert rule == "threshold 0.5" and decided.tolist() == [[1, 0], [0, 0]]
        Doc.set_extension("decided_labels", default=None)
    docs[0]._.decided_labels, docs[1]._.decided_labels = ["x", "y"], ["y"]  # tuned thresholds
    decided, rule = pipeline_decisions(docs, ["x", "y"], probs, exclusive=False)
    assert rule == "decision component" and decided.tolist() == [[1, 1], [0, 1]]
    decided, rule = pipeline_decisions([nlp.make_doc("c")], ["x", "y"], probs[1:], True)
    assert rule == "argmax" and decided.tolist() == [[0, 1]]


def test_report_gives_the_spread_over_samples(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(encoders, "RESULTS_DIR", tmp_path)
    for name, seed, value in (("", 0, 0.85), ("_seed1", 1, 0.87), ("_seed2", 2, 0.86)):
        row = {"macro_f": value, "command": f"run --seed {seed}"}
        data = {"dataset": "banking77", "per_class": 10, "systems": {"embed": row}}
        (tmp_path / f"encoders_banking77_10pc{name}.json").write_text(json.dumps(data))
    lines = [line for line in encoders.seed_lines() if line]
    assert len(lines) == 1
    assert "0: 0.850, 1: 0.870, 2: 0.860; mean 0.860, sd 0.008" in lines[0]
    assert "`run --seed 1`; `run --seed 2`" in lines[0] and "`run --seed 0`" not in lines[0]

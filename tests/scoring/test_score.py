"""`textcat-kit score` with the local engine: outputs equal to nlp.pipe (doc.cats and
doc._.decided_labels) in one and two processes, exact row accounting, Parquet and JSON
lines, top-k, refusals, and interruption at any point followed by --resume."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import spacy

from kit_testing import train_bow_pipeline
from textcat_kit.errors import OutputError
from textcat_kit.scoring import ScoreSettings, score_files
from textcat_kit.scoring.store import PartStore

N_BAD = 4


def write_inputs(directory: Path, texts: list[str]) -> dict[str, Path]:
    """The same records as JSONL (with N_BAD bad lines spread in) and Parquet."""
    directory.mkdir(parents=True, exist_ok=True)
    jsonl = directory / "in.jsonl"
    with open(jsonl, "wb") as fh:
        for i, text in enumerate(texts):
            if i % 50 == 7:
                fh.write(
                    [b'{"id": "n", "text": 3}', b'{"id": "m"}', b"{oops", b'{"text": "\xe9"}'][
                        (i // 50) % N_BAD
                    ]
                    + b"\n"
                )
            fh.write(json.dumps({"id": f"r{i}", "text": text}).encode() + b"\n")
    parquet = directory / "in.parquet"
    pq.write_table(
        pa.table({"id": [f"r{i}" for i in range(len(texts))], "text": texts}),
        parquet,
        row_group_size=97,
    )
    return {"jsonl": jsonl, "parquet": parquet}


def corpus_texts(banking_small: dict[str, Any], n: int) -> list[str]:
    base = [text for text, _ in banking_small["test"] + banking_small["dev"]]
    return [f"{base[i % len(base)]} {i}" for i in range(n)]


def test_one_and_two_processes_equal_nlp_pipe(
    tuned_model: Path,
    banking_small: dict[str, Any],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # past the first 100 texts every batch runs in a memory zone: the same results
    monkeypatch.setattr("textcat_kit.scoring.results.WARMUP_TEXTS", 100)
    # a Parquet row group, not a shard, is what commit and assembly hold in memory
    monkeypatch.setattr("textcat_kit.scoring.store.ROW_GROUP_ROWS", 40)
    texts = corpus_texts(banking_small, 700)
    inputs = write_inputs(tmp_path, texts)
    outputs = {}
    for n_process in (1, 2):
        out = tmp_path / f"out{n_process}.parquet"
        settings = ScoreSettings(
            id_key="id", n_process=n_process, batch_size=64, shard_size=150, progress=False
        )
        result = score_files(tuned_model, inputs["jsonl"], out, settings)
        n_bad = sum(1 for i in range(len(texts)) if i % 50 == 7)
        assert result.summary.rows_in == len(texts) + n_bad
        assert result.summary.scored == len(texts) and result.summary.rejected == n_bad
        rejects = [json.loads(line) for line in result.rejects.read_text().splitlines()]
        assert len(rejects) == n_bad
        assert {r["reason"] for r in rejects} == {
            "non-string text",
            "missing text",
            "malformed record",
            "undecodable text",
        }
        assert not (tmp_path / f"out{n_process}.parquet.parts").exists()
        metadata = pq.ParquetFile(out).metadata
        groups = [metadata.row_group(g).num_rows for g in range(metadata.num_row_groups)]
        assert max(groups) <= 40 and sum(groups) == len(texts)
        outputs[n_process] = pq.read_table(out)
    assert outputs[1].equals(outputs[2])
    table = outputs[1]
    nlp = spacy.load(tuned_model)
    labels = list(nlp.get_pipe("textcat").labels)
    docs = list(nlp.pipe(texts))
    assert table.column("id").to_pylist() == [f"r{i}" for i in range(len(texts))]
    rows = table.column("row").to_pylist()
    assert rows == sorted(rows) and len(set(rows)) == len(texts)
    probs = np.column_stack(
        [table.column("probabilities").combine_chunks().field(lab) for lab in labels]
    )
    expected = np.array([[doc.cats[lab] for lab in labels] for doc in docs])
    np.testing.assert_allclose(probs, expected, atol=1e-6)
    decided = table.column("labels").to_pylist()
    assert decided == [doc._.decided_labels for doc in docs]
    abstain = table.column("abstain").to_pylist()
    assert abstain == [not d for d in decided]
    assert any(abstain) and not all(abstain)


def test_parquet_input_jsonl_output_and_top_k(
    tuned_model: Path, banking_small: dict[str, Any], tmp_path: Path
) -> None:
    texts = corpus_texts(banking_small, 300)
    inputs = write_inputs(tmp_path, texts)
    full = tmp_path / "full.parquet"
    score_files(tuned_model, inputs["parquet"], full, ScoreSettings(progress=False))
    top = tmp_path / "top.jsonl"
    score_files(
        tuned_model,
        inputs["parquet"],
        top,
        ScoreSettings(top_k=3, n_process=2, batch_size=50, shard_size=100, progress=False),
    )
    reference = pq.read_table(full)
    labels = [f.name for f in reference.schema.field("probabilities").type]
    probs = np.column_stack(
        [reference.column("probabilities").combine_chunks().field(lab) for lab in labels]
    )
    lines = [json.loads(line) for line in top.read_text().splitlines()]
    assert [line["row"] for line in lines] == list(range(len(texts)))
    assert "id" not in lines[0] and lines[0]["source"] == "in.parquet"
    for i, line in enumerate(lines):
        order = np.argsort(-probs[i], kind="stable")[:3]
        assert line["top_labels"] == [labels[j] for j in order]
        np.testing.assert_allclose(line["top_probabilities"], probs[i][order], atol=1e-6)
        assert line["labels"] == reference.column("labels")[i].as_py()


def test_multilabel_without_decision_component_warns_and_thresholds(tmp_path: Path) -> None:
    records = [
        ("card lost and refund", ["card", "refund"]),
        ("card", ["card"]),
        ("refund please", ["refund"]),
        ("hello", []),
    ] * 5
    nlp = train_bow_pipeline(records, ["card", "refund"], exclusive=False, epochs=10)
    nlp.to_disk(tmp_path / "model")
    data = tmp_path / "in.csv"
    data.write_text("text\ncard lost and refund\nhello\nrefund please\n")
    with pytest.warns(UserWarning, match=r"\[W350\]"):
        result = score_files(
            tmp_path / "model", data, tmp_path / "o.jsonl", ScoreSettings(progress=False)
        )
    lines = [json.loads(line) for line in result.output.read_text().splitlines()]
    for line in lines:
        assert line["labels"] == [k for k, p in line["probabilities"].items() if p >= 0.5]
        assert line["abstain"] is False


def test_refusals(tuned_model: Path, tmp_path: Path) -> None:
    data = tmp_path / "in.csv"
    data.write_text("text\nmy card\n")
    out = tmp_path / "out.parquet"
    quiet = ScoreSettings(progress=False)
    score_files(tuned_model, data, out, quiet)
    with pytest.raises(OutputError, match=r"\[E023\]"):
        score_files(tuned_model, data, out, quiet)
    score_files(tuned_model, data, out, ScoreSettings(progress=False, overwrite=True))
    # an interrupted run's parts: neither silently continued nor silently discarded
    parts = tmp_path / "new.parquet.parts"
    PartStore(parts, "parquet").create({"version": 0})
    with pytest.raises(OutputError, match=r"\[E356\]"):
        score_files(tuned_model, data, tmp_path / "new.parquet", quiet)
    with pytest.raises(OutputError, match=r"\[E357\]"):
        score_files(
            tuned_model, data, tmp_path / "new.parquet", ScoreSettings(progress=False, resume=True)
        )
    # a directory the user made is never used as a parts directory
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep")
    with pytest.raises(OutputError, match=r"\[E022\]"):
        score_files(tuned_model, data, mine, quiet)
    assert (mine / "notes.txt").read_text() == "keep"


def test_directory_output_is_a_dataset(
    tuned_model: Path, tmp_path: Path, banking_small: dict[str, Any]
) -> None:
    texts = corpus_texts(banking_small, 120)
    inputs = write_inputs(tmp_path / "in", texts)
    out = tmp_path / "scored"
    result = score_files(
        tuned_model,
        tmp_path / "in",
        out,
        ScoreSettings(progress=False, shard_size=50, batch_size=25),
    )
    assert result.summary.files == 2
    import pyarrow.dataset as ds

    table = ds.dataset(out, format="parquet").to_table()
    assert table.num_rows == 2 * len(texts)
    assert (
        json.loads((out / "_summary.json").read_text())["summary"]["rows_in"]
        == result.summary.rows_in
    )
    assert (out / "_rejects.jsonl").exists()
    assert inputs["jsonl"].exists()


class _Crash(Exception):
    pass


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_interrupted_at_random_points_then_resumed_equals_uninterrupted(
    tuned_model: Path,
    banking_small: dict[str, Any],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    seed: int,
) -> None:
    """Crash inside a commit (after the data file, before its metadata, or between parts),
    resume, repeat; the final output equals one uninterrupted run."""
    texts = corpus_texts(banking_small, 400)
    write_inputs(tmp_path / "in", texts)
    settings = dict(id_key="id", batch_size=40, shard_size=80, progress=False)
    reference = tmp_path / "ref.jsonl"
    score_files(tuned_model, tmp_path / "in", reference, ScoreSettings(**settings))  # type: ignore[arg-type]
    rng = random.Random(seed)
    out = tmp_path / "out.jsonl"
    original = PartStore.commit
    calls = {"n": 0, "crash_at": rng.randint(1, 6), "half": rng.random() < 0.5}

    def flaky_commit(self: PartStore, meta: Any, rows: Any, rejects: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == calls["crash_at"]:
            if calls["half"] and rows:
                (self.directory / f"part-{meta.name}.jsonl").write_bytes(b"half-written")
            raise _Crash
        return original(self, meta, rows, rejects)

    monkeypatch.setattr(PartStore, "commit", flaky_commit)
    attempts = 0
    while True:
        attempts += 1
        try:
            score_files(
                tuned_model,
                tmp_path / "in",
                out,
                ScoreSettings(resume=attempts > 1, n_process=1 + attempts % 2, **settings),  # type: ignore[arg-type]
            )
            break
        except _Crash:
            assert not out.exists()
            calls["n"], calls["crash_at"] = 0, rng.randint(1, 6)
            calls["half"] = rng.random() < 0.5
    assert attempts > 1
    assert out.read_bytes() == reference.read_bytes()
    assert (
        out.with_name("out.rejects.jsonl").read_bytes()
        == reference.with_name("ref.rejects.jsonl").read_bytes()
    )


def _small_job(
    tuned_model: Path, banking_small: dict[str, Any], tmp_path: Path
) -> tuple[dict[str, Path], dict[str, Any], Any]:
    """300 texts in 3 shards: the inputs, the settings and an uninterrupted reference run
    (``ref.parquet``) for the interruption tests."""
    inputs = write_inputs(tmp_path / "in", corpus_texts(banking_small, 300))
    common: dict[str, Any] = dict(id_key="id", batch_size=50, shard_size=100, progress=False)
    reference = score_files(
        tuned_model, inputs["jsonl"], tmp_path / "ref.parquet", ScoreSettings(**common)
    )
    return inputs, common, reference


def test_killed_after_assembly_during_cleanup_then_resumed(
    tuned_model: Path, banking_small: dict[str, Any], tmp_path: Path, monkeypatch: Any
) -> None:
    """A run killed after its output was assembled, while it removed its parts (renamed to
    ``.parts.done``), resumes: the summary comes back from the parts, nothing is refused."""
    import shutil

    from textcat_kit.scoring import job

    inputs, common, reference = _small_job(tuned_model, banking_small, tmp_path)
    out = tmp_path / "out.parquet"
    rmtree = shutil.rmtree

    def killed_in_cleanup(path: Any, *args: Any, **kwargs: Any) -> None:
        if str(path).endswith(".parts.done") and Path(path).exists():
            raise _Crash
        rmtree(path, *args, **kwargs)

    monkeypatch.setattr(job.shutil, "rmtree", killed_in_cleanup)
    with pytest.raises(_Crash):
        score_files(tuned_model, inputs["jsonl"], out, ScoreSettings(**common))  # type: ignore[arg-type]
    monkeypatch.undo()
    assert out.exists() and (tmp_path / "out.parquet.parts.done").is_dir()
    with pytest.raises(OutputError, match="E023"):  # without --resume: refused, kept
        score_files(tuned_model, inputs["jsonl"], out, ScoreSettings(**common))  # type: ignore[arg-type]
    resumed = score_files(
        tuned_model,
        inputs["jsonl"],
        out,
        ScoreSettings(resume=True, **common),  # type: ignore[arg-type]
    )
    assert resumed.summary == reference.summary
    assert resumed.resumed_parts > 0
    assert out.read_bytes() == (tmp_path / "ref.parquet").read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "in",
        "out.parquet",
        "out.rejects.jsonl",
        "ref.parquet",
        "ref.rejects.jsonl",
    ]


def test_disk_full_is_a_coded_error_and_resume_finishes(
    tuned_model: Path, banking_small: dict[str, Any], tmp_path: Path, monkeypatch: Any
) -> None:
    """A full disk stops the job with E364 (output, where the parts are, --resume), keeps the
    shards written so far, and a resumed run finishes with the uninterrupted output."""
    import errno

    inputs, common, reference = _small_job(tuned_model, banking_small, tmp_path)
    commit, calls = PartStore.commit, {"n": 0}

    def full_disk(self: PartStore, *args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError(errno.ENOSPC, "No space left on device", str(self.directory))
        return commit(self, *args, **kwargs)

    monkeypatch.setattr(PartStore, "commit", full_disk)
    out = tmp_path / "out.parquet"
    with pytest.raises(OutputError, match=r"\[E364\] .*out\.parquet .*--resume"):
        score_files(tuned_model, inputs["jsonl"], out, ScoreSettings(**common))  # type: ignore[arg-type]
    monkeypatch.undo()
    assert not out.exists()
    resumed = score_files(
        tuned_model,
        inputs["jsonl"],
        out,
        ScoreSettings(resume=True, **common),  # type: ignore[arg-type]
    )
    assert resumed.resumed_parts == 1
    assert resumed.summary == reference.summary
    assert out.read_bytes() == (tmp_path / "ref.parquet").read_bytes()


def test_out_of_space_is_found_behind_wrapping_errors() -> None:
    import errno

    from textcat_kit.scoring.job import _out_of_space

    try:
        try:
            raise OSError(errno.ENOSPC, "No space left on device")
        except OSError as err:
            raise RuntimeError("a write task failed") from err
    except RuntimeError as wrapped:
        found = _out_of_space(wrapped)
    assert found is not None and found.errno == errno.ENOSPC
    assert _out_of_space(RuntimeError("OSError: [Errno 28] No space left on device")) is not None
    assert _out_of_space(OSError(errno.EACCES, "Permission denied")) is None
    assert _out_of_space(KeyboardInterrupt()) is None


@pytest.mark.slow
def test_sigkill_during_cli_run_then_resume(
    tuned_model: Path, banking_small: dict[str, Any], tmp_path: Path
) -> None:
    """The real thing: `textcat-kit score` killed with SIGKILL at random moments, resumed
    with --resume until it finishes; the output equals an uninterrupted run."""
    texts = corpus_texts(banking_small, 2000)
    inputs = write_inputs(tmp_path / "in", texts)
    opts = ["--id-key", "id", "--batch-size", "100", "--shard-size", "200", "--no-progress"]
    reference = score_files(
        tuned_model,
        inputs["jsonl"],
        tmp_path / "ref.parquet",
        ScoreSettings(id_key="id", batch_size=100, shard_size=200, progress=False),
    )
    assert reference.summary.line().startswith("rows in: 2040 = 2000 scored + 40 rejected")
    cli = [sys.executable, "-m", "textcat_kit.cli", "score", str(tuned_model), str(inputs["jsonl"])]
    # Kill points are fractions of an uninterrupted CLI run on this machine (fast or loaded).
    start = time.perf_counter()
    full_args = [*cli, str(tmp_path / "full.parquet"), *opts, "--n-process", "2"]
    subprocess.run(full_args, check=True, capture_output=True)
    full = time.perf_counter() - start
    rng = random.Random(0)
    out = tmp_path / "out.parquet"
    kills = 0
    for attempt in range(10):
        args = [*cli, str(out), *opts, "--n-process", "2"] + (["--resume"] if attempt else [])
        proc = subprocess.Popen(
            args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True
        )
        try:
            timeout = rng.uniform(0.3, 0.85) * full if kills < 2 else 300
            stdout, stderr = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            kills += 1
            continue
        assert proc.returncode == 0, stderr.decode()
        assert "rows in: 2040 = 2000 scored + 40 rejected" in stdout.decode()
        break
    assert kills >= 1
    assert pq.read_table(out).equals(pq.read_table(tmp_path / "ref.parquet"))
    assert out.with_name("out.rejects.jsonl").read_bytes() == reference.rejects.read_bytes()


def test_benchmark_runs_and_renders_the_doc(tuned_model: Path, tmp_path: Path) -> None:
    """benchmarks/score_throughput.py end to end on a few texts (figures printed, never timed)."""
    from benchmarks import score_throughput

    doc = tmp_path / "doc.md"
    doc.write_text(
        "a\n<!-- score_throughput.py cost: begin -->\nold\n<!-- score_throughput.py cost: end -->\n"
        "b\n<!-- score_throughput.py: begin -->\nold\n<!-- score_throughput.py: end -->\nc\n"
    )
    score_throughput.main(
        [
            str(tuned_model),
            "--n-texts",
            "300",
            "--rounds",
            "1",
            "--stages",
            "nlp_pipe,score_1,score_2",
            "--no-save",
            "--work-dir",
            str(tmp_path / "work"),
            "--update-doc",
            str(doc),
        ]
    )
    text = doc.read_text()
    assert "old" not in text and text.startswith("a\n") and text.endswith("c\n")
    assert "| score_2/score_1 |" in text and "texts/s per core" in text
    assert "Outputs of the `score` stages identical: True." in text


def test_cli_prints_accounting_and_coded_errors(
    tuned_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from textcat_kit.cli import main

    data = tmp_path / "in.tsv"
    data.write_text("text\tid\nmy card has not arrived\ta\n\tb\nrefund\tc\n")
    out = tmp_path / "out.jsonl"
    main(["score", str(tuned_model), str(data), str(out), "--id-key", "id", "--no-progress"])
    printed = capsys.readouterr().out
    assert "rows in: 3 = 2 scored + 1 rejected (missing text: 1)" in printed
    assert [json.loads(line)["id"] for line in out.read_text().splitlines()] == ["a", "c"]
    with pytest.raises(SystemExit) as exit_:
        main(["score", str(tuned_model), str(data), str(out), "--top-k", "999"])
    assert exit_.value.code == 1
    err = capsys.readouterr().err
    assert "[E023]" in err and "Traceback" not in err
    with pytest.raises(SystemExit):
        main(["score", str(tuned_model), str(data), str(tmp_path / "o2.jsonl"), "--top-k", "999"])
    err = capsys.readouterr().err
    assert "[E355]" in err and "Traceback" not in err

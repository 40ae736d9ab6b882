"""`--engine ray` on a real local Ray: the same output and rejects as the local engine
(several files, several shards, bad records), and a resumed job re-scores only the
shards that were not complete."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from textcat_kit.scoring import ScoreSettings, score_files
from textcat_kit.scoring.ray_engine import plan_shards
from textcat_kit.scoring.store import PartStore

ray = pytest.importorskip("ray", reason="the [ray] extra is not installed")

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def local_ray() -> Any:
    ray.init(num_cpus=3, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def inputs(banking_small: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("ray-in")
    base = [text for text, _ in banking_small["test"] + banking_small["dev"]]
    texts = [f"{base[i % len(base)]} {i}" for i in range(450)]
    pq.write_table(
        pa.table({"ticket": [f"p{i}" for i in range(450)], "body": texts}),
        directory / "a.parquet",
        row_group_size=64,
    )
    with open(directory / "b.csv", "w", encoding="utf8") as fh:
        fh.write("ticket,body\n")
        for i, text in enumerate(texts[:200]):
            fh.write(f'c{i},"{text}"\n' if i % 40 else f"c{i},\n")  # every 40th: no text
        fh.write("c-extra,two,fields\n")
    return directory


def test_ray_equals_local_engine_and_resumes_incomplete_shards(
    tuned_model: Path, inputs: Path, tmp_path: Path, local_ray: Any
) -> None:
    common = dict(text_key="body", id_key="ticket", batch_size=50, shard_size=150, progress=False)
    local = score_files(tuned_model, inputs, tmp_path / "local.parquet", ScoreSettings(**common))  # type: ignore[arg-type]
    assert local.summary.rows_in == 450 + 201
    assert local.summary.rejected == 5 + 1
    reasons = [json.loads(line)["reason"] for line in local.rejects.read_text().splitlines()]
    assert sorted(set(reasons)) == ["malformed record", "missing text"]

    out = tmp_path / "scored"  # a directory of parts: what the resume works on
    on_ray = score_files(
        tuned_model,
        inputs,
        out,
        ScoreSettings(engine="ray", n_process=2, **common),  # type: ignore[arg-type]
    )
    assert on_ray.summary == local.summary
    expected = pq.read_table(tmp_path / "local.parquet")
    assert _dataset(out).equals(expected)
    assert on_ray.rejects.read_bytes() == local.rejects.read_bytes()

    store = PartStore(out, "parquet")
    assert (
        {m.shard for m in store.parts()}
        == set(range(len(plan_shards(*_files_and_counts(inputs), 150))))
        == {0, 1, 2, 3}
    )
    # Lose shard 1 and the later parts of shard 3 (as a killed driver leaves them), resume.
    for meta in store.parts():
        if meta.shard == 1 or (meta.shard == 3 and meta.first > 0):
            (out / f"_part-{meta.name}.json").unlink()
    (out / "_summary.json").unlink()
    kept = {p.name: p.stat().st_mtime_ns for p in out.glob("part-000000-*.parquet")}
    resumed = score_files(
        tuned_model,
        inputs,
        out,
        ScoreSettings(engine="ray", n_process=2, resume=True, **common),  # type: ignore[arg-type]
    )
    assert resumed.summary == local.summary
    assert _dataset(out).equals(expected)
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("part-000000-*.parquet")} == kept


def _dataset(directory: Path) -> pa.Table:
    """The parts of a directory output, in input order (their names sort that way)."""
    parts = sorted(directory.glob("part-*.parquet"))
    return pa.concat_tables([pq.read_table(p) for p in parts])


def _files_and_counts(directory: Path) -> tuple[Any, list[int | None]]:
    from textcat_kit.scoring.inputs import discover_inputs

    files, _ = discover_inputs(directory)
    counts: list[int | None] = [
        pq.ParquetFile(f.path).metadata.num_rows if f.fmt == "parquet" else None for f in files
    ]
    return files, counts

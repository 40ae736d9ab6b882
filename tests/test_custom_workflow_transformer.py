"""The `custom` workflow end to end with the transformer variant, as a user runs it:
`spacy project run custom . --vars.variant transformer --vars.encoder DIR ...` on a CSV,
in a copy of the project, with a tiny local BERT as the encoder (no network). The run
must leave the tuned pipeline, metrics.json, the report and an installable pipeline
wheel, and the tuned pipeline must load and classify."""

from __future__ import annotations

import csv
import json
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow

TEMPLATES = {
    "card": ["my card {} not work", "the card was {} at the shop", "where is my new card {}"],
    "refund": ["i want a refund {}", "please refund the order {}", "how long does a refund {}"],
    "transfer": ["the transfer {} did not arrive", "send money {} to my friend", "transfer {}"],
}
FILLERS = ["today", "again", "please", "now", "yesterday", "still", "at all", "quickly"]


def _rows(n_per_label: int, seed: int) -> list[dict[str, str]]:
    rng = random.Random(seed)
    rows = []
    for label, templates in TEMPLATES.items():
        for i in range(n_per_label):
            text = rng.choice(templates).format(rng.choice(FILLERS))
            rows.append({"id": f"{label}-{i}", "message": text, "topic": label})
    rng.shuffle(rows)
    return rows


def test_custom_workflow_with_the_transformer_variant(tmp_path: Path) -> None:
    pytest.importorskip("spacy_transformers", reason="the [transformers] extra is not installed")
    import spacy

    from textcat_kit.testing.tiny_transformer import build_tiny_transformer

    project = tmp_path / "project"
    project.mkdir()
    shutil.copy(ROOT / "project.yml", project / "project.yml")
    shutil.copytree(ROOT / "configs", project / "configs")
    shutil.copytree(ROOT / "scripts", project / "scripts")
    rows = _rows(40, seed=0)
    data = tmp_path / "tickets.csv"
    with data.open("w", newline="", encoding="utf8") as fh:
        writer = csv.DictWriter(fh, fieldnames=["id", "message", "topic"])
        writer.writeheader()
        writer.writerows(rows)
    encoder = build_tiny_transformer(
        tmp_path / "encoder", [row["message"] for row in rows], vocab_size=200
    )

    path = os.environ.get("PATH", "")
    command = [sys.executable, "-m", "spacy", "project", "run", "custom", str(project)]
    command += ["--vars.dataset", "tickets", "--vars.train_file", str(data)]
    command += ["--vars.text_field", "message", "--vars.label_field", "topic"]
    command += ["--vars.variant", "transformer", "--vars.encoder", str(encoder)]
    # The project's commands call `python` and `textcat-kit`: the ones of this interpreter.
    env = dict(os.environ, PATH=os.pathsep.join([str(Path(sys.executable).parent), path]))
    result = subprocess.run(
        command, cwd=project, capture_output=True, text=True, timeout=1500, env=env
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]

    model = project / "training" / "tickets-transformer" / "model-tuned"
    metrics = json.loads((project / "metrics" / "tickets-transformer" / "metrics.json").read_text())
    assert (project / "metrics" / "tickets-transformer" / "report.md").is_file()
    wheels = list((project / "packages").rglob("*tickets_transformer*.whl"))
    assert wheels, list((project / "packages").rglob("*"))
    assert metrics["task"] == "exclusive" and set(metrics["labels"]) == set(TEMPLATES)
    assert metrics["n_docs"] > 0 and 0.0 <= metrics["accuracy"] <= 1.0

    nlp = spacy.load(model)
    doc = nlp("please refund the order today")
    assert set(doc.cats) == set(TEMPLATES)
    assert abs(sum(doc.cats.values()) - 1.0) < 1e-5
    assert doc._.decided_labels is not None

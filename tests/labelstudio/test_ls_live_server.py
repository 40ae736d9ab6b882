"""End to end against a real Label Studio server started from its own virtualenv.

Create a project, import tasks, annotate through the API (two annotators who disagree on
one task, one skipped task), ``pull`` into a ``.spacy`` corpus, train a small BOW
classifier, ``push`` its predictions for the unlabelled tasks, read them back through the
SDK, and check that the server is gone afterwards. The only allowed skip: the server's
virtualenv is absent (see ``ls_testing.skip_without_server_venv``).
"""

from __future__ import annotations

import csv
import socket
from pathlib import Path
from typing import Any

import httpx
import pytest
import spacy
import srsly
from ls_testing import (
    DATA_DIR,
    LabelStudioServer,
    process_group_alive,
    running_labelstudio,
    train_bow_pipeline,
)
from typer.testing import CliRunner

from textcat_kit.data.records import read_docbin_records
from textcat_kit.labelstudio.cli import app
from textcat_kit.labelstudio.config import parse_label_config
from textcat_kit.labelstudio.importer import TASK_ID_KEY
from textcat_kit.labelstudio.predictions import predict_tasks

LABELS = ("card_arrival", "exchange_rate", "extra_charge_on_statement")
LABEL_CONFIG = f"""<View>
  <Text name="text" value="$text"/>
  <Choices name="intent" toName="text" choice="single" showInline="true">
    {"".join(f'<Choice value="{label}"/>' for label in LABELS)}
  </Choices>
</View>"""
PER_LABEL = 10  # tasks per label; the first 6 of each are annotated
MODEL_VERSION = "textcat-kit-bow-it-1"
runner = CliRunner()


def banking_tasks() -> list[dict[str, Any]]:
    """Ten banking77 training texts per label, in label blocks, with their source label."""
    by_label: dict[str, list[dict[str, Any]]] = {label: [] for label in LABELS}
    with (DATA_DIR / "banking77" / "train.csv").open(encoding="utf-8", newline="") as file:
        for row_number, row in enumerate(csv.DictReader(file)):
            bucket = by_label.get(row["category"])
            if bucket is not None and len(bucket) < PER_LABEL:
                text = row["text"].strip()
                bucket.append({"text": text, "gold": row["category"], "row": row_number})
    return [task for label in LABELS for task in by_label[label]]


def choice(label: str) -> list[dict[str, Any]]:
    return [
        {"from_name": "intent", "to_name": "text", "type": "choices", "value": {"choices": [label]}}
    ]


def port_open(url: str) -> bool:
    host, port = url.rsplit("//", 1)[1].split(":")
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex((host, int(port.rstrip("/")))) == 0


@pytest.mark.slow
def test_live_round_trip(
    labelstudio_server: LabelStudioServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from label_studio_sdk import LabelStudio

    server = labelstudio_server
    client = LabelStudio(
        base_url=server.url,
        api_key=server.token,
        httpx_client=httpx.Client(trust_env=False, timeout=60),
    )
    admin_id = client.users.whoami().id
    annotator2 = client.users.create(
        username="annotator2", email="annotator2@example.com", password="annotator2-pw-1"
    )
    project = client.projects.create(title="textcat-kit round trip", label_config=LABEL_CONFIG)
    assert project.id is not None
    tasks = banking_tasks()
    client.projects.import_tasks(
        id=project.id,
        request=[{"data": t} for t in tasks],  # type: ignore[misc]
    )
    listed: list[Any] = list(client.tasks.list(project=project.id))
    task_id_by_row = {item.data["row"]: item.id for item in listed}
    ids = [task_id_by_row[t["row"]] for t in tasks]
    assert len(set(ids)) == len(tasks) == 3 * PER_LABEL

    annotated = [i for i in range(len(tasks)) if i % PER_LABEL < 6]
    for position in annotated:
        client.annotations.create(
            id=ids[position],
            result=choice(tasks[position]["gold"]),
            completed_by=admin_id,
            was_cancelled=False,
            ground_truth=False,
            lead_time=3.0,
        )
    conflict_position, skipped_position = 0, 6
    client.annotations.create(
        id=ids[conflict_position],
        result=choice("exchange_rate"),
        completed_by=annotator2.id,
        lead_time=4.0,
    )
    client.annotations.create(
        id=ids[skipped_position],
        result=[],
        completed_by=admin_id,
        was_cancelled=True,
    )
    unlabelled_ids = sorted(
        ids[i] for i in range(len(tasks)) if i not in annotated and i != skipped_position
    )

    # --- pull -------------------------------------------------------------------
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", server.token)
    corpus = tmp_path / "corpus"
    common = ["--url", server.url, "--project-id", str(project.id)]
    pulled = runner.invoke(
        app,
        [
            "pull",
            str(corpus / "ls.spacy"),
            *common,
            "--unlabelled",
            str(corpus / "unlabelled.jsonl"),
            "--summary",
            str(corpus / "summary.json"),
            "--raw-export",
            str(corpus / "export.json"),
        ],
    )
    assert pulled.exit_code == 0, pulled.output
    summary = srsly.read_json(corpus / "summary.json")
    assert summary["tasks_in"] == 30
    assert summary["imported"] == 17
    assert summary["unlabelled"] == 11
    assert summary["skipped"] == {"cancelled": 1}
    assert summary["dropped"] == 1
    assert summary["balanced"] is True
    assert summary["dropped_task_ids"] == [ids[conflict_position]]
    assert summary["conflicts"][0]["votes"] == {"card_arrival": 1, "exchange_rate": 1}
    unlabelled = list(srsly.read_jsonl(corpus / "unlabelled.jsonl"))
    assert sorted(u[TASK_ID_KEY] for u in unlabelled) == unlabelled_ids
    records = read_docbin_records(corpus / "ls.spacy")
    assert len(records) == 17
    gold = {ids[i]: tasks[i]["gold"] for i in range(len(tasks))}
    for record in records:
        assert record.labels == [gold[record.meta[TASK_ID_KEY]]]

    # --- train a small pipeline ------------------------------------------------------
    nlp = train_bow_pipeline(records, LABELS, exclusive=True, epochs=10)
    train_hits = sum(
        max(doc.cats, key=doc.cats.__getitem__) == record.labels[0]
        for record, doc in zip(records, nlp.pipe(r.text for r in records), strict=True)
    )
    assert train_hits >= 15  # it learned its 17 training texts
    model_dir = tmp_path / "model"
    nlp.to_disk(model_dir)

    # --- push, then read back through the SDK -------------------------------------
    pushed = runner.invoke(
        app,
        [
            "push",
            str(model_dir),
            *common,
            "--model-version",
            MODEL_VERSION,
            "--summary",
            str(tmp_path / "push.json"),
        ],
    )
    assert pushed.exit_code == 0, pushed.output
    assert "pushed 11 of 11" in pushed.output
    scheme = parse_label_config(LABEL_CONFIG)
    expected = {
        p.task_id: p
        for p in predict_tasks(
            spacy.load(model_dir),
            [(u[TASK_ID_KEY], u["text"]) for u in unlabelled],
            scheme,
            model_version=MODEL_VERSION,
        )
    }
    predictions = client.predictions.list(project=project.id)
    assert sorted(p.task for p in predictions) == unlabelled_ids
    for prediction in predictions:
        mine = expected[prediction.task]
        assert prediction.model_version == MODEL_VERSION
        assert prediction.score == pytest.approx(mine.score, abs=1e-5)
        assert 1 / len(LABELS) <= prediction.score <= 1.0
        (result,) = prediction.result
        assert (result["from_name"], result["to_name"], result["type"]) == (
            "intent",
            "text",
            "choices",
        )
        assert result["value"]["choices"] == list(mine.labels)
        assert result["value"]["choices"][0] in LABELS
    push_summary = srsly.read_json(tmp_path / "push.json")
    least = [p["score"] for p in push_summary["least_confident"]]
    assert least == sorted(least)

    # --- push again: idempotent per model version (issue 14) --------------------------
    again = runner.invoke(app, ["push", str(model_dir), *common, "--model-version", MODEL_VERSION])
    assert again.exit_code == 0, again.output
    assert "0 new, 0 updated, 11 unchanged" in again.output
    assert len(client.predictions.list(project=project.id)) == 11

    # The API key is never printed or written.
    for output in (pulled.output, pushed.output):
        assert server.token not in output
    for path in [*corpus.rglob("*"), tmp_path / "push.json", *model_dir.rglob("*")]:
        if path.is_file():
            assert server.token.encode() not in path.read_bytes(), path


@pytest.mark.slow
def test_server_is_stopped_and_gone(tmp_path: Path) -> None:
    """SIGTERM at the end of ``running_labelstudio`` (what the session fixture's teardown
    does) leaves no process of the server and nothing listening on its port."""
    with running_labelstudio(tmp_path) as server:
        assert server.process.poll() is None
        assert port_open(server.url)
    assert server.process.returncode is not None
    assert not process_group_alive(server.process.pid)
    assert not port_open(server.url)

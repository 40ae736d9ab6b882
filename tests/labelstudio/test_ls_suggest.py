"""``labelstudio push-issues`` and ``labelstudio suggest``: offline parts, then against a
real Label Studio server (the fixture of ``conftest.py``; skipped only without its venv).

Live: suspected label errors go to a review project created by title, with the
suggestion as a prediction; pushing again adds nothing; a reviewer's fix comes back
through ``labelstudio pull``. Suggest pushes predictions for the most uncertain
unlabelled tasks, at most ``--max-per-label`` per predicted label; again adds nothing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import spacy
import srsly
from ls_testing import LabelStudioServer, train_bow_pipeline
from typer.testing import CliRunner

from textcat_kit.data.records import Record, read_docbin_records
from textcat_kit.errors import ConfigError, DataError
from textcat_kit.labelstudio.cli import app
from textcat_kit.labelstudio.config import parse_label_config
from textcat_kit.labelstudio.suggest import (
    ISSUE_KEY,
    issue_key,
    issue_tasks,
    rank_tasks,
    read_issues,
    review_label_config,
)

LABELS = ("card_arrival", "exchange_rate", "top_up_failed")
TRAIN = [
    ("my card has not arrived yet", "card_arrival"),
    ("when will my new card arrive", "card_arrival"),
    ("still waiting for the card in the post", "card_arrival"),
    ("card delivery is taking too long", "card_arrival"),
    ("what is the exchange rate today", "exchange_rate"),
    ("how much is a euro in pounds", "exchange_rate"),
    ("which rate do you use to convert currency", "exchange_rate"),
    ("exchange rate for dollars please", "exchange_rate"),
    ("my top up failed", "top_up_failed"),
    ("the top up did not go through", "top_up_failed"),
    ("topping up my account is not working", "top_up_failed"),
    ("why was my top up declined", "top_up_failed"),
]
ISSUES = [
    {"rank": 1, "id": "7", "text": "my card has not arrived yet", "given": "exchange_rate",
     "suggested": "card_arrival", "score": 0.97},
    {"rank": 2, "id": "3", "text": "the top up did not go through", "given": "card_arrival",
     "suggested": "top_up_failed", "score": 0.91},
    {"rank": 3, "id": "9", "text": "exchange rate & fees?", "given": "top_up_failed",
     "suggested": "exchange_rate", "score": 0.80},
]  # fmt: skip
UNLABELLED = [
    "card arrival time",
    "when does the card come",
    "rate for yen",
    "top up problem",
    "card or exchange rate, not sure",
    "is my top up or my card the problem",
    "exchange my top up",
    "hello there",
    "card card card",
]
runner = CliRunner()


def test_review_config_parses_with_special_characters() -> None:
    labels = ["a & b", 'quote "q"', "<tag>"]
    scheme = parse_label_config(review_label_config(labels, exclusive=False))
    assert list(scheme.labels) == labels
    assert scheme.exclusive is False
    assert scheme.text_field == "text"
    assert parse_label_config(review_label_config(labels, exclusive=True)).exclusive


def test_issue_tasks_carry_the_suggestion_and_a_stable_key() -> None:
    scheme = parse_label_config(review_label_config(LABELS, exclusive=True))
    tasks = issue_tasks(ISSUES, scheme, "cv-1")
    assert len(tasks) == 3
    first = tasks[0]
    assert first["data"]["text"] == ISSUES[0]["text"]
    assert first["data"]["given"] == "exchange_rate"
    assert first["data"][ISSUE_KEY] == issue_key(ISSUES[0]["text"], "exchange_rate")
    assert first["predictions"][0]["result"][0]["value"]["choices"] == ["card_arrival"]
    # the key depends on text and given labels only (order of a multi-label list ignored)
    assert issue_key("t", ["b", "a"]) == issue_key("t", ["a", "b"]) != issue_key("t", ["a"])
    with pytest.raises(ConfigError, match=r"\[E409\].*'nope'"):
        issue_tasks([{**ISSUES[0], "suggested": "nope"}], scheme, "cv-1")


def test_read_issues_names_the_bad_line(tmp_path: Path) -> None:
    path = tmp_path / "issues.jsonl"
    path.write_text(
        srsly.json_dumps(ISSUES[0]) + "\n\n" + '{"text": "x", "given": "a"}\n', encoding="utf-8"
    )
    with pytest.raises(DataError, match=r"\[E408\].*:3: .*suggested"):
        read_issues(path)
    path.write_text("not json\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"\[E408\].*:1:"):
        read_issues(path)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    records = [Record(text=text, labels=[label]) for text, label in TRAIN]
    nlp = train_bow_pipeline(records, LABELS, exclusive=True, epochs=15)
    path = tmp_path_factory.mktemp("suggest-model") / "model"
    nlp.to_disk(path)
    return path


def test_rank_tasks_takes_the_most_uncertain_under_a_label_cap(model_dir: Path) -> None:
    nlp = spacy.load(model_dir)
    scheme = parse_label_config(review_label_config(LABELS, exclusive=True))
    tasks = list(enumerate(UNLABELLED, 100))
    chosen, scores, probs, _ = rank_tasks(nlp, tasks, scheme, n=4, max_per_label=1)
    predicted = probs.argmax(axis=1)
    # at most one pick per predicted label while others remain, most uncertain first
    first_three = chosen[:3]
    assert len(set(predicted[first_three].tolist())) == 3
    assert len(chosen) == 4
    for label in range(3):
        members = np.flatnonzero(predicted == label)
        best = members[np.argmax(scores[members])]
        assert best in first_three
    unguarded, _, _, _ = rank_tasks(nlp, tasks, scheme, n=4, max_per_label=100)
    assert unguarded == np.argsort(-scores, kind="stable")[:4].tolist()


def _client(server: LabelStudioServer) -> Any:
    from label_studio_sdk import LabelStudio

    return LabelStudio(
        base_url=server.url,
        api_key=server.token,
        httpx_client=httpx.Client(trust_env=False, timeout=60),
    )


@pytest.mark.slow
def test_push_issues_live_idempotent_and_fixes_come_back(
    labelstudio_server: LabelStudioServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = labelstudio_server
    client = _client(server)
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", server.token)
    cv_dir = tmp_path / "cv"
    cv_dir.mkdir()
    srsly.write_jsonl(cv_dir / "label_issues.jsonl", ISSUES)
    srsly.write_json(cv_dir / "labels.json", list(LABELS))
    args = [
        "push-issues",
        str(cv_dir / "label_issues.jsonl"),
        "--url",
        server.url,
        "--project-title",
        "textcat-kit review (test)",
        "--summary",
        str(tmp_path / "push1.json"),
    ]
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    summary = srsly.read_json(tmp_path / "push1.json")
    assert summary["created_project"] is True
    assert (summary["issues"], summary["already_there"], summary["pushed"]) == (3, 0, 3)
    project_id = summary["project_id"]
    tasks = list(client.tasks.list(project=project_id, fields="all"))
    assert sorted(t.data["text"] for t in tasks) == sorted(i["text"] for i in ISSUES)
    by_text = {t.data["text"]: t for t in tasks}
    for issue in ISSUES:
        task = by_text[issue["text"]]
        assert task.data["given"] == issue["given"]
        (prediction,) = task.predictions
        assert prediction.result[0]["value"]["choices"] == [issue["suggested"]]
        assert prediction.model_version == "textcat-kit-cv"

    # again: same project found by title, nothing duplicated
    args[-1] = str(tmp_path / "push2.json")
    second = runner.invoke(app, args)
    assert second.exit_code == 0, second.output
    again = srsly.read_json(tmp_path / "push2.json")
    assert (again["project_id"], again["created_project"]) == (project_id, False)
    assert (again["already_there"], again["pushed"]) == (3, 0)
    assert len(list(client.tasks.list(project=project_id))) == 3

    # a reviewer accepts one suggestion and keeps the given label of another
    admin = client.users.whoami().id
    for text, label in ((ISSUES[0]["text"], "card_arrival"), (ISSUES[2]["text"], "top_up_failed")):
        client.annotations.create(
            id=by_text[text].id,
            result=[
                {
                    "from_name": "label",
                    "to_name": "text",
                    "type": "choices",
                    "value": {"choices": [label]},
                }
            ],
            completed_by=admin,
        )
    pulled = runner.invoke(
        app,
        [
            "pull",
            str(tmp_path / "reviewed.spacy"),
            "--url",
            server.url,
            "--project-id",
            str(project_id),
            "--summary",
            str(tmp_path / "pull.json"),
        ],
    )
    assert pulled.exit_code == 0, pulled.output
    fixed = {r.text: r.labels for r in read_docbin_records(tmp_path / "reviewed.spacy")}
    assert fixed == {ISSUES[0]["text"]: ["card_arrival"], ISSUES[2]["text"]: ["top_up_failed"]}


@pytest.mark.slow
def test_suggest_live_pushes_the_most_uncertain_once(
    labelstudio_server: LabelStudioServer,
    model_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    server = labelstudio_server
    client = _client(server)
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", server.token)
    project = client.projects.create(
        title="textcat-kit suggest (test)", label_config=review_label_config(LABELS, exclusive=True)
    )
    client.projects.import_tasks(
        id=project.id, request=[{"data": {"text": text}} for text in UNLABELLED]
    )
    ids = {t.data["text"]: t.id for t in client.tasks.list(project=project.id)}
    # one task is already annotated: never suggested
    admin = client.users.whoami().id
    client.annotations.create(
        id=ids["hello there"],
        result=[
            {
                "from_name": "label",
                "to_name": "text",
                "type": "choices",
                "value": {"choices": ["card_arrival"]},
            }
        ],
        completed_by=admin,
    )
    args = [
        "suggest",
        str(model_dir),
        "--url",
        server.url,
        "--project-id",
        str(project.id),
        "--n",
        "3",
        "--max-per-label",
        "1",
        "--model-version",
        "al-1",
        "--summary",
        str(tmp_path / "s1.json"),
    ]
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    summary = srsly.read_json(tmp_path / "s1.json")
    assert (summary["unlabelled"], summary["pushed"], summary["already_suggested"]) == (8, 3, 0)

    nlp = spacy.load(model_dir)
    scheme = parse_label_config(review_label_config(LABELS, exclusive=True))
    candidates = [(ids[text], text) for text in UNLABELLED if text != "hello there"]
    chosen, _, _, _ = rank_tasks(nlp, candidates, scheme, n=3, max_per_label=1)
    expected = sorted(candidates[i][0] for i in chosen)
    predictions = client.predictions.list(project=project.id)
    assert sorted(p.task for p in predictions) == expected
    assert {p.model_version for p in predictions} == {"al-1"}
    assert all(0.0 <= p.score <= 1.0 for p in predictions)

    args[-1] = str(tmp_path / "s2.json")
    second = runner.invoke(app, args)
    assert second.exit_code == 0, second.output
    again = srsly.read_json(tmp_path / "s2.json")
    assert (again["pushed"], again["already_suggested"]) == (0, 3)
    assert len(client.predictions.list(project=project.id)) == 3

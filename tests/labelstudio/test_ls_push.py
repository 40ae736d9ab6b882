"""Predictions as pre-annotations, and pull/push through the SDK client (a fake server
here; the real one is in test_ls_live_server.py). The API key must never leak."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import label_studio_sdk
import pytest
import srsly
from label_studio_sdk.core.api_error import ApiError
from ls_testing import REAL_EXPORTS, free_port, train_bow_pipeline
from spacy.language import Language
from spacy.tokens import Doc
from typer.testing import CliRunner

from textcat_kit.errors import ConfigError
from textcat_kit.labelstudio.cli import app
from textcat_kit.labelstudio.client import (
    LabelStudioError,
    LabelStudioProject,
    api_key_from_env,
    pull,
    push,
    read_unlabelled_jsonl,
)
from textcat_kit.labelstudio.config import load_labeling_scheme
from textcat_kit.labelstudio.importer import import_export
from textcat_kit.labelstudio.predictions import (
    DECIDED_LABELS_ATTRS,
    choices_result,
    choose_labels,
    decision_confidence,
    predict_tasks,
)

BANKING = REAL_EXPORTS / "banking77_single"
SECRET = "sk-live-TEXTCATKIT-do-not-leak-0123456789"
UNLABELLED_IDS = list(range(41, 51))
runner = CliRunner()


@pytest.fixture(scope="module")
def banking_model(tmp_path_factory: pytest.TempPathFactory) -> tuple[Language, Path]:
    scheme = load_labeling_scheme(BANKING / "label_config.xml")
    records = import_export(BANKING / "export_JSON_all_tasks.json", scheme).records
    nlp = train_bow_pipeline(records, scheme.labels, exclusive=True, epochs=8)
    path = tmp_path_factory.mktemp("model") / "banking-bow"
    nlp.to_disk(path)
    return nlp, path


class FakeExports:
    def __init__(self, export_path: Path) -> None:
        self.export_path = export_path
        self.calls: list[dict[str, Any]] = []

    def download_sync(
        self, id: int, *, export_type: str, download_all_tasks: bool
    ) -> Iterator[bytes]:
        self.calls.append({"id": id, "type": export_type, "all": download_all_tasks})
        data = self.export_path.read_bytes()
        yield from (data[i : i + 4096] for i in range(0, len(data), 4096))


class FakeProjects:
    def __init__(self, export_path: Path) -> None:
        self.exports = FakeExports(export_path)
        self.predictions: list[Any] = []
        self.stored: list[Any] = []

    def get(self, id: int) -> Any:
        if id != 1:
            raise ApiError(status_code=404, body={"detail": "No Project matches the given query."})
        return SimpleNamespace(label_config=(BANKING / "label_config.xml").read_text("utf-8"))

    def import_predictions(self, id: int, request: list[Any]) -> Any:
        self.predictions.extend(request)
        for item in request:
            self.stored.append(
                SimpleNamespace(
                    id=len(self.stored) + 1,
                    task=item.task,
                    model_version=item.model_version,
                    result=item.result,
                    score=item.score,
                )
            )
        return SimpleNamespace(created=len(request))


class FakePredictions:
    """``client.predictions``: list / update over what ``import_predictions`` stored."""

    def __init__(self, projects: FakeProjects) -> None:
        self.projects = projects
        self.updates: list[dict[str, Any]] = []

    def list(self, *, project: int | None = None, task: int | None = None) -> list[Any]:
        return [p for p in self.projects.stored if task is None or p.task == task]

    def update(self, id: int, **fields: Any) -> Any:
        (prediction,) = [p for p in self.projects.stored if p.id == id]
        for key, value in fields.items():
            setattr(prediction, key, value)
        self.updates.append({"id": id, **fields})
        return prediction


class FakeLabelStudio:
    """Stands in for ``label_studio_sdk.LabelStudio``; records how it was built."""

    instances: list[FakeLabelStudio] = []

    def __init__(
        self, *, base_url: str, api_key: str, httpx_client: Any = None, max_retries: int = 2
    ) -> None:
        self.base_url = base_url
        self.api_key = api_key
        self.projects = FakeProjects(BANKING / "export_JSON_all_tasks.json")
        self.predictions = FakePredictions(self.projects)
        FakeLabelStudio.instances.append(self)


@pytest.fixture()
def fake_sdk(monkeypatch: pytest.MonkeyPatch) -> type[FakeLabelStudio]:
    FakeLabelStudio.instances = []
    monkeypatch.setattr(label_studio_sdk, "LabelStudio", FakeLabelStudio)
    return FakeLabelStudio


def assert_no_secret(tmp_path: Path, *outputs: str) -> None:
    for output in outputs:
        assert SECRET not in output
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path


# ------------------------------------------------------------------ pure logic


def test_choose_labels_and_confidence() -> None:
    cats = {"a": 0.7, "b": 0.2, "c": 0.1}
    assert choose_labels(cats, exclusive=True) == ["a"]
    assert decision_confidence(cats, ["a"], exclusive=True) == pytest.approx(0.7)
    multi = {"a": 0.9, "b": 0.55, "c": 0.05}
    assert choose_labels(multi, exclusive=False) == ["a", "b"]
    assert choose_labels(multi, exclusive=False, threshold=0.6) == ["a"]
    # Weakest part of the decision: b chosen at 0.55.
    assert decision_confidence(multi, ["a", "b"], exclusive=False) == pytest.approx(0.55)
    assert decision_confidence(multi, ["a"], exclusive=False) == pytest.approx(0.45)
    assert choose_labels({}, exclusive=True) == []


def test_choices_result_uses_the_config_names() -> None:
    scheme = load_labeling_scheme(BANKING / "label_config.xml")
    assert choices_result(["card_arrival"], scheme) == [
        {
            "from_name": "label",
            "to_name": "text",
            "type": "choices",
            "value": {"choices": ["card_arrival"]},
        }
    ]
    assert choices_result([], scheme) == []


def test_predict_tasks_orders_least_confident_first(banking_model: tuple[Language, Path]) -> None:
    nlp, _ = banking_model
    scheme = load_labeling_scheme(BANKING / "label_config.xml")
    tasks = [
        (1, "I am still waiting on my card?"),
        (2, "What is the exchange rate?"),
        (3, "Why was I charged an extra fee on my statement?"),
    ]
    payloads = predict_tasks(nlp, tasks, scheme, model_version="bow-1")
    assert sorted(p.task_id for p in payloads) == [1, 2, 3]
    assert [p.score for p in payloads] == sorted(p.score for p in payloads)
    for payload in payloads:
        cats = nlp(dict(tasks)[payload.task_id]).cats
        assert payload.labels == (max(cats, key=cats.__getitem__),)
        assert payload.score == pytest.approx(max(cats.values()), abs=1e-6)
        request = payload.to_request()
        assert request["model_version"] == "bow-1"
        assert request["result"][0]["from_name"] == "label"
        assert request["result"][0]["value"]["choices"] == list(payload.labels)


def test_label_choice_can_be_swapped(banking_model: tuple[Language, Path]) -> None:
    nlp, _ = banking_model
    scheme = load_labeling_scheme(BANKING / "label_config.xml")
    tasks = [(1, "card please"), (2, "rates")]
    fixed = predict_tasks(nlp, tasks, scheme, model_version="v", choose=lambda d: ["card_linking"])
    assert {p.labels for p in fixed} == {("card_linking",)}
    for attr, decided_labels in zip(
        DECIDED_LABELS_ATTRS, (["exchange_rate"], ["card_arrival"]), strict=True
    ):
        existing = Doc.get_extension(attr)
        Doc.set_extension(attr, default=decided_labels, force=True)
        try:
            decided = predict_tasks(nlp, tasks, scheme, model_version="v")
        finally:
            Doc.remove_extension(attr)
            if existing is not None:
                default, method, getter, setter = existing
                Doc.set_extension(
                    attr, default=default, method=method, getter=getter, setter=setter
                )
        assert {p.labels for p in decided} == {tuple(decided_labels)}
    with pytest.raises(ConfigError, match=r"\[E129\].*'nope'.*task 1"):
        predict_tasks(nlp, tasks, scheme, model_version="v", choose=lambda d: ["nope"])


def test_decided_labels_attribute_is_the_decision_components() -> None:
    from textcat_kit.pipeline.decision import EXTENSION

    assert DECIDED_LABELS_ATTRS[0] == EXTENSION


def test_pipeline_without_the_project_labels_is_refused() -> None:
    import spacy

    scheme = load_labeling_scheme(BANKING / "label_config.xml")
    with pytest.raises(ConfigError, match=r"\[E128\].*'card_arrival'"):
        predict_tasks(spacy.blank("en"), [(1, "text")], scheme, model_version="v")


# ------------------------------------------------------------ client, fake SDK


def test_api_key_only_from_the_named_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MY_LS_KEY", raising=False)
    with pytest.raises(ConfigError) as info:
        api_key_from_env("MY_LS_KEY")
    assert "[E124]" in str(info.value) and "MY_LS_KEY" in str(info.value)
    monkeypatch.setenv("MY_LS_KEY", SECRET)
    assert api_key_from_env("MY_LS_KEY") == SECRET


def test_pull_and_push_through_the_client(
    fake_sdk: type[FakeLabelStudio],
    banking_model: tuple[Language, Path],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", SECRET)
    project = LabelStudioProject.connect("http://ls.test:8080/", 1)
    (client,) = fake_sdk.instances
    assert (client.base_url, client.api_key) == ("http://ls.test:8080", SECRET)
    result = pull(project, raw_export_output=tmp_path / "raw" / "export.json")
    assert (result.summary.imported, result.summary.unlabelled) == (36, 10)
    assert client.projects.exports.calls[0] == {"id": 1, "type": "JSON", "all": True}
    assert (tmp_path / "raw" / "export.label_config.xml").read_text("utf-8").startswith("<View>")
    nlp, _ = banking_model
    summary, payloads = push(project, nlp, model_version="bow-1", limit=4)
    assert summary.pushed == 4 and summary.tasks == 10
    sent = client.projects.predictions
    assert [p.task for p in sent] == [p.task_id for p in payloads]
    assert all(p.task in UNLABELLED_IDS and p.model_version == "bow-1" for p in sent)
    assert [p.score for p in sent] == sorted(p.score for p in sent)
    all_scores = [p.score for p in push(project, nlp, model_version="x", dry_run=True)[1]]
    assert [p.score for p in sent] == all_scores[:4]  # the 4 least confident of 10
    assert_no_secret(tmp_path)


def test_server_errors_are_coded_and_carry_no_key(
    fake_sdk: type[FakeLabelStudio], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", SECRET)
    project = LabelStudioProject.connect("http://ls.test:8080", 7)
    with pytest.raises(LabelStudioError) as info:
        project.label_config()
    message = str(info.value)
    assert "[E126]" in message and "404" in message and "LABEL_STUDIO_API_KEY" in message
    assert SECRET not in message and info.value.__cause__ is None


def test_unreachable_server_with_the_real_sdk(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", SECRET)
    project = LabelStudioProject.connect(
        f"http://127.0.0.1:{free_port()}", 1, timeout=5, max_retries=0
    )
    with pytest.raises(LabelStudioError) as info:
        project.label_config()
    assert "[E127]" in str(info.value) and SECRET not in str(info.value)


def test_cli_pull_push_never_print_or_write_the_key(
    fake_sdk: type[FakeLabelStudio],
    banking_model: tuple[Language, Path],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    monkeypatch.delenv("LABEL_STUDIO_API_KEY", raising=False)
    monkeypatch.setenv("TEAM_LS_TOKEN", SECRET)
    common = ["--url", "http://ls.test:8080", "--project-id", "1", "--api-key-env", "TEAM_LS_TOKEN"]
    pulled = runner.invoke(
        app,
        [
            "pull",
            str(tmp_path / "corpus" / "ls.spacy"),
            *common,
            "--unlabelled",
            str(tmp_path / "corpus" / "todo.jsonl"),
            "--summary",
            str(tmp_path / "corpus" / "summary.json"),
            "--raw-export",
            str(tmp_path / "corpus" / "export.json"),
        ],
    )
    assert pulled.exit_code == 0, pulled.output
    assert "imported 36" in pulled.output
    assert fake_sdk.instances[-1].api_key == SECRET
    assert len(read_unlabelled_jsonl(tmp_path / "corpus" / "todo.jsonl")) == 10
    _, model_path = banking_model
    pushed = runner.invoke(
        app,
        [
            "push",
            str(model_path),
            *common,
            "--model-version",
            "bow-cli",
            "--tasks",
            str(tmp_path / "corpus" / "todo.jsonl"),
            "--summary",
            str(tmp_path / "push.json"),
        ],
    )
    assert pushed.exit_code == 0, pushed.output
    assert "pushed 10 of 10" in pushed.output
    assert srsly.read_json(tmp_path / "push.json")["model_version"] == "bow-cli"
    sent = fake_sdk.instances[-1].projects.predictions
    assert sorted(p.task for p in sent) == UNLABELLED_IDS
    assert_no_secret(tmp_path, pulled.output, pushed.output)


def test_cli_without_the_key_names_the_variable_only(
    fake_sdk: type[FakeLabelStudio], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("LABEL_STUDIO_API_KEY", raising=False)
    result = runner.invoke(app, ["pull", str(tmp_path / "x.spacy"), "--project-id", "1"])
    assert result.exit_code == 1
    assert "[E124]" in result.output and "LABEL_STUDIO_API_KEY" in result.output
    assert fake_sdk.instances == []


def test_read_unlabelled_jsonl_errors_name_the_line(tmp_path: Path) -> None:
    path = tmp_path / "todo.jsonl"
    path.write_text('{"ls_task_id": 3, "text": "a"}\n{"text": "b"}\n', encoding="utf-8")
    with pytest.raises(Exception, match=r"\[E131\].*line 2"):
        read_unlabelled_jsonl(path)


# ------------------------------------------------- issue 14: idempotent, safe push


def test_pushing_twice_never_duplicates(
    fake_sdk: type[FakeLabelStudio],
    banking_model: tuple[Language, Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", SECRET)
    project = LabelStudioProject.connect("http://ls.test:8080", 1)
    (client,) = fake_sdk.instances
    nlp, _ = banking_model
    first, _ = push(project, nlp, model_version="bow-1")
    assert (first.created, first.updated, first.unchanged) == (10, 0, 0)
    again, _ = push(project, nlp, model_version="bow-1")
    assert (again.created, again.updated, again.unchanged) == (0, 0, 10)
    assert len(client.projects.stored) == 10  # nothing duplicated on the server
    # Another model version is a new set of predictions, not an update.
    other, _ = push(project, nlp, model_version="bow-2", limit=3)
    assert other.created == 3 and len(client.projects.stored) == 13
    # Changed predictions of the same version are updated in place, or kept with skip.
    changed = lambda doc: ["card_linking"]  # noqa: E731
    kept, _ = push(project, nlp, model_version="bow-1", choose=changed, existing="skip")
    # (tasks the model already put in card_linking are unchanged either way)
    assert (kept.created, kept.updated) == (0, 0) and kept.kept_existing > 0
    assert kept.kept_existing + kept.unchanged == 10
    updated, _ = push(project, nlp, model_version="bow-1", choose=changed)
    assert (updated.created, updated.updated) == (0, kept.kept_existing)
    assert len(client.projects.stored) == 13
    assert len(client.predictions.updates) == kept.kept_existing
    bow1 = [p for p in client.projects.stored if p.model_version == "bow-1"]
    assert {p.result[0]["value"]["choices"][0] for p in bow1} == {"card_linking"}


def test_empty_texts_get_no_prefilled_label(
    fake_sdk: type[FakeLabelStudio],
    banking_model: tuple[Language, Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", SECRET)
    project = LabelStudioProject.connect("http://ls.test:8080", 1)
    nlp, _ = banking_model
    tasks = [(41, ""), (42, "   \n"), (43, "Where is my card?")]
    summary, payloads = push(project, nlp, model_version="v", tasks=tasks)
    assert [p.task_id for p in payloads] == [43]
    assert summary.empty_text_task_ids == [41, 42]
    assert "2 skipped (empty text)" in summary.render()
    sent = fake_sdk.instances[-1].projects.predictions
    assert [p.task for p in sent] == [43]


def test_server_error_bodies_are_scrubbed(
    fake_sdk: type[FakeLabelStudio], monkeypatch: pytest.MonkeyPatch
) -> None:
    from textcat_kit.labelstudio.client import scrub_error_body

    monkeypatch.setenv("LABEL_STUDIO_API_KEY", SECRET)
    project = LabelStudioProject.connect("http://ls.test:8080", 1)
    body = {
        "detail": f"Bad request with key {SECRET}",
        "headers": {"Authorization": f"Token {SECRET}", "Cookie": "sessionid=abc123def456"},
        "echo": "Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl",
    }

    def failing(id: int) -> Any:
        raise ApiError(status_code=400, body=body)

    monkeypatch.setattr(fake_sdk.instances[-1].projects, "get", failing)
    with pytest.raises(LabelStudioError) as info:
        project.label_config()
    message = str(info.value)
    assert "[E126]" in message and "400" in message and "Bad request" in message
    for leaked in (SECRET, "sessionid=abc", "eyJhbGci", "Cookie"):
        assert leaked not in message, leaked
    page = "<html><title>Server Error</title><body>HTTP_AUTHORIZATION 'Token abc'</body></html>"
    assert scrub_error_body(page) == f"HTML page 'Server Error' ({len(page)} characters)"
    assert "7e3c1f0a9b8d" not in scrub_error_body(
        "token=7e3c1f0a9b8d4e2f6a5c3b1d0e9f8a7b6c5d4e3f&x=1"
    )

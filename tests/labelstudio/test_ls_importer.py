"""Writing the corpus, the unlabelled tasks and the summary; the ``import`` command."""

from __future__ import annotations

import json
from pathlib import Path

import spacy
import srsly
from ls_testing import REAL_EXPORTS
from spacy.tokens import DocBin
from typer.testing import CliRunner

from textcat_kit.labelstudio.cli import app
from textcat_kit.labelstudio.config import load_labeling_scheme
from textcat_kit.labelstudio.importer import TASK_ID_KEY, import_export, write_import

BANKING = REAL_EXPORTS / "banking77_single"
GOEMOTIONS = REAL_EXPORTS / "goemotions_multi"
runner = CliRunner()


def test_write_import_docs_have_explicit_cats_and_task_ids(tmp_path: Path) -> None:
    scheme = load_labeling_scheme(GOEMOTIONS / "label_config.xml")
    result = import_export(GOEMOTIONS / "export_JSON_all_tasks.json", scheme, ties="soft")
    output = tmp_path / "corpus" / "train.spacy"
    written = write_import(
        result,
        output,
        unlabelled_output=tmp_path / "unlabelled.jsonl",
        summary_output=tmp_path / "summary.json",
    )
    assert written == {"train": 23}
    assert result.summary.imported == 23
    docs = list(DocBin().from_disk(output).get_docs(spacy.blank("en").vocab))
    assert len(docs) == 23
    for doc in docs:
        assert list(doc.cats) == list(scheme.labels)
        assert all(value in (0.0, 0.5, 1.0) for value in doc.cats.values())
        assert isinstance(doc.user_data[TASK_ID_KEY], int)
    by_id = {doc.user_data[TASK_ID_KEY]: doc for doc in docs}
    assert {k for k, v in by_id[69].cats.items() if v == 1.0} == {"desire", "optimism"}
    assert by_id[77].cats["admiration"] == 0.5 and by_id[77].cats["anger"] == 0.5
    assert by_id[80].text == 'Three words, no subtlety. "Dude. Stop. Seriously." '
    unlabelled = list(srsly.read_jsonl(tmp_path / "unlabelled.jsonl"))
    assert [u[TASK_ID_KEY] for u in unlabelled] == [71, 72, 73, 78, 79]
    assert unlabelled[0]["text"].startswith("Shit, I guess")
    assert unlabelled[0]["data"]["comment_id"] == "edivtm3"
    summary = srsly.read_json(tmp_path / "summary.json")
    assert summary["balanced"] is True
    assert summary["tasks_in"] == 30
    assert summary["skipped"] == {"cancelled": 1, "empty_result": 1}
    assert summary["annotations_excluded"] == {"cancelled": 1, "empty_result": 1}
    assert summary["resolutions"] == {"single": 21, "tie_soft": 2}
    assert [c["task_id"] for c in summary["conflicts"]] == [70, 77]
    assert summary["agreement"]["tasks_with_2plus_annotators"] == 2


def test_cli_import_prints_and_writes_the_accounting(tmp_path: Path) -> None:
    output = tmp_path / "train.spacy"
    result = runner.invoke(
        app,
        [
            "import",
            str(BANKING / "export_JSON_all_tasks.json"),
            str(output),
            "--config",
            str(BANKING / "label_config.xml"),
            "--unlabelled",
            str(tmp_path / "todo.jsonl"),
            "--summary",
            str(tmp_path / "summary.json"),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "tasks in    50 = imported 36 + unlabelled 10 + skipped 2 (cancelled 2) + dropped 2" in (
        result.output
    )
    assert "conflicts   2: task 1 (tie_dropped), 11 (tie_dropped)" in result.output
    assert "Wrote 36 docs" in result.output
    assert len(DocBin().from_disk(output)) == 36
    assert len(list(srsly.read_jsonl(tmp_path / "todo.jsonl"))) == 10
    assert srsly.read_json(tmp_path / "summary.json")["dropped_task_ids"] == [1, 11]


def test_cli_import_without_config_needs_every_override(tmp_path: Path) -> None:
    export = BANKING / "export_CSV_all_tasks.csv"
    missing = runner.invoke(
        app, ["import", str(export), str(tmp_path / "x.spacy"), "--choices-name", "label"]
    )
    assert missing.exit_code == 1
    assert "[E132]" in missing.output and "--text-field" in missing.output
    labels = tmp_path / "labels.json"
    labels.write_text(
        json.dumps(
            [
                "card_arrival",
                "card_linking",
                "exchange_rate",
                "card_payment_wrong_exchange_rate",
                "extra_charge_on_statement",
            ]
        ),
        encoding="utf-8",
    )
    result = runner.invoke(
        app,
        [
            "import",
            str(export),
            str(tmp_path / "x.spacy"),
            "--choices-name",
            "label",
            "--text-field",
            "text",
            "--labels",
            str(labels),
            "--exclusive",
            "--ties",
            "first",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "imported 38" in result.output and "tie_first 2" in result.output


def test_cli_import_reports_bad_data_without_traceback(tmp_path: Path) -> None:
    result = runner.invoke(
        app,
        [
            "import",
            str(GOEMOTIONS / "export_JSON_all_tasks.json"),
            str(tmp_path / "x.spacy"),
            "--config",
            str(BANKING / "label_config.xml"),
        ],
    )
    assert result.exit_code == 1
    assert "[E115]" in result.output and "task id 51" in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "x.spacy").exists()


def test_cli_import_rejects_unknown_tie_policy_and_format(tmp_path: Path) -> None:
    base = [
        "import",
        str(BANKING / "export_CSV_all_tasks.csv"),
        str(tmp_path / "x.spacy"),
        "--config",
        str(BANKING / "label_config.xml"),
    ]
    assert "[E130]" in runner.invoke(app, [*base, "--ties", "vote"]).output
    assert "[E117]" in runner.invoke(app, [*base, "--format", "XML"]).output
    forced = runner.invoke(app, [*base, "--format", "csv"])
    assert forced.exit_code == 0, forced.output


def test_cli_import_splits_train_dev_test(tmp_path: Path) -> None:
    parts = {part: tmp_path / f"{part}.spacy" for part in ("train", "dev", "test")}
    result = runner.invoke(
        app,
        [
            "import",
            str(BANKING / "export_JSON_all_tasks.json"),
            str(parts["train"]),
            "--config",
            str(BANKING / "label_config.xml"),
            "--dev-output",
            str(parts["dev"]),
            "--dev-fraction",
            "0.2",
            "--test-output",
            str(parts["test"]),
            "--test-fraction",
            "0.2",
            "--summary",
            str(tmp_path / "summary.json"),
            "--seed",
            "3",
        ],
    )
    assert result.exit_code == 0, result.output
    vocab = spacy.blank("en").vocab
    ids = {
        part: {doc.user_data[TASK_ID_KEY] for doc in DocBin().from_disk(path).get_docs(vocab)}
        for part, path in parts.items()
    }
    assert sum(map(len, ids.values())) == 36
    assert not (ids["train"] & ids["dev"] or ids["train"] & ids["test"] or ids["dev"] & ids["test"])
    assert 5 <= len(ids["dev"]) <= 9 and 5 <= len(ids["test"]) <= 9
    splits = srsly.read_json(tmp_path / "summary.json")["splits"]
    assert splits == {part: len(found) for part, found in ids.items()}
    bad = runner.invoke(
        app,
        [
            "import",
            str(BANKING / "export_JSON_all_tasks.json"),
            str(parts["train"]),
            "--config",
            str(BANKING / "label_config.xml"),
            "--dev-output",
            str(parts["dev"]),
        ],
    )
    assert bad.exit_code == 1 and "[E134]" in bad.output

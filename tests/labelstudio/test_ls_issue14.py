"""Issue 14 regressions of the Label Studio importer: CSV/TSV exports without ``id`` or
``annotation_id``, a task data field named ``id``, writes that never destroy, and a small
project end to end on the data side."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from ls_testing import REAL_EXPORTS
from spacy.tokens import DocBin
from typer.testing import CliRunner

from textcat_kit.data.records import blank
from textcat_kit.errors import DataError
from textcat_kit.labelstudio.cli import app
from textcat_kit.labelstudio.config import load_labeling_scheme
from textcat_kit.labelstudio.exports import read_export
from textcat_kit.labelstudio.importer import import_export

BANKING = REAL_EXPORTS / "banking77_single"
runner = CliRunner()


def _drop_column(source: Path, target: Path, column: str, delimiter: str = ",") -> Path:
    text = source.read_text("utf-8")
    rows = list(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter))
    index = rows[0].index(column)
    out = io.StringIO()
    writer = csv.writer(out, delimiter=delimiter, quoting=csv.QUOTE_NONNUMERIC)
    for row in rows:
        writer.writerow(row[:index] + row[index + 1 :])
    target.write_text(out.getvalue(), "utf-8")
    return target


@pytest.mark.parametrize("column", ["id", "annotation_id"])
@pytest.mark.parametrize("fmt", ["CSV", "TSV"])
def test_export_without_id_columns_is_explained(tmp_path: Path, column: str, fmt: str) -> None:
    """Without `id` every row became its own task; without `annotation_id` all tasks were
    listed as unlabelled and the import exited 0 (issue 14)."""
    suffix, delimiter = (".csv", ",") if fmt == "CSV" else (".tsv", "\t")
    path = _drop_column(
        BANKING / f"export_{fmt}_all_tasks{suffix}", tmp_path / f"x{suffix}", column, delimiter
    )
    scheme = load_labeling_scheme(BANKING / "label_config.xml")
    with pytest.raises(DataError, match=rf"\[E213\] .*no '{column}' column.*Export > {fmt}"):
        import_export(path, scheme)


def test_a_data_field_named_id_does_not_break_csv_import(tmp_path: Path) -> None:
    """Label Studio's CSV export writes a task data field `id` over the task id; the rows
    are grouped by it, annotations kept, and a note says task ids are unknown."""
    config = (
        '<View><Text name="text" value="$text"/><Choices name="label" toName="text" '
        'choice="single"><Choice value="pos"/><Choice value="neg"/></Choices></View>'
    )
    (tmp_path / "config.xml").write_text(config, "utf-8")
    header = ["annotation_id", "annotator", "created_at", "id", "label", "lead_time", "text"]
    rows = [
        [1, "1", "t", "ext-a", "pos", 1.0, "good"],
        [2, "2", "t", "ext-a", "pos", 1.0, "good"],
        [3, "1", "t", "ext-b", "neg", 1.0, "bad"],
        ["", "", "", "ext-c", "", "", "unlabelled one"],
    ]
    for fmt, delimiter in (("csv", ","), ("tsv", "\t")):
        out = io.StringIO()
        writer = csv.writer(out, delimiter=delimiter, quoting=csv.QUOTE_NONNUMERIC)
        writer.writerows([header, *rows])
        path = tmp_path / f"export.{fmt}"
        path.write_text(out.getvalue(), "utf-8")
        scheme = load_labeling_scheme(tmp_path / "config.xml")
        export = read_export(path, scheme)
        assert [len(t.annotations) for t in export.tasks] == [2, 1, 0]
        assert any(note.startswith("[W203]") for note in export.notes)
        result = import_export(path, scheme)
        assert (result.summary.imported, result.summary.unlabelled) == (2, 1)
        assert [r.labels for r in result.records] == [["pos"], ["neg"]]


def test_import_refuses_to_overwrite_without_the_option(tmp_path: Path) -> None:
    output = tmp_path / "train.spacy"
    output.write_bytes(b"the user's own file")
    args = [
        "import",
        str(BANKING / "export_JSON_all_tasks.json"),
        str(output),
        "--config",
        str(BANKING / "label_config.xml"),
    ]
    refused = runner.invoke(app, args)
    assert refused.exit_code == 1 and "[E023]" in refused.output
    assert output.read_bytes() == b"the user's own file"
    done = runner.invoke(app, [*args, "--overwrite"])
    assert done.exit_code == 0, done.output
    docs = list(DocBin().from_disk(output).get_docs(blank("en").vocab))
    assert len(docs) == 36


def test_small_project_end_to_end_on_the_data_side(tmp_path: Path) -> None:
    """A 12-task project: import with dev and test carved, every label still trainable."""
    tasks = []
    labels = ["card_arrival", "exchange_rate", "lost_card"]
    for i in range(12):
        tasks.append(
            {
                "id": i + 1,
                "data": {"text": f"message number {i} about {labels[i % 3]}"},
                "annotations": [
                    {"id": 100 + i, "completed_by": 1, "result": [_choice(labels[i % 3])]}
                ],
            }
        )
    tasks.append({"id": 13, "data": {"text": ""}, "annotations": []})
    export = tmp_path / "export.json"
    export.write_text(json.dumps(tasks), "utf-8")
    config = tmp_path / "config.xml"
    config.write_text(
        '<View><Text name="text" value="$text"/><Choices name="label" toName="text" '
        'choice="single">'
        + "".join(f'<Choice value="{x}"/>' for x in labels)
        + "</Choices></View>",
        "utf-8",
    )
    out = tmp_path / "corpus"
    result = runner.invoke(
        app,
        [
            "import",
            str(export),
            str(out / "train.spacy"),
            "--config",
            str(config),
            "--dev-output",
            str(out / "dev.spacy"),
            "--dev-fraction",
            "0.2",
            "--test-output",
            str(out / "test.spacy"),
            "--test-fraction",
            "0.2",
            "--unlabelled",
            str(out / "todo.jsonl"),
        ],
    )
    assert result.exit_code == 0, result.output
    nlp = blank("en")
    counts = {
        part: len(list(DocBin().from_disk(out / f"{part}.spacy").get_docs(nlp.vocab)))
        for part in ("train", "dev", "test")
    }
    assert sum(counts.values()) == 12 and min(counts.values()) >= 1
    train_labels = {
        label
        for doc in DocBin().from_disk(out / "train.spacy").get_docs(nlp.vocab)
        for label, value in doc.cats.items()
        if value == 1.0
    }
    assert train_labels == set(labels)
    assert "unlabelled 1" in result.output


def _choice(label: str) -> dict[str, object]:
    return {
        "from_name": "label",
        "to_name": "text",
        "type": "choices",
        "value": {"choices": [label]},
    }

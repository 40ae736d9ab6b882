"""The data step: readers, dev split, data report and the corpus command."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import spacy
from spacy.tokens import DocBin
from typer.testing import CliRunner

from textcat_kit.cli import app
from textcat_kit.data.corpus_builder import build_corpus
from textcat_kit.data.readers import ReadSettings, read_file, read_labels_file
from textcat_kit.data.records import Record
from textcat_kit.data.report import build_report, leaked_texts, normalise_text
from textcat_kit.data.split import stratified_split
from textcat_kit.errors import DataError


def write(path: Path, text: str, encoding: str = "utf8") -> Path:
    path.write_bytes(text.encode(encoding))
    return path


def test_csv_with_embedded_newline_is_one_record_and_stripped(tmp_path: Path) -> None:
    path = write(
        tmp_path / "a.csv", 'text,category\r\n"\nWhere can I use my card?",card\r\nhi,other\r\n'
    )
    result = read_file(path, ReadSettings(label_key="category"))
    assert [r.text for r in result.records] == ["Where can I use my card?", "hi"]
    assert [r.meta["line"] for r in result.records] == [2, 4]
    assert result.n_rows == 2 and result.n_skipped == 0


def test_missing_text_names_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path / "a.csv", "text,category\nfine,a\n ,b\n")
    with pytest.raises(DataError, match=r"\[E001\] .*a\.csv:3"):
        read_file(path, ReadSettings(label_key="category"))


def test_wrong_column_lists_available_columns(tmp_path: Path) -> None:
    path = write(tmp_path / "a.csv", "sentence,category\nfine,a\n")
    with pytest.raises(DataError, match=r"\[E214\] .*a\.csv:1: .*'text' \(columns: sentence, cat"):
        read_file(path, ReadSettings(label_key="category"))


def test_unknown_label_is_an_error_with_line(tmp_path: Path) -> None:
    path = write(
        tmp_path / "a.jsonl", '{"text": "x", "label": "a"}\n{"text": "y", "label": "zzz"}\n'
    )
    with pytest.raises(DataError, match=r"\[E003\] .*a\.jsonl:2: label 'zzz'"):
        read_file(path, ReadSettings(), label_set=["a", "b"])


def test_bad_encoding_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "a.csv"
    path.write_bytes(b"text,label\nok,a\n" + "caf\xe9,b\n".encode("latin1"))
    with pytest.raises(DataError, match=r"\[E204\] .*a\.csv:3: .*looks like cp1252"):
        read_file(path, ReadSettings())


def test_lenient_mode_accounts_for_every_row(tmp_path: Path) -> None:
    path = write(
        tmp_path / "a.jsonl",
        '{"text": "x", "label": "a"}\n'
        "{not json\n"
        '{"text": "", "label": "a"}\n'
        '{"text": "y"}\n'
        '{"text": "z", "label": "zzz"}\n'
        '{"text": "w", "labels": ["a", "b"]}\n',
    )
    result = read_file(path, ReadSettings(lenient=True), label_set=["a", "b"])
    assert result.n_rows == 6
    assert len(result.records) == 1
    assert result.n_rows == len(result.records) + result.n_skipped
    assert result.skipped == {
        "malformed record": 1,
        "missing text": 1,
        "missing label": 1,
        "unknown label": 1,
        "several labels in exclusive task": 1,
    }


def test_jsonl_label_forms(tmp_path: Path) -> None:
    path = write(
        tmp_path / "a.jsonl",
        '{"text": "x", "labels": ["a", "b"]}\n'
        '{"text": "y", "cats": {"a": 0.0, "b": 1.0}}\n'
        '{"text": "z", "label": "a"}\n',
    )
    result = read_file(path, ReadSettings(multilabel=True))
    assert [r.labels for r in result.records] == [["a", "b"], ["b"], ["a"]]


def test_goemotions_tsv_with_quotes_and_label_ids(shared_data: Path) -> None:
    labels = read_labels_file(shared_data / "goemotions" / "emotions.txt")
    assert len(labels) == 28 and labels[27] == "neutral"
    settings = ReadSettings(
        columns=["text", "labels", "id"], multilabel=True, label_ids=0, tsv_quoting="csv"
    )
    result = read_file(shared_data / "goemotions" / "dev.tsv", settings, labels)
    assert result.n_rows == len(result.records) == 5426
    # CSV-style quoting inside the TSV is undone: no record starts with a quote char
    # that was only there for quoting, and doubled quotes are single.
    assert not any('""' in r.text for r in result.records)
    n_multi = sum(len(r.labels) > 1 for r in result.records)
    assert n_multi == 809 + 62 + 7


def test_stratified_split_is_seeded_and_complete() -> None:
    records = [Record(f"t{i}", [f"l{i % 5}"]) for i in range(200)]
    records += [Record(f"r{i}", ["rare"]) for i in range(4)]
    train, dev = stratified_split(records, 0.25, seed=3)
    again_train, again_dev = stratified_split(records, 0.25, seed=3)
    assert [r.text for r in dev] == [r.text for r in again_dev]
    assert sorted(r.text for r in train + dev) == sorted(r.text for r in records)
    assert len(dev) == round(0.25 * len(records))
    dev_counts = {label: sum(label in r.labels for r in dev) for label in ["l0", "rare"]}
    assert dev_counts["l0"] == 10  # 25% of 40
    assert dev_counts["rare"] == 1  # 25% of 4, rarest first
    assert any("rare" in r.labels for r in train)


def test_multilabel_split_gives_every_label_dev_examples() -> None:
    records = [Record(f"c{i}", ["common"]) for i in range(300)]
    records += [Record(f"m{i}", ["common", f"rare{i % 3}"]) for i in range(12)]
    _, dev = stratified_split(records, 0.1, seed=0)
    for label in ("rare0", "rare1", "rare2"):
        assert any(label in r.labels for r in dev), label


def test_leakage_exact_and_normalised() -> None:
    train = [Record("Hello, World!", ["a"]), Record("unique", ["b"])]
    test = [Record("Hello, World!", ["a"]), Record("hello   world", ["a"]), Record("new", ["b"])]
    found = leaked_texts(train, test)
    assert [x["text"] for x in found["exact"]] == ["Hello, World!"]
    assert [x["text"] for x in found["normalised"]] == ["hello   world"]
    assert normalise_text("  Hello,\tWORLD!! ") == "hello world"


def test_report_counts_conflicts_and_rare_labels() -> None:
    splits = {
        "train": [Record("x", ["a"]), Record("x", ["b"]), Record("y", ["a"])],
        "test": [Record("y", ["a"])],
    }
    report = build_report(splits, ["a", "b"], min_count=2)
    assert report["label_counts"]["a"] == {"train": 2, "test": 1}
    assert report["labels_below_min_count"]["train"] == ["b"]
    assert report["conflicting_texts"]["train"][0]["text"] == "x"
    assert report["leakage"]["train->test"]["n_exact"] == 1


def test_goemotions_report_lists_train_test_shared_texts(shared_data: Path) -> None:
    labels = read_labels_file(shared_data / "goemotions" / "emotions.txt")
    settings = ReadSettings(
        columns=["text", "labels", "id"], multilabel=True, label_ids=0, tsv_quoting="csv"
    )
    splits = {
        name: read_file(shared_data / "goemotions" / f"{name}.tsv", settings, labels).records
        for name in ("train", "test")
    }
    found = leaked_texts(splits["train"], splits["test"])
    # The README of the data counts 32 texts shared verbatim; stripping whitespace
    # finds a few more, normalisation more still.
    assert len(found["exact"]) >= 32
    assert len(found["normalised"]) > 0
    assert all("line" in item for item in found["exact"])


def test_corpus_command_writes_explicit_cats_and_accounts(tmp_path: Path) -> None:
    rows = [
        {"text": f"text number {i} about {lab}", "label": lab}
        for i in range(60)
        for lab in ("alpha", "beta", "gamma")
    ]
    train = tmp_path / "train.jsonl"
    train.write_text("\n".join(json.dumps(r) for r in rows) + "\n{broken\n")
    test = tmp_path / "test.jsonl"
    test.write_text("\n".join(json.dumps(r) for r in rows[:30]))
    out = tmp_path / "corpus"
    result = CliRunner().invoke(
        app,
        [
            "corpus",
            "--train",
            str(train),
            "--test",
            str(test),
            "--output-dir",
            str(out),
            "--report-dir",
            str(tmp_path / "report"),
            "--lenient",
            "--drop-leaked",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "181 records in = 180 written (train 162, dev 18) + 1 skipped" in result.output
    assert "30 records in = 0 written () + 0 skipped + 30 dropped" in result.output  # leaked
    nlp = spacy.blank("en")
    docs = list(DocBin().from_disk(out / "dev.spacy").get_docs(nlp.vocab))
    assert len(docs) == 18
    for doc in docs:
        assert set(doc.cats) == {"alpha", "beta", "gamma"}
        assert sorted(doc.cats.values()) == [0.0, 0.0, 1.0]
    report = json.loads((tmp_path / "report" / "data_report.json").read_text())
    assert report["accounting"]["test"]["balanced"] is True
    leaked = report["leakage"]["train->test"]["exact"] + report["leakage"]["dev->test"]["exact"]
    assert {item["source"] for item in leaked} == {"test.jsonl"}
    assert all(isinstance(item["line"], int) for item in leaked)
    assert (tmp_path / "report" / "data_report.md").read_text().startswith("# Data report")


def test_build_corpus_warns_about_a_test_label_not_in_train(tmp_path: Path) -> None:
    train = write(tmp_path / "train.csv", "text,label\na,x\nb,y\n")
    test = write(tmp_path / "test.csv", "text,label\nc,z\n")
    summary = build_corpus(train=train, test=test, output_dir=tmp_path / "out", dev=train)
    assert summary.labels == ["x", "y", "z"]
    assert any(m.startswith("[W202] label(s) ['z'] occur in test") for m in summary.messages)


def test_split_stratifies_records_without_labels() -> None:
    """All-negative multi-label records are split in proportion, not all kept in train."""
    records = [Record(f"t{i}", ["toxic"] if i % 8 == 0 else []) for i in range(400)]
    train, dev = stratified_split(records, 0.2, seed=0)
    assert len(dev) == 80
    assert sum(1 for r in dev if r.labels) == 10
    assert sum(1 for r in dev if not r.labels) == 70


def test_multilabel_split_keeps_rare_labels_in_proportion() -> None:
    """Documents with many labels: a rare label's examples are not all pulled into dev
    because a common label of the same documents is still short of its share."""
    import random as _random

    rng = _random.Random(0)
    common = [f"c{j}" for j in range(10)]
    records = []
    for i in range(1000):
        labels = set(rng.sample(common, 4))
        if i % 25 == 0:  # 40 examples of "rare"
            labels.add("rare")
        records.append(Record(f"t{i}", sorted(labels)))
    train, dev = stratified_split(records, 0.2, seed=0)
    in_dev = sum("rare" in r.labels for r in dev)
    assert 6 <= in_dev <= 10, in_dev  # 20% of 40 = 8
    assert sum("rare" in r.labels for r in train) >= 30

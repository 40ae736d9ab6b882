"""Readers of `textcat-kit score`: every record is a text or a reject with its reason, row
numbers are stable, and a reader restarted at a chunk's end position goes on exactly
where it stopped (what --resume relies on)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from textcat_kit.errors import DataError
from textcat_kit.scoring.inputs import (
    MALFORMED,
    MISSING_ID,
    MISSING_TEXT,
    NON_STRING_TEXT,
    UNDECODABLE,
    Chunk,
    Fields,
    InputFile,
    discover_inputs,
    read_chunks,
)


def _file(path: Path) -> InputFile:
    files, _ = discover_inputs(path)
    assert len(files) == 1
    return files[0]


def _read_all(file: InputFile, fields: Fields, size: int = 3) -> list[Chunk]:
    return list(read_chunks(file, 0, fields, size))


def _records(chunks: list[Chunk]) -> tuple[dict[int, str], dict[int, str]]:
    texts = {row: text for c in chunks for row, text in zip(c.rows, c.texts)}
    rejects = {r.row: r.reason for c in chunks for r in c.rejects}
    return texts, rejects


def test_jsonl_every_record_scored_or_rejected_with_reason(tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    lines = [
        json.dumps({"id": 1, "text": "card lost"}).encode(),
        b"",  # a blank line is no record
        json.dumps({"id": 2, "text": 7}).encode(),
        json.dumps({"id": 3}).encode(),
        b"{not json",
        b"[1, 2]",
        '{"id": 4, "text": "caf\xe9"}'.encode("latin-1"),  # not UTF-8
        json.dumps({"id": 5, "title": "Refund", "text": "  where is it  "}).encode(),
        json.dumps({"text": "no id"}).encode(),
        json.dumps({"id": 6, "text": "   "}).encode(),
    ]
    path.write_bytes(b"\n".join(lines) + b"\n")
    chunks = _read_all(_file(path), Fields.parse("title,text", "id"))
    texts, rejects = _records(chunks)
    assert texts == {0: "card lost", 6: "Refund\nwhere is it"}
    assert rejects == {
        1: NON_STRING_TEXT,
        2: MISSING_TEXT,
        3: MALFORMED,
        4: MALFORMED,
        5: UNDECODABLE,
        7: MISSING_ID,
        8: MISSING_TEXT,
    }
    assert sum(c.n_records for c in chunks) == 9
    ids = [i for c in chunks for i in (c.ids or [])]
    assert ids == ["1", "5"]
    lines_of = {r.row: r.line for c in chunks for r in c.rejects}
    assert lines_of[1] == 3 and lines_of[3] == 5  # physical lines, blank line counted


def test_csv_quoted_newlines_bad_bytes_and_field_counts(tmp_path: Path) -> None:
    path = tmp_path / "in.csv"
    body = (
        b'id,text\n1,"first line\nsecond line"\n2,\n3,a,b\n'
        b'4,caf\xe9\n5,plain\n\n6,"quoted, comma"\n'
    )
    path.write_bytes(body)
    chunks = _read_all(_file(path), Fields.parse("text", None), size=2)
    texts, rejects = _records(chunks)
    assert texts == {0: "first line\nsecond line", 4: "plain", 5: "quoted, comma"}
    assert rejects == {1: MISSING_TEXT, 2: MALFORMED, 3: UNDECODABLE}
    assert {r.row: r.line for c in chunks for r in c.rejects} == {1: 4, 2: 5, 3: 6}


def test_restart_at_chunk_end_equals_reading_on(tmp_path: Path) -> None:
    """A reader started at any chunk's end position yields exactly the remaining records."""
    tsv = tmp_path / "in.tsv"
    with open(tsv, "w", newline="", encoding="utf8") as fh:
        writer = csv.writer(fh, delimiter="\t")
        writer.writerow(["text", "id"])
        for i in range(23):
            writer.writerow(["" if i % 7 == 3 else f"text {i}\nwith a break", f"r{i}"])
    parquet = tmp_path / "in.parquet"
    table = pa.table({"text": [None if i % 5 == 0 else f"t{i}" for i in range(23)]})
    pq.write_table(table, parquet, row_group_size=4)
    jsonl = tmp_path / "in.jsonl"
    jsonl.write_text("".join(json.dumps({"text": f"j{i}"}) + "\n" for i in range(23)))
    for path, fields in [
        (tsv, Fields.parse("text", "id")),
        (parquet, Fields.parse("text", None)),
        (jsonl, Fields.parse("text", None)),
    ]:
        file = _file(path)
        whole = _records(_read_all(file, fields, size=5))
        for chunk in _read_all(file, fields, size=5)[:-1]:
            rest = list(read_chunks(file, 0, fields, 5, start=chunk.end))
            head = [c for c in _read_all(file, fields, size=5) if c.start < chunk.end.row]
            texts, rejects = _records(head + rest)
            assert (texts, rejects) == whole, (path.suffix, chunk.end)


def test_parquet_types_and_ranges(tmp_path: Path) -> None:
    path = tmp_path / "in.parquet"
    pq.write_table(
        pa.table(
            {
                "text": pa.array([b"ok", b"caf\xe9", None, b"fine"], pa.binary()),
                "num": pa.array([1, 2, 3, 4]),
            }
        ),
        path,
    )
    texts, rejects = _records(_read_all(_file(path), Fields.parse("text", None)))
    assert texts == {0: "ok", 3: "fine"}
    assert rejects == {1: UNDECODABLE, 2: MISSING_TEXT}
    texts, rejects = _records(_read_all(_file(path), Fields.parse("num", None)))
    assert not texts and set(rejects.values()) == {NON_STRING_TEXT}
    ranged = list(read_chunks(_file(path), 0, Fields.parse("text", None), 10, stop_row=2))
    assert sum(c.n_records for c in ranged) == 2


def test_file_level_errors(tmp_path: Path) -> None:
    dup = tmp_path / "dup.csv"
    dup.write_text("text,text\na,b\n")
    with pytest.raises(DataError, match=r"\[E353\].*duplicate"):
        _read_all(_file(dup), Fields.parse("text", None))
    wrong = tmp_path / "wrong.csv"
    wrong.write_text("body\na\n")
    with pytest.raises(DataError, match=r"\[E354\].*'text'.*available: body"):
        _read_all(_file(wrong), Fields.parse("text", None))
    other = tmp_path / "notes.txt"
    other.write_text("x")
    with pytest.raises(DataError, match=r"\[E350\]"):
        discover_inputs(other)
    with pytest.raises(DataError, match=r"\[E351\]"):
        discover_inputs(tmp_path / "missing" / "*.csv")


def test_discover_directory_and_glob(tmp_path: Path) -> None:
    (tmp_path / "b").mkdir()
    for name in ("a.jsonl", "b/c.parquet", "b/d.csv", "notes.md", ".hidden.csv"):
        (tmp_path / name).write_text("")
    files, ignored = discover_inputs(tmp_path)
    assert [f.source for f in files] == ["a.jsonl", "b/c.parquet", "b/d.csv"]
    assert [p.name for p in ignored] == ["notes.md"]
    files, _ = discover_inputs(str(tmp_path / "b" / "*.csv"))
    assert [f.source for f in files] == ["d.csv"]

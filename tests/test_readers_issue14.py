"""Readers that see the file as it is (issue 14) and the reader frictions of issue 13.

Each "Why" case of issue 14 in the data step is a test here, plus the `corpus` options the
`custom` workflow relies on: TSV without quote processing, label ids with an explicit base,
several text fields, JSON-list / joined labels, --multilabel auto, carved test/dev splits,
tiny classes and writes that never destroy.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from spacy.tokens import DocBin
from typer.testing import CliRunner

from textcat_kit.cli import app
from textcat_kit.data.readers import ReadSettings, read_file
from textcat_kit.data.records import blank
from textcat_kit.errors import DataError
from textcat_kit.safe_write import MARKER

runner = CliRunner()


def write(path: Path, text: str | bytes) -> Path:
    path.write_bytes(text.encode("utf-8") if isinstance(text, str) else text)
    return path


def corpus(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, ["corpus", *args])
    return result.exit_code, result.output + (str(result.exception) if result.exception else "")


def docs(path: Path) -> list[tuple[str, dict[str, float]]]:
    return [(d.text, d.cats) for d in DocBin().from_disk(path).get_docs(blank("en").vocab)]


# ------------------------------------------------------------- issue 14: "Why" cases


def test_stray_quote_does_not_merge_following_rows(tmp_path: Path) -> None:
    """A `"` opening a field swallowed the following rows, even in strict mode, and the
    accounting balanced because it counted what the csv module returned."""
    path = write(
        tmp_path / "a.csv",
        'text,label\nfine,pos\n"5 stars and more,pos\nnext row,neg\nlast row,neg\n',
    )
    with pytest.raises(DataError, match=r"\[E201\] .*a\.csv:3: a quoted field opens here"):
        read_file(path, ReadSettings())
    result = read_file(path, ReadSettings(lenient=True))
    assert [r.text for r in result.records] == ["fine", "next row", "last row"]
    assert result.skipped == {"unbalanced quote": 1}
    assert result.skipped_rows == [(3, "unbalanced quote")]
    # physical accounting: 4 data lines = 4 records = 3 read + 1 skipped
    assert result.n_lines == 5 and result.header_lines == 1
    assert result.n_rows == 4 and result.balanced


def test_stray_quote_inside_a_quoted_field_is_an_error_with_column(tmp_path: Path) -> None:
    path = write(tmp_path / "a.csv", 'text,label\n"He said "hi" to me",pos\nok,neg\n')
    with pytest.raises(DataError, match=r"\[E202\] .*a\.csv:2: stray '\"' at column 11"):
        read_file(path, ReadSettings())
    result = read_file(path, ReadSettings(lenient=True))
    assert [r.text for r in result.records] == ["ok"] and result.skipped == {"stray quote": 1}


def test_quote_inside_an_unquoted_field_is_kept_literally(tmp_path: Path) -> None:
    path = write(tmp_path / "a.csv", 'text,label\nmy 5" screen broke,pos\n"a ""b"" c",neg\n')
    result = read_file(path, ReadSettings())
    assert [r.text for r in result.records] == ['my 5" screen broke', 'a "b" c']


def test_wrong_field_count_names_the_line(tmp_path: Path) -> None:
    path = write(tmp_path / "a.csv", "text,label\nhello, world,pos\nok,neg\n")
    with pytest.raises(DataError, match=r"\[E203\] .*a\.csv:2: 3 fields, the header has 2"):
        read_file(path, ReadSettings())
    result = read_file(path, ReadSettings(lenient=True))
    assert result.skipped == {"wrong number of fields": 1} and len(result.records) == 1


def test_duplicate_header_is_an_error(tmp_path: Path) -> None:
    """A duplicated header name silently replaced the first column."""
    path = write(tmp_path / "a.csv", "text,label,text\nfirst,pos,second\n")
    with pytest.raises(DataError, match=r"\[E200\] .*a\.csv:1: the header names 'text' more"):
        read_file(path, ReadSettings())
    with pytest.raises(DataError, match=r"\[E200\]"):
        read_file(path, ReadSettings(lenient=True))  # not a row problem: lenient stops too


def test_field_over_131072_characters_is_read(tmp_path: Path) -> None:
    """A field over 131,072 characters crashed with a bare _csv.Error."""
    big = "word " * 60_000  # 300,000 characters
    path = write(tmp_path / "a.csv", f'text,label\n"{big}",pos\nsmall,neg\n')
    result = read_file(path, ReadSettings())
    assert [len(r.text) for r in result.records] == [len(big.strip()), 5]


def test_non_numeric_cats_value_names_file_and_line(tmp_path: Path) -> None:
    path = write(
        tmp_path / "a.jsonl",
        '{"text": "x", "cats": {"a": 1.0, "b": 0.0}}\n{"text": "y", "cats": {"a": "yes"}}\n',
    )
    with pytest.raises(DataError, match=r"\[E206\] .*a\.jsonl:2: .*label 'a' has the score 'yes'"):
        read_file(path, ReadSettings(multilabel=True))
    for bad in ("NaN", "2.0", "null", "[1]"):
        write(path, '{"text": "y", "cats": {"a": ' + bad + "}}\n")
        with pytest.raises(DataError, match=r"\[E206\] .*a\.jsonl:1"):
            read_file(path, ReadSettings(multilabel=True))


def test_utf16_is_named_with_its_encoding(tmp_path: Path) -> None:
    """UTF-16 input got the UTF-8 message E004."""
    path = write(tmp_path / "a.csv", "text,label\nhello,pos\n".encode("utf-16"))
    with pytest.raises(DataError, match=r"\[E205\] .*a\.csv: the file is UTF-16LE, not UTF-8"):
        read_file(path, ReadSettings())


def test_latin1_row_guessed_and_skippable_in_lenient_mode(tmp_path: Path) -> None:
    """--lenient could not skip undecodable rows."""
    raw = b"text,label\nok,a\n" + "café crème,b\n".encode("latin-1") + b"fine,a\n"
    path = write(tmp_path / "a.csv", raw)
    with pytest.raises(DataError, match=r"\[E204\] .*a\.csv:3: .*byte 0xe9.*looks like cp1252"):
        read_file(path, ReadSettings())
    result = read_file(path, ReadSettings(lenient=True))
    assert [r.text for r in result.records] == ["ok", "fine"]
    assert result.skipped == {"not UTF-8": 1} and result.balanced
    jsonl = write(
        tmp_path / "a.jsonl", b'{"text": "caf\xe9", "label": "a"}\n{"text": "ok", "label": "a"}\n'
    )
    result = read_file(jsonl, ReadSettings(lenient=True))
    assert [r.text for r in result.records] == ["ok"] and result.skipped == {"not UTF-8": 1}


def test_lone_surrogate_escape_in_jsonl(tmp_path: Path) -> None:
    path = write(tmp_path / "a.jsonl", '{"text": "bad \\ud800 char", "label": "a"}\n')
    with pytest.raises(DataError, match=r"\[E211\] .*a\.jsonl:1"):
        read_file(path, ReadSettings())


# ------------------------------------------------------------- issue 13: frictions


def test_tsv_is_parsed_as_tsv(tmp_path: Path) -> None:
    """TSV was parsed with CSV quoting: a text with a `"` swallowed the following rows."""
    path = write(tmp_path / "a.tsv", 'text\tlabel\n"quoted start and no end\tpos\nnext\tneg\n')
    result = read_file(path, ReadSettings())
    assert [r.text for r in result.records] == ['"quoted start and no end', "next"]
    quoted = write(tmp_path / "b.tsv", 'text\tlabel\n"a ""b"""\tpos\nnext\tneg\n')
    verbatim = read_file(quoted, ReadSettings())
    assert verbatim.records[0].text == '"a ""b"""'
    assert any(note.startswith("[W201]") for note in verbatim.notes)
    as_csv = read_file(quoted, ReadSettings(tsv_quoting="csv"))
    assert as_csv.records[0].text == 'a "b"' and not as_csv.notes


@pytest.mark.parametrize(
    ("base", "cells", "expected"),
    [(0, ["0", "2"], ["a", "c"]), (1, ["1", "3"], ["a", "c"]), (1, ["1,3"], None)],
)
def test_label_ids_with_explicit_base(
    tmp_path: Path, base: int, cells: list[str], expected: list[str] | None
) -> None:
    rows = "".join(f"text {i}\t{cell}\n" for i, cell in enumerate(cells))
    path = write(tmp_path / "a.tsv", "text\tlabel\n" + rows)
    result = read_file(path, ReadSettings(label_ids=base, multilabel=None), ["a", "b", "c"])
    labels = [label for r in result.records for label in r.labels]
    assert labels == (expected or ["a", "c"])


@pytest.mark.parametrize(("base", "cell"), [(0, "-1"), (0, "3"), (1, "0"), (1, "4"), (0, "x")])
def test_out_of_range_and_negative_ids_are_errors(tmp_path: Path, base: int, cell: str) -> None:
    """-1 mapped to the last label and 1-based ids were silently shifted."""
    path = write(tmp_path / "a.csv", f"text,label\nhello,{cell}\n")
    with pytest.raises(
        DataError, match=rf"\[E208\] .*a\.csv:2: label id '{cell}' is not a {base}-based"
    ):
        read_file(path, ReadSettings(label_ids=base), ["a", "b", "c"])


def test_label_ids_need_a_labels_file(tmp_path: Path) -> None:
    path = write(tmp_path / "a.csv", "text,label\nhello,1\n")
    with pytest.raises(DataError, match=r"\[E209\]"):
        read_file(path, ReadSettings(label_ids=1))


def test_several_text_fields_are_joined(tmp_path: Path) -> None:
    path = write(
        tmp_path / "a.csv", "title,body,label\nBig news,Something happened,a\n,Only body,b\n"
    )
    result = read_file(path, ReadSettings(text_key="title,body"))
    assert [r.text for r in result.records] == ["Big news\nSomething happened", "Only body"]
    with pytest.raises(DataError, match=r"\[E214\] .*'summary' \(columns: title, body, label\)"):
        read_file(path, ReadSettings(text_key="title,summary"))


def test_label_cell_forms_are_detected_per_file(tmp_path: Path) -> None:
    joined = write(tmp_path / "a.csv", 'text,label\nx,"sports,politics"\ny,sports\nz,politics\n')
    assert [r.labels for r in read_file(joined, ReadSettings(multilabel=None)).records] == [
        ["sports", "politics"],
        ["sports"],
        ["politics"],
    ]
    one = write(tmp_path / "b.csv", 'text,label\nx,"Yes, definitely"\ny,No\n')
    result = read_file(one, ReadSettings(multilabel=None))
    assert [r.labels for r in result.records] == [["Yes, definitely"], ["No"]]
    assert "each cell is one label" in result.label_format
    lists = write(tmp_path / "c.csv", 'text,label\nx,"[""a"", ""b""]"\ny,"[""b""]"\n')
    assert [r.labels for r in read_file(lists, ReadSettings(multilabel=None)).records] == [
        ["a", "b"],
        ["b"],
    ]
    jsonl = write(tmp_path / "d.jsonl", '{"text": "x", "label": ["a", "b"]}\n')
    assert read_file(jsonl, ReadSettings(multilabel=None)).records[0].labels == ["a", "b"]


def test_multilabel_auto_is_printed_and_written(tmp_path: Path) -> None:
    rows = [{"text": f"t{i}", "labels": ["a", "b"] if i % 4 == 0 else ["a"]} for i in range(40)]
    train = write(tmp_path / "train.jsonl", "\n".join(json.dumps(r) for r in rows))
    code, output = corpus("--train", str(train), "--output-dir", str(tmp_path / "out"))
    assert code == 0, output
    assert (
        "multi-label (detected): 10 record(s) have several labels (first: train.jsonl:1)" in output
    )
    data = json.loads((tmp_path / "out" / "data.json").read_text())
    assert data["multilabel"] is True and "detected" in data["multilabel_reason"]
    assert json.loads((tmp_path / "out" / "labels.json").read_text()) == ["a", "b"]
    single = write(
        tmp_path / "one.csv", "text,label\n" + "".join(f"t{i},{'ab'[i % 2]}\n" for i in range(30))
    )
    code, output = corpus("--train", str(single), "--output-dir", str(tmp_path / "out2"))
    assert "exclusive (detected): each of the 30 records has exactly one label" in output
    assert json.loads((tmp_path / "out2" / "data.json").read_text())["multilabel"] is False


def test_missing_test_and_dev_are_carved_and_tiny_classes_survive(tmp_path: Path) -> None:
    lines = [f"common text {i},common\n" for i in range(60)]
    lines += ["pair one,pair\n", "pair two,pair\n", "single one,single\n"]
    train = write(tmp_path / "train.csv", "text,label\n" + "".join(lines))
    out = tmp_path / "out"
    code, output = corpus(
        "--train", str(train), "--output-dir", str(out), "--test-fraction", "0.25", "--seed", "3"
    )
    assert code == 0, output
    assert (
        "test: no --test file; carved 16 records, stratified 0.25 of train.csv (seed 3)" in output
    )
    assert "dev: no --dev file; carved" in output
    assert "no example of" in output and "single (1)" in output
    parts = {name: docs(out / f"{name}.spacy") for name in ("train", "dev", "test")}
    assert sum(map(len, parts.values())) == 63
    train_labels = {k for _, cats in parts["train"] for k, v in cats.items() if v == 1.0}
    assert train_labels == {"common", "pair", "single"}
    data = json.loads((out / "data.json").read_text())
    assert data["test_source"].startswith("stratified 0.25")
    assert data["accounting"]["train"]["balanced"] is True


def test_too_few_records_for_a_split_is_a_coded_error(tmp_path: Path) -> None:
    train = write(tmp_path / "train.csv", "text,label\nonly one,a\n")
    code, output = corpus("--train", str(train), "--output-dir", str(tmp_path / "out"))
    assert code == 1 and "[E212]" in output


def test_format_option_exists_for_other_suffixes(tmp_path: Path) -> None:
    """E006 suggested a --format option that did not exist."""
    train = write(
        tmp_path / "train.txt",
        "".join(f'{{"text": "t{i}", "label": "{"ab"[i % 2]}"}}\n' for i in range(20)),
    )
    code, output = corpus("--train", str(train), "--output-dir", str(tmp_path / "o"))
    assert code == 1 and "[E006]" in output and "--format" in output
    code, output = corpus(
        "--train", str(train), "--output-dir", str(tmp_path / "o"), "--format", "jsonl"
    )
    assert code == 0, output


def test_corpus_never_overwrites_what_it_did_not_write(tmp_path: Path) -> None:
    train = write(
        tmp_path / "train.csv", "text,label\n" + "".join(f"t{i},{'ab'[i % 2]}\n" for i in range(30))
    )
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("my notes")
    code, output = corpus("--train", str(train), "--output-dir", str(mine))
    assert code == 1 and "[E022]" in output
    assert (mine / "notes.txt").read_text() == "my notes" and len(list(mine.iterdir())) == 1
    out = tmp_path / "out"
    assert corpus("--train", str(train), "--output-dir", str(out))[0] == 0
    assert (out / MARKER).is_file()
    code, output = corpus("--train", str(train), "--output-dir", str(out))
    assert code == 1 and "[E023]" in output
    code, output = corpus("--train", str(train), "--output-dir", str(out), "--overwrite")
    assert code == 0, output


def test_deprecated_labels_are_indices_alias(tmp_path: Path) -> None:
    train = write(
        tmp_path / "train.tsv", "text\tlabel\n" + "".join(f"t{i}\t{i % 2}\n" for i in range(30))
    )
    labels = write(tmp_path / "labels.txt", "neg\npos\n")
    code, output = corpus(
        "--train",
        str(train),
        "--labels",
        str(labels),
        "--labels-are-indices",
        "--output-dir",
        str(tmp_path / "o"),
    )
    assert code == 0, output
    assert "deprecated" in output
    assert json.loads((tmp_path / "o" / "labels.json").read_text()) == ["neg", "pos"]


def test_corpus_errors_print_without_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from textcat_kit import cli

    train = write(tmp_path / "train.csv", 'text,label\n"broken,a\nfine,b\n')
    with pytest.raises(SystemExit) as exit_:
        cli.main(["corpus", "--train", str(train), "--output-dir", str(tmp_path / "o")])
    assert exit_.value.code == 1
    err = capsys.readouterr().err
    assert "[E201]" in err and "train.csv:2" in err and "Traceback" not in err
    assert not (tmp_path / "o").exists()


def test_missing_label_column_is_named_at_the_header(tmp_path: Path) -> None:
    path = write(tmp_path / "a.csv", "text,category\nhello,a\n")
    with pytest.raises(DataError, match=r"\[E215\] .*a\.csv:1: .*label \| labels \| cats"):
        read_file(path, ReadSettings(lenient=True))
    assert read_file(path, ReadSettings(label_key="category")).records[0].labels == ["a"]


def test_semicolon_files_are_named_and_readable(tmp_path: Path) -> None:
    train = write(
        tmp_path / "train.csv",
        "text;label\n" + "".join(f'"t {i}; x";{"ab"[i % 2]}\n' for i in range(30)),
    )
    code, output = corpus("--train", str(train), "--output-dir", str(tmp_path / "o"))
    assert code == 1 and "[E215]" in output and "--delimiter ';'" in output
    code, output = corpus(
        "--train", str(train), "--output-dir", str(tmp_path / "o"), "--delimiter", ";"
    )
    assert code == 0, output
    assert docs(tmp_path / "o" / "test.spacy")[0][0].startswith("t ")


def test_float_written_ids_are_ids(tmp_path: Path) -> None:
    path = write(tmp_path / "a.csv", "text,label\nhello,2.0\nworld,1\n")
    result = read_file(path, ReadSettings(label_ids=1), ["a", "b", "c"])
    assert [r.labels for r in result.records] == [["b"], ["a"]]
    write(path, "text,label\nhello,1.5\n")
    with pytest.raises(DataError, match=r"\[E208\]"):
        read_file(path, ReadSettings(label_ids=1), ["a", "b", "c"])

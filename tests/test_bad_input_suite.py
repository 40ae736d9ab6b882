"""The bad-input suite: property-based tests over the readers and the Label Studio importer.

The invariant, for every generated input: each physical record is imported, or skipped
with a reason, or the run stops with a coded error naming the file (and the line, for a
record-level problem) -- never another exception, never a text or label other than what
the file says at the record's own lines.

"What the file says" is checked by an independent parser: the lines of each imported
record are parsed again, on their own, by Python's ``csv`` module in strict mode (or split
on tabs for TSV read as TSV, or ``json.loads`` for JSONL), and must give exactly the
record's text and labels. A record that spans several lines must be reported (W200), so a
stray quote can never merge rows silently.

Example counts come from a Hypothesis profile chosen with ``HYPOTHESIS_PROFILE``: ``ci``
(default, a few hundred inputs in total) or ``thorough`` (``BAD_INPUT_EXAMPLES`` per test,
default 2000). The number of inputs actually generated is printed at the end of the module
(run with ``-s`` to see it) and written to ``$BAD_INPUT_COUNT_FILE`` when set.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import os
import re
import shutil
import sys
import tempfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from textcat_kit.data.readers import ReadSettings, read_file
from textcat_kit.errors import DataError, TextcatKitError
from textcat_kit.labelstudio.config import parse_label_config
from textcat_kit.labelstudio.exports import parse_export
from textcat_kit.labelstudio.importer import import_tasks

settings.register_profile(
    "ci",
    max_examples=40,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(
    "thorough",
    max_examples=int(os.environ.get("BAD_INPUT_EXAMPLES", "2000")),
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

GENERATED: Counter[str] = Counter()
PLACEHOLDER = "\ue000"
CODED = re.compile(r"^\[E\d{3}\] ")
#: Codes of whole-file problems (no line to name).
FILE_LEVEL = {"E205", "E008", "E006", "E009", "E122", "E117"}

# Characters that break naive CSV handling, plus a spread of unicode.
NASTY = ['"', ",", "\t", "\n", "\r", "\r\n", " ", "'", "\\", ";", "|", "\ufeff", "\u2028", "\x85"]
text_chars = st.one_of(
    st.sampled_from(NASTY),
    st.characters(exclude_categories=("Cs",), exclude_characters="\x00\ue000"),
)
texts = st.lists(text_chars, min_size=1, max_size=30).map("".join).filter(lambda t: t.strip())
labels = st.sampled_from(["pos", "neg", "a b", "x,y", 'q"uote', "été", "0", "1"])


SCRATCH = Path(tempfile.mkdtemp(prefix="badinput-"))
_NAMES = itertools.count()


@pytest.fixture(scope="module", autouse=True)
def _report_count() -> Iterator[None]:
    yield
    shutil.rmtree(SCRATCH, ignore_errors=True)
    total = sum(GENERATED.values())
    line = f"bad-input suite: {total} generated inputs ({dict(sorted(GENERATED.items()))})"
    print("\n" + line, file=sys.stderr)
    target = os.environ.get("BAD_INPUT_COUNT_FILE")
    if target:
        Path(target).write_text(json.dumps({"total": total, **GENERATED}) + "\n")


def _tmp_file(suffix: str, data: bytes) -> Path:
    """A fresh file in the module's scratch folder (removed at the end of the module)."""
    path = SCRATCH / f"input-{next(_NAMES)}{suffix}"
    path.write_bytes(data)
    return path


def _check_error(err: TextcatKitError, path: Path, n_lines: int) -> None:
    """A coded message naming the file, and a line in range for record-level problems."""
    message = str(err)
    assert CODED.match(message), message
    code = message[1:5]
    assert str(path) in message or path.name in message, message
    if code not in FILE_LEVEL:
        found = re.search(re.escape(str(path)) + r":(\d+)", message)
        assert found, message
        assert 1 <= int(found.group(1)) <= max(n_lines, 1), message


def _lines(data: bytes) -> list[str]:
    text = data.decode("utf-8", errors="surrogateescape").removeprefix("\ufeff")
    lines = text.split("\n") if "\n" in text or "\r" not in text else text.split("\r")
    if lines and lines[-1] == "":
        lines.pop()
    return lines


def _reparse(lines: list[str], fmt: str, quoting: bool) -> list[str]:
    """The fields of one record, by an independent parser."""
    chunk = "\n".join(lines)
    if fmt == "tsv" and not quoting:
        assert len(lines) == 1
        return lines[0].removesuffix("\r").split("\t")
    # A lone CR is text to the readers (only LF ends a line); the csv module would end the
    # record there, so it reads a stand-in that is mapped back.
    chunk = re.sub(r"\r(?!\n|$)", PLACEHOLDER, chunk)
    rows = list(
        csv.reader(
            io.StringIO(chunk + "\n", newline=""),
            delimiter="," if fmt == "csv" else "\t",
            strict=True,
        )
    )
    assert len(rows) == 1, (chunk, rows)
    return [value.replace(PLACEHOLDER, "\r") for value in rows[0]]


def _check_delimited(path: Path, data: bytes, fmt: str, result: Any, quoting: bool) -> None:
    """Accounting and 'what the file says' for a successful CSV/TSV read."""
    lines = _lines(data)
    assert result.n_rows == len(result.records) + result.n_skipped
    # Every line belongs to exactly one record, the header or is blank.
    covered: list[int] = []
    for start, end in result.spans:
        covered.extend(range(start, end + 1))
    assert len(covered) == len(set(covered))
    assert len(covered) + result.n_blank + result.header_lines == len(lines)
    first = result.header_start
    header_fields = _reparse(lines[first - 1 : first - 1 + result.header_lines], fmt, quoting)
    header = [h.strip() for h in header_fields]
    for record in result.records:
        start = record.meta["line"]
        end = next(e for s, e in result.spans if s == start)
        fields = dict(zip(header, _reparse(lines[start - 1 : end], fmt, quoting), strict=True))
        assert record.text == fields["text"].strip()
        assert record.labels == [fields["label"].strip()]
        if end > start:
            assert any(note.startswith("[W200]") for note in result.notes)


def _write_csv(rows: list[tuple[str, str]], fmt: str, quoting: int, terminator: str) -> str:
    """RFC 4180 writing: a field holding the delimiter, a quote, CR or LF is quoted (Python's
    writer leaves a lone CR unquoted when the line terminator is LF)."""
    delimiter = "," if fmt == "csv" else "\t"

    def field(value: str) -> str:
        special = any(c in value for c in (delimiter, '"', "\r", "\n"))
        if quoting == csv.QUOTE_ALL or special or (quoting == csv.QUOTE_NONNUMERIC and value):
            return '"' + value.replace('"', '""') + '"'
        return value

    lines = [delimiter.join(map(field, row)) for row in [("text", "label"), *rows]]
    return terminator.join(lines) + terminator


quotings = st.sampled_from([csv.QUOTE_MINIMAL, csv.QUOTE_ALL, csv.QUOTE_NONNUMERIC])
terminators = st.sampled_from(["\n", "\r\n"])


@given(
    rows=st.lists(st.tuples(texts, labels), min_size=1, max_size=12),
    fmt=st.sampled_from(["csv", "tsv"]),
    quoting=quotings,
    terminator=terminators,
    bom=st.booleans(),
)
def test_valid_files_read_exactly(
    rows: list[tuple[str, str]], fmt: str, quoting: int, terminator: str, bom: bool
) -> None:
    """Files written by a CSV writer are read back exactly (texts stripped)."""
    GENERATED["valid csv/tsv"] += 1
    content = _write_csv(rows, fmt, quoting, terminator)
    data = (b"\xef\xbb\xbf" if bom else b"") + content.encode("utf-8")
    path = _tmp_file(f".{fmt}", data)
    result = read_file(path, ReadSettings(tsv_quoting="csv"))
    assert [(r.text, r.labels) for r in result.records] == [
        (text.strip(), [label]) for text, label in rows
    ]
    _check_delimited(path, data, fmt, result, quoting=True)


mutations = st.lists(
    st.tuples(
        st.sampled_from(["insert", "delete", "duplicate-line", "truncate", "bytes"]),
        st.integers(min_value=0, max_value=10_000),
        st.sampled_from(['"', ",", "\t", "\n", "\r", "\x00", '""', '"\n', "\xe9", "\ufeff"]),
    ),
    min_size=1,
    max_size=4,
)


def _mutate(data: bytes, steps: list[tuple[str, int, str]]) -> bytes:
    for kind, position, piece in steps:
        at = position % (len(data) + 1)
        if kind == "insert":
            data = data[:at] + piece.encode("utf-8") + data[at:]
        elif kind == "delete" and data:
            data = data[: at % len(data)] + data[at % len(data) + 1 :]
        elif kind == "duplicate-line":
            lines = data.split(b"\n")
            i = at % len(lines)
            data = b"\n".join(lines[: i + 1] + [lines[i]] + lines[i + 1 :])
        elif kind == "truncate":
            data = data[:at]
        elif kind == "bytes":
            data = data[:at] + bytes([0xE9, 0xFF, 0x80][at % 3]) + data[at:]
    return data


@given(
    rows=st.lists(st.tuples(texts, labels), min_size=1, max_size=10),
    fmt=st.sampled_from(["csv", "tsv"]),
    tsv_quoting=st.sampled_from(["none", "csv"]),
    quoting=quotings,
    terminator=terminators,
    steps=mutations,
    header=st.sampled_from(["text,label", "text,text", "label,text,extra", "txt,label", ""]),
)
def test_corrupted_files_keep_the_invariant(
    rows: list[tuple[str, str]],
    fmt: str,
    tsv_quoting: str,
    quoting: int,
    terminator: str,
    steps: list[tuple[str, int, str]],
    header: str,
) -> None:
    GENERATED["corrupted csv/tsv"] += 1
    content = _write_csv(rows, fmt, quoting, terminator)
    if header:  # replace the header line (duplicate / missing / extra columns)
        delimiter = "," if fmt == "csv" else "\t"
        content = header.replace(",", delimiter) + terminator + content.split(terminator, 1)[1]
    data = _mutate(content.encode("utf-8"), steps)
    path = _tmp_file(f".{fmt}", data)
    quoting_on = fmt == "csv" or tsv_quoting == "csv"
    for lenient in (False, True):
        try:
            result = read_file(path, ReadSettings(lenient=lenient, tsv_quoting=tsv_quoting))  # type: ignore[arg-type]
        except DataError as err:
            _check_error(err, path, len(_lines(data)))
            continue
        _check_delimited(path, data, fmt, result, quoting_on)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=6,
)
label_values = st.one_of(
    labels,
    st.lists(labels, max_size=3),
    st.dictionaries(labels, st.floats(min_value=0, max_value=1), min_size=1, max_size=3),
    json_values,
)


@given(
    records=st.lists(
        st.fixed_dictionaries(
            {"text": st.one_of(texts, json_values)},
            optional={"labels": label_values, "label": label_values, "cats": label_values},
        ),
        min_size=1,
        max_size=8,
    ),
    broken=st.lists(
        st.tuples(
            st.integers(0, 20),
            st.sampled_from(
                [
                    "{",
                    "[1, 2]",
                    '{"text": "a"',
                    "nul\x00",
                    '"x"',
                    '{"text": "\\ud800", "label": "a"}',
                ]
            ),
        ),
        max_size=3,
    ),
    ascii_only=st.booleans(),
)
def test_jsonl_keeps_the_invariant(
    records: list[dict[str, Any]], broken: list[tuple[int, str]], ascii_only: bool
) -> None:
    GENERATED["jsonl"] += 1
    lines = [json.dumps(r, ensure_ascii=ascii_only) for r in records]
    for position, line in broken:
        lines.insert(position % (len(lines) + 1), line)
    data = ("\n".join(lines) + "\n").encode("utf-8", errors="surrogatepass")
    path = _tmp_file(".jsonl", data)
    for lenient in (False, True):
        try:
            result = read_file(path, ReadSettings(lenient=lenient, multilabel=True, label_sep="|"))
        except DataError as err:
            _check_error(err, path, len(lines))
            continue
        assert result.n_rows == len(result.records) + result.n_skipped == len(lines)
        for record in result.records:
            source = json.loads(lines[record.meta["line"] - 1])
            assert record.text == source["text"].strip()
            key = next(k for k in ("label", "labels", "cats") if k in source)
            value = source[key]
            if isinstance(value, dict):
                expected = [
                    k for k, v in value.items() if not isinstance(v, bool) and v >= 0.5 or v is True
                ]
            elif isinstance(value, list):
                # ids written as integral floats (pandas) are ids: 2.0 -> "2"
                as_text = [str(int(v)) if isinstance(v, float) else str(v).strip() for v in value]
                expected = [v for v in as_text if v]
            elif isinstance(value, str):
                expected = [p.strip() for p in value.split("|") if p.strip()]
            else:
                expected = [] if value is None else [str(int(value))]
            assert record.labels == list(dict.fromkeys(expected))


@given(data=st.binary(max_size=400), suffix=st.sampled_from([".csv", ".tsv", ".jsonl"]))
def test_random_bytes_never_crash(data: bytes, suffix: str) -> None:
    GENERATED["random bytes"] += 1
    path = _tmp_file(suffix, data)
    for lenient in (False, True):
        try:
            result = read_file(path, ReadSettings(lenient=lenient, multilabel=None))
        except DataError as err:
            _check_error(err, path, len(_lines(data)))
            continue
        assert result.n_rows == len(result.records) + result.n_skipped


@given(
    data=st.sampled_from(["utf-16", "utf-16-le", "utf-32", "latin-1", "cp1252"]),
    rows=st.lists(st.tuples(texts, labels), min_size=1, max_size=5),
)
def test_other_encodings_are_named(data: str, rows: list[tuple[str, str]]) -> None:
    GENERATED["encodings"] += 1
    content = _write_csv(rows, "csv", csv.QUOTE_MINIMAL, "\n")
    try:
        raw = content.encode(data)
    except UnicodeEncodeError:
        raw = content.encode(data, errors="replace")
    path = _tmp_file(".csv", raw)
    try:
        result = read_file(path, ReadSettings())
    except DataError as err:
        _check_error(err, path, len(_lines(raw)))
        assert re.search(r"\[E20[45]\]|\[E20[0-3]\]|\[E214\]|\[E001\]", str(err))
        return
    # Decodable as UTF-8 (e.g. plain ASCII content): read exactly what the file says.
    expected = list(csv.reader(io.StringIO(raw.decode("utf-8-sig"), newline="")))[1:]
    assert [r.text for r in result.records] == [row[0].strip() for row in expected]


@given(
    rows=st.lists(
        st.tuples(
            st.one_of(texts, st.just(""), st.just("  ")),
            st.one_of(texts, st.just("")),
            st.one_of(
                st.integers(-2, 6).map(str),
                st.sampled_from(["1.0", "2.5", "x", "", "1,2", '["0", "1"]', "[3]"]),
            ),
        ),
        min_size=1,
        max_size=10,
    ),
    base=st.sampled_from([0, 1]),
    n_labels=st.integers(1, 5),
    multilabel=st.sampled_from([None, True, False]),
)
def test_label_ids_and_joined_text_fields(
    rows: list[tuple[str, str, str]], base: int, n_labels: int, multilabel: bool | None
) -> None:
    GENERATED["label ids + title,body"] += 1
    label_set = [f"L{i}" for i in range(n_labels)]
    content = _write_csv([(f"{t}\x1f{b}", cell) for t, b, cell in rows], "csv", csv.QUOTE_ALL, "\n")
    content = content.replace("\x1f", '","').replace('"text","label"', '"title","body","label"')
    data = content.encode("utf-8")
    path = _tmp_file(".csv", data)
    settings_ = ReadSettings(text_key="title,body", label_ids=base, multilabel=multilabel)
    for lenient in (False, True):
        settings_.lenient = lenient
        try:
            result = read_file(path, settings_, label_set)
        except DataError as err:
            _check_error(err, path, len(_lines(data)))
            continue
        assert result.n_rows == len(result.records) + result.n_skipped == len(rows)
        row_at = {start: i for i, (start, _) in enumerate(result.spans)}
        for record in result.records:
            title, body, cell = rows[row_at[record.meta["line"]]]
            assert record.text == "\n".join(p.strip() for p in (title, body) if p.strip())
            for label in record.labels:
                assert label in label_set
            if cell.strip().lstrip("-").isdigit():
                index = int(cell) - base
                assert 0 <= index < n_labels and record.labels == [label_set[index]]


# ------------------------------------------------------------------ Label Studio

LS_CONFIG = (
    '<View><Text name="text" value="$text"/><Choices name="label" toName="text" '
    'choice="multiple"><Choice value="pos"/><Choice value="neg"/><Choice value="x,y"/>'
    "</Choices></View>"
)
SCHEME = parse_label_config(LS_CONFIG, source="config")

ls_tasks = st.lists(
    st.tuples(
        texts,
        st.lists(
            st.lists(st.sampled_from(["pos", "neg", "x,y"]), min_size=1, max_size=2), max_size=3
        ),
        st.one_of(st.none(), texts, st.integers()),  # a task data field named "id"
    ),
    min_size=1,
    max_size=6,
)


def _ls_csv(tasks: list[Any], fmt: str) -> str:
    """An export shaped like label-studio-sdk's csv2 converter writes it."""
    header = ["annotation_id", "annotator", "created_at", "id", "label", "lead_time", "text"]
    out = io.StringIO()
    writer = csv.writer(
        out,
        delimiter="," if fmt == "CSV" else "\t",
        quoting=csv.QUOTE_NONNUMERIC,
        lineterminator="\r\n",
    )
    writer.writerow(header)
    annotation = 0
    for task_id, (text, answers, data_id) in enumerate(tasks, start=1):
        shown_id = data_id if data_id is not None else task_id
        if not answers:
            writer.writerow(["", "", "", shown_id, "", "", text])
        for choices in answers:
            annotation += 1
            value = choices[0] if len(choices) == 1 else json.dumps({"choices": choices})
            writer.writerow([annotation, "1", "t", shown_id, value, 1.0, text])
    return out.getvalue()


@given(tasks=ls_tasks, fmt=st.sampled_from(["CSV", "TSV"]), steps=st.one_of(st.just([]), mutations))
def test_labelstudio_tables_keep_the_invariant(tasks: list[Any], fmt: str, steps: Any) -> None:
    GENERATED["label studio csv/tsv"] += 1
    data = _mutate(_ls_csv(tasks, fmt).encode("utf-8"), steps)
    try:
        export = parse_export(data, SCHEME, source="export", export_format=fmt)
        result = import_tasks(export, SCHEME)
    except DataError as err:
        assert CODED.match(str(err)) and "export" in str(err), str(err)
        return
    assert result.summary.is_balanced()
    if (
        not steps
        and len({t[2] for t in tasks if t[2] is not None})
        == len([t for t in tasks if t[2] is not None])
        and all(t[2] is None for t in tasks)
    ):
        assert len(export.tasks) == len(tasks)
        assert [t.text for t in export.tasks] == [t[0] for t in tasks]
        assert [len(t.annotations) for t in export.tasks] == [len(t[1]) for t in tasks]
    for task in export.tasks:
        for annotation in task.annotations:
            assert set(annotation.choices) <= {"pos", "neg", "x,y"}


@given(tasks=ls_tasks, cut=st.integers(0, 5000), insert=st.sampled_from(["", "{", "]", '"', ","]))
def test_labelstudio_json_keeps_the_invariant(tasks: list[Any], cut: int, insert: str) -> None:
    GENERATED["label studio json"] += 1
    items = [
        {
            "id": i,
            "data": {"text": text},
            "annotations": [
                {
                    "id": 100 * i + j,
                    "completed_by": 1,
                    "result": [
                        {
                            "from_name": "label",
                            "to_name": "text",
                            "type": "choices",
                            "value": {"choices": c},
                        }
                    ],
                }
                for j, c in enumerate(annotations)
            ],
        }
        for i, (text, annotations, _) in enumerate(tasks, start=1)
    ]
    content = json.dumps(items)
    if insert:
        at = cut % (len(content) + 1)
        content = content[:at] + insert + content[at:]
    try:
        export = parse_export(content.encode("utf-8"), SCHEME, source="export.json")
        result = import_tasks(export, SCHEME)
    except DataError as err:
        assert CODED.match(str(err)) and "export.json" in str(err), str(err)
        return
    assert result.summary.is_balanced()
    if not insert:
        assert [t.text for t in export.tasks] == [t[0] for t in tasks]

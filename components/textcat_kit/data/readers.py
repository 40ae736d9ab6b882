"""Read labelled texts from CSV, TSV and JSONL into :class:`Record` objects.

The readers see the file as it is. They do not hand the file to a parser and count what
came back; they scan its *physical records* themselves:

- a JSONL record is one non-blank line;
- a TSV record is one non-blank line, split on tabs, with no quote processing (unless
  ``tsv_quoting="csv"``, for TSV files written with CSV quoting, e.g. by pandas);
- a CSV record is one line, or several when a quoted field holds a line break (RFC 4180).

Every record is read, or fails with a reason. Strict mode (the default) stops at the first
failure with a coded error naming ``file:line``; lenient mode skips the record, counts the
reason and goes on, so that ``records in == read + skipped`` holds for every file and
every non-blank line belongs to exactly one record. Things that are never guessed:

- a quoted field that never closes (a stray ``"`` at the start of a field) is an error at the
  line where it opened, not a merge of the following rows; in lenient mode that one line is
  skipped and reading resumes at the next;
- a ``"`` inside a quoted field that is not doubled and not followed by the delimiter or
  the line end is an error with line and column (CSV readers elsewhere silently drop it);
- a ``"`` inside an *unquoted* field is kept as a literal character;
- records with the wrong number of fields, duplicate header names, bytes that are not
  UTF-8 (with a guess of the real encoding), non-numeric scores in a ``cats`` dict and
  label ids outside the label set are coded errors. Fields of any length are read.

Labels: a cell holds one label, several joined by ``label_sep``, or a JSON list
(``["a", "b"]``); JSONL may also give a list or a ``cats`` dict of scores. Which form a
file uses is decided per file from all its cells and reported in :attr:`ReadResult.notes`.
Numeric label ids are mapped through the label set with an explicit base (``label_ids``).
Several text fields (``text_key="title,body"``) are joined with :data:`TEXT_JOIN`.
"""

from __future__ import annotations

import codecs
import json
import math
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ..errors import DataError, Errors, Warnings
from .records import Record

FileFormat = Literal["csv", "tsv", "jsonl"]
TsvQuoting = Literal["none", "csv"]
LABEL_KEYS = ("label", "labels", "cats")
#: Separator placed between the fields of a multi-field text (``--text-key title,body``).
#: A line break keeps every character of every field and needs no punctuation guess.
TEXT_JOIN = "\n"
_ID_KEYS = ("id", "task_id", "comment_id")


@dataclass
class ReadSettings:
    """How to find texts and labels in a file.

    ``text_key`` may name several fields separated by commas (``"title,body"``); their
    non-empty values are joined with :data:`TEXT_JOIN`. ``label_key`` None means: the first
    of ``label``, ``labels``, ``cats`` present. ``columns`` names the columns of a
    header-less CSV/TSV (e.g. GoEmotions: ``["text", "labels", "id"]``).

    ``multilabel``: True allows several (or no) labels per text and splits cells on
    ``label_sep``; False allows exactly one label per text and never splits; None (auto)
    decides per file whether cells are separator-joined lists and leaves the exclusive /
    multi-label choice to the caller, which sees every file.

    ``label_ids``: None (labels are names), 0 or 1 (labels are 0- or 1-based indices into
    the label set). ``labels_are_indices`` is the former spelling of ``label_ids=0``.
    ``delimiter`` overrides the field separator of CSV (``,``) / TSV (tab), e.g. ``;``.
    """

    text_key: str = "text"
    label_key: str | None = None
    columns: list[str] | None = None
    multilabel: bool | None = False
    label_sep: str = ","
    labels_are_indices: bool = False
    label_ids: int | None = None
    lenient: bool = False
    fmt: FileFormat | None = None
    tsv_quoting: TsvQuoting = "none"
    delimiter: str | None = None

    @property
    def text_keys(self) -> list[str]:
        keys = [k.strip() for k in self.text_key.split(",") if k.strip()]
        return keys or [self.text_key]

    @property
    def id_base(self) -> int | None:
        if self.label_ids is not None:
            return self.label_ids
        return 0 if self.labels_are_indices else None


@dataclass
class ReadResult:
    """Records read from one file plus the accounting of what was skipped and why.

    ``n_rows`` counts physical records (non-blank lines, or several lines for a CSV
    record with a quoted line break); ``n_lines`` the file's lines, ``n_blank`` the blank
    ones. ``multiline`` lists ``(first, last)`` lines of records spanning several lines,
    ``spans`` the lines of every record in file order (read or skipped).
    """

    path: Path
    records: list[Record]
    n_rows: int
    skipped: Counter[str] = field(default_factory=Counter)
    skipped_rows: list[tuple[int, str]] = field(default_factory=list)
    n_lines: int = 0
    n_blank: int = 0
    header_lines: int = 0
    header_start: int = 0
    multiline: list[tuple[int, int]] = field(default_factory=list)
    spans: list[tuple[int, int]] = field(default_factory=list)
    label_format: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def n_skipped(self) -> int:
        return sum(self.skipped.values())

    @property
    def balanced(self) -> bool:
        return self.n_rows == len(self.records) + self.n_skipped

    def summary(self) -> str:
        reasons = ", ".join(f"{reason}: {n}" for reason, n in sorted(self.skipped.items()))
        return (
            f"{self.path}: {self.n_rows} records in = {len(self.records)} read + "
            f"{self.n_skipped} skipped" + (f" ({reasons})" if reasons else "")
        )


# ----------------------------------------------------------------------------- decoding


def detect_format(path: Path, fmt: FileFormat | None = None) -> FileFormat:
    if fmt is not None:
        return fmt
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return "csv"
    if suffix in (".tsv", ".tab"):
        return "tsv"
    if suffix in (".jsonl", ".ndjson"):
        return "jsonl"
    raise DataError(Errors.E006.format(path=path, suffix=suffix or "(none)"))


_UTF16_32_BOMS = (
    (codecs.BOM_UTF32_LE, "UTF-32LE"),
    (codecs.BOM_UTF32_BE, "UTF-32BE"),
    (codecs.BOM_UTF16_LE, "UTF-16LE"),
    (codecs.BOM_UTF16_BE, "UTF-16BE"),
)


def guess_encoding(raw: bytes) -> str:
    """A best guess of the encoding of bytes that are not UTF-8 (for error messages)."""
    for bom, name in _UTF16_32_BOMS:
        if raw.startswith(bom):
            return name
    sample = raw[:4096]
    if sample.count(0) > len(sample) // 4:
        # ASCII text in UTF-16 has a NUL in every other byte.
        even = sample[0::2].count(0)
        odd = sample[1::2].count(0)
        return "UTF-16BE" if even > odd else "UTF-16LE"
    try:
        from charset_normalizer import from_bytes

        best = from_bytes(raw[:200_000]).best()
        guess = None if best is None else str(best.encoding)
    except Exception:  # noqa: BLE001 - a guess only; fall back to the common case
        guess = None
    single_byte = guess is None or guess.startswith(("cp12", "latin", "iso8859"))
    if guess and guess not in ("utf_8", "ascii") and not single_byte:
        return guess.replace("_", "-")
    # Short samples do not tell the Western code pages apart; Windows-1252 (what Excel
    # writes) is by far the most common, and it decodes every latin-1 text too.
    try:
        raw.decode("cp1252")
        return "cp1252"
    except UnicodeDecodeError:
        return "latin-1"


def _is_wide_encoding(raw: bytes) -> bool:
    if any(raw.startswith(bom) for bom, _ in _UTF16_32_BOMS):
        return True
    sample = raw[:4096]
    return len(sample) >= 4 and sample.count(0) > len(sample) // 4


def decode_text(path: Path, *, lenient: bool = False) -> str:
    """The file as text. UTF-8 only (a BOM is dropped).

    UTF-16/32 files are refused as a whole (E205). Other bytes that are not UTF-8 stop a
    strict read with E204 (line, offending byte, a guess of the real encoding); a lenient
    read keeps them as lone surrogates (``surrogateescape``) so the records holding them
    can be skipped one by one (see :func:`has_undecodable`).
    """
    raw = path.read_bytes()
    if _is_wide_encoding(raw):
        guess = guess_encoding(raw)
        raise DataError(Errors.E205.format(path=path, guess=guess))
    raw = raw.removeprefix(codecs.BOM_UTF8)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as err:
        if not lenient:
            line = raw.count(b"\n", 0, err.start) + 1
            guess = guess_encoding(raw)
            raise DataError(
                Errors.E204.format(
                    path=path,
                    line=line,
                    byte=raw[err.start : err.start + 1].hex(),
                    offset=err.start,
                    guess=guess,
                    suffix=path.suffix,
                )
            ) from None
    return raw.decode("utf-8", errors="surrogateescape")


def decode_utf8(path: Path) -> str:
    """Strict UTF-8 decoding (see :func:`decode_text`)."""
    return decode_text(path, lenient=False)


def has_undecodable(text: str) -> bool:
    """Whether ``text`` holds a lone surrogate: a byte that was not UTF-8, or a JSON
    ``\\ud800``-style escape; neither can be stored as UTF-8."""
    return any("\ud800" <= char <= "\udfff" for char in text)


# ------------------------------------------------------------------- physical records


@dataclass
class RawRecord:
    """One physical record: its first and last line and its fields, or why it is broken."""

    start: int
    end: int
    fields: list[str] | None = None
    value: Any = None
    reason: str = ""
    error: str = ""


def _split_lines(text: str) -> list[str]:
    if "\n" not in text and "\r" in text:
        lines = text.split("\r")  # classic Mac line ends
    else:
        lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return lines


class _QuoteError(Exception):
    def __init__(self, line_index: int, column: int, kind: str) -> None:
        super().__init__(kind)
        self.line_index = line_index
        self.column = column
        self.kind = kind


def _parse_quoted_record(lines: list[str], first: int, delimiter: str) -> tuple[list[str], int]:
    """Parse the record that starts at ``lines[first]`` with RFC 4180 quoting.

    Returns the fields and the index of the record's last line. Raises
    :class:`_QuoteError` for a quote that is not doubled and not followed by the
    delimiter or the line end ("stray"), or a quoted field that never closes ("open").
    """
    fields: list[str] = []
    index = first
    line = lines[index]
    line_body = line[:-1] if line.endswith("\r") else line
    pos = 0
    while True:
        # At the start of a field.
        if line_body.startswith('"', pos):
            parts: list[str] = []
            open_index = index
            pos += 1
            while True:
                quote = line_body.find('"', pos)
                if quote < 0:
                    parts.append(line[pos:])  # keep the line's own \r inside the field
                    parts.append("\n")
                    index += 1
                    if index >= len(lines):
                        raise _QuoteError(open_index, 0, "open")
                    line = lines[index]
                    line_body = line[:-1] if line.endswith("\r") else line
                    pos = 0
                    continue
                parts.append(line_body[pos:quote])
                after = line_body[quote + 1 : quote + 2]
                if after == '"':
                    parts.append('"')
                    pos = quote + 2
                    continue
                if after == "":
                    fields.append("".join(parts))
                    return fields, index
                if after == delimiter:
                    fields.append("".join(parts))
                    pos = quote + 2
                    break
                raise _QuoteError(index, quote + 1, "stray")
            continue
        end = line_body.find(delimiter, pos)
        if end < 0:
            fields.append(line_body[pos:])
            return fields, index
        fields.append(line_body[pos:end])
        pos = end + 1


def scan_delimited(
    text: str, path: Path, delimiter: str, *, quoting: bool
) -> Iterator[RawRecord | int]:
    """Yield the physical records of a CSV/TSV text; an ``int`` marks a blank line.

    A broken record covers the line where it starts only: reading resumes at the next
    line, so a stray quote never swallows the rows after it.
    """
    lines = _split_lines(text)
    index = 0
    while index < len(lines):
        line = lines[index]
        if not line.strip():
            yield index + 1
            index += 1
            continue
        if not quoting or '"' not in line:
            body = line[:-1] if line.endswith("\r") else line
            yield RawRecord(index + 1, index + 1, body.split(delimiter))
            index += 1
            continue
        try:
            fields, last = _parse_quoted_record(lines, index, delimiter)
        except _QuoteError as err:
            if err.kind == "open":
                message = Errors.E201.format(path=path, line=index + 1, n_lines=len(lines) - index)
                reason = "unbalanced quote"
            else:
                context = lines[err.line_index][max(0, err.column - 20) : err.column + 20]
                message = Errors.E202.format(
                    path=path,
                    line=err.line_index + 1,
                    column=err.column + 1,
                    context=context.rstrip("\r"),
                    start=index + 1,
                )
                reason = "stray quote"
            yield RawRecord(index + 1, index + 1, reason=reason, error=message)
            index += 1
            continue
        yield RawRecord(index + 1, last + 1, fields)
        index = last + 1


def scan_jsonl(text: str, path: Path) -> Iterator[RawRecord | int]:
    """Yield one record per non-blank line (JSON strings cannot hold a raw line break)."""
    for index, line in enumerate(_split_lines(text)):
        if not line.strip():
            yield index + 1
            continue
        if has_undecodable(line):
            bad = next(c for c in line if "\ud800" <= c <= "\udfff")
            yield RawRecord(
                index + 1,
                index + 1,
                reason="not UTF-8",
                error=Errors.E204.format(
                    path=path,
                    line=index + 1,
                    byte=f"{ord(bad) - 0xDC00:02x}",
                    offset="? in the line",
                    guess="another encoding",
                    suffix=path.suffix,
                ),
            )
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as err:
            hint = ""
            if index == 0 and line.strip() in ("[", "[{") or line.lstrip().startswith("[{"):
                hint = "; the file looks like one JSON array, not JSON Lines (one object a line)"
            except_detail = f"invalid JSON at column {err.colno}: {err.msg}{hint}"
            yield RawRecord(
                index + 1,
                index + 1,
                reason="malformed record",
                error=Errors.E005.format(path=path, line=index + 1, detail=except_detail),
            )
            continue
        except RecursionError:
            yield RawRecord(
                index + 1,
                index + 1,
                reason="malformed record",
                error=Errors.E005.format(
                    path=path, line=index + 1, detail="JSON nested too deeply"
                ),
            )
            continue
        yield RawRecord(index + 1, index + 1, value=value)


# ------------------------------------------------------------------------------ labels


def _parse_json_list(cell: str) -> list[Any] | None:
    try:
        value = json.loads(cell)
    except (json.JSONDecodeError, RecursionError):
        return None
    return value if isinstance(value, list) else None


def _label_text(value: Any) -> str | None:
    """A label from a JSON value: strings and integers (ids); None for anything else."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return None


def decide_split(cells: Sequence[str], sep: str, multilabel: bool | None) -> tuple[bool, str]:
    """Whether string label cells of one file are ``sep``-joined label lists.

    Explicit ``multilabel`` decides. In auto mode a cell containing ``sep`` is a list when
    most of the parts it splits into are labels in their own right: they occur alone in
    another cell, or in several different joined cells (or they are all numeric ids).
    ``"sports,politics"`` next to ``"sports"`` is a list; ``"Yes, definitely"`` whose parts
    occur nowhere else is one label.
    """
    if not sep:
        return False, "no label separator"
    joined = [c for c in cells if sep in c]
    if multilabel is True:
        return True, f"'{sep}'-joined labels are split (--multilabel true)"
    if multilabel is False:
        note = "labels are not split (--multilabel false)"
        if joined:
            note += f"; {len(joined)} label cell(s) contain '{sep}' and are read as one label"
        return False, note
    if not joined:
        return False, f"one label per cell (no cell contains '{sep}')"
    alone = {c.strip() for c in cells if sep not in c}
    seen_in: dict[str, set[str]] = {}
    for cell in set(joined):
        for part in (p.strip() for p in cell.split(sep)):
            if part:
                seen_in.setdefault(part, set()).add(cell)
    if seen_in and all(p.lstrip("-").isdigit() for p in seen_in):
        return (
            True,
            f"{len(joined)} label cell(s) hold '{sep}'-joined numeric ids: split on '{sep}'",
        )
    shared = [p for p, where in seen_in.items() if p in alone or len(where) > 1]
    if seen_in and len(shared) >= 0.5 * len(seen_in):
        return True, (
            f"{len(joined)} label cell(s) hold '{sep}'-joined labels ({len(shared)} of "
            f"{len(seen_in)} parts are labels elsewhere): split on '{sep}'"
        )
    return False, (
        f"{len(joined)} label cell(s) contain '{sep}' but their parts are not labels on their "
        f"own: each cell is one label (pass --multilabel true to split them)"
    )


# ------------------------------------------------------------------------------ reader


@dataclass
class _Row:
    start: int
    end: int
    data: dict[str, Any]


def _rows(path: Path, fmt: FileFormat, settings: ReadSettings, result: ReadResult) -> list[Any]:
    """Physical records of the file as ``_Row`` (or a broken :class:`RawRecord`)."""
    text = decode_text(path, lenient=settings.lenient)
    result.n_lines = len(_split_lines(text))
    out: list[Any] = []
    if fmt == "jsonl":
        for item in scan_jsonl(text, path):
            if isinstance(item, int):
                result.n_blank += 1
            elif item.error:
                out.append(item)
            elif not isinstance(item.value, dict):
                detail = f"expected a JSON object, got {type(item.value).__name__}"
                out.append(
                    RawRecord(
                        item.start,
                        item.end,
                        reason="malformed record",
                        error=Errors.E005.format(path=path, line=item.start, detail=detail),
                    )
                )
            else:
                out.append(_Row(item.start, item.end, item.value))
        return out
    delimiter = settings.delimiter or ("," if fmt == "csv" else "\t")
    quoting = fmt == "csv" or settings.tsv_quoting == "csv"
    columns = list(settings.columns) if settings.columns else None
    looks_quoted = 0
    for item in scan_delimited(text, path, delimiter, quoting=quoting):
        if isinstance(item, int):
            result.n_blank += 1
            continue
        if columns is None:
            # The header: a broken header is fatal whatever the mode.
            if item.error:
                raise DataError(item.error)
            assert item.fields is not None
            columns = [c.strip() for c in item.fields]
            result.header_lines = item.end - item.start + 1
            result.header_start = item.start
            duplicates = sorted(n for n, k in Counter(columns).items() if k > 1)
            if duplicates:
                raise DataError(
                    Errors.E200.format(
                        path=path,
                        line=item.start,
                        names=", ".join(repr(d) for d in duplicates),
                        header=", ".join(repr(c) for c in columns),
                    )
                )
            hint = _delimiter_hint(columns, delimiter)
            wanted = (settings.label_key,) if settings.label_key else LABEL_KEYS
            if not any(key in columns for key in wanted):
                raise DataError(
                    Errors.E215.format(
                        path=path,
                        line=item.start,
                        wanted=" | ".join(wanted),
                        available=", ".join(columns),
                    )
                    + hint
                )
            for key in settings.text_keys:
                if key not in columns:
                    raise DataError(
                        Errors.E214.format(
                            path=path, line=item.start, key=key, available=", ".join(columns)
                        )
                        + hint
                    )
            continue
        if item.error:
            out.append(item)
            continue
        assert item.fields is not None
        if len(item.fields) != len(columns):
            out.append(
                RawRecord(
                    item.start,
                    item.end,
                    reason="wrong number of fields",
                    error=Errors.E203.format(
                        path=path,
                        line=item.start,
                        n_fields=len(item.fields),
                        expected=len(columns),
                        columns=", ".join(columns),
                        hint=_field_count_hint(fmt, quoting, item.fields, len(columns)),
                    ),
                )
            )
            continue
        if item.end > item.start:
            result.multiline.append((item.start, item.end))
        if not quoting:
            looks_quoted += sum(_looks_csv_quoted(v) for v in item.fields)
        out.append(_Row(item.start, item.end, dict(zip(columns, item.fields, strict=True))))
    if result.multiline:
        first = result.multiline[0]
        result.notes.append(
            Warnings.W200.format(path=path, n=len(result.multiline), first=f"{first[0]}-{first[1]}")
        )
    if looks_quoted:
        result.notes.append(Warnings.W201.format(path=path, n=looks_quoted))
    return out


def _delimiter_hint(columns: list[str], delimiter: str) -> str:
    """Say so when a one-column header looks split by another delimiter."""
    if len(columns) != 1:
        return ""
    for other, name in ((";", "semicolons"), ("\t", "tabs"), (",", "commas"), ("|", "bars")):
        if other != delimiter and other in columns[0]:
            shown = "\\t" if other == "\t" else other
            return (
                f" The header looks separated by {name}, not by "
                f"{'commas' if delimiter == ',' else 'tabs'}: pass --delimiter '{shown}'."
            )
    return ""


def _looks_csv_quoted(value: str) -> bool:
    return len(value) >= 2 and value.startswith('"') and value.endswith('"')


def _field_count_hint(fmt: FileFormat, quoting: bool, fields: list[str], expected: int) -> str:
    if len(fields) > expected:
        if fmt == "csv":
            return 'a comma inside a text that is not quoted? Quote such fields ("a, b")'
        return "a tab inside a text?"
    if len(fields) < expected and not quoting and any(f.startswith('"') for f in fields):
        return (
            "a line break inside a quoted field? This TSV is read without quote processing; "
            "pass --tsv-quoting csv if it was written with CSV quoting"
        )
    return "a truncated row, or a line break inside an unquoted field?"


def read_file(
    path: Path, settings: ReadSettings, label_set: Sequence[str] | None = None
) -> ReadResult:
    """Read one CSV/TSV/JSONL file.

    When ``label_set`` is given, labels outside it are errors (E003); otherwise every
    label seen is accepted and the caller derives the label set from the data.
    """
    fmt = detect_format(path, settings.fmt)
    base = settings.id_base
    if base is not None and label_set is None:
        raise DataError(Errors.E209.format(base=base))
    known = set(label_set) if label_set is not None else None
    result = ReadResult(path=path, records=[], n_rows=0)

    def fail(line: int, reason: str, message: str) -> None:
        if not settings.lenient:
            raise DataError(message)
        result.skipped[reason] += 1
        result.skipped_rows.append((line, reason))

    rows = _rows(path, fmt, settings, result)
    label_keys = (settings.label_key,) if settings.label_key else LABEL_KEYS

    # Pass 1: label cells of the file decide its label format.
    cells: list[str] = []
    json_cells = 0
    for row in rows:
        if isinstance(row, _Row):
            key = next((k for k in label_keys if k in row.data), None)
            value = row.data.get(key) if key else None
            if isinstance(value, str):
                stripped = value.strip()
                if stripped.startswith("[") and _parse_json_list(stripped) is not None:
                    json_cells += 1
                else:
                    cells.append(stripped)
    split, split_note = decide_split(cells, settings.label_sep, settings.multilabel)
    forms = []
    if json_cells:
        forms.append(f"{json_cells} JSON-list label cell(s)")
    if cells:
        forms.append(split_note)
    result.label_format = "; ".join(forms) or "labels from JSON values"

    for row in rows:
        result.n_rows += 1
        result.spans.append((row.start, row.end))
        if isinstance(row, RawRecord):
            fail(row.start, row.reason, row.error)
            continue
        line = row.start
        data = row.data
        available = ", ".join(map(str, data))
        joined = "".join(map(str, data.values()))
        if fmt != "jsonl" and has_undecodable(joined):
            bad_char = next(c for c in joined if "\ud800" <= c <= "\udfff")
            fail(
                line,
                "not UTF-8",
                Errors.E204.format(
                    path=path,
                    line=line,
                    byte=f"{ord(bad_char) - 0xDC00:02x}",
                    offset="? in the record",
                    guess=guess_encoding(path.read_bytes()),
                    suffix=path.suffix,
                ),
            )
            continue
        # --- text
        parts = []
        missing_key = None
        bad_type = None
        for key in settings.text_keys:
            if key not in data:
                missing_key = key
                break
            value = data[key]
            if value is None:
                continue
            if not isinstance(value, str):
                bad_type = (key, type(value).__name__)
                break
            if value.strip():
                parts.append(value.strip())
        if missing_key is not None or bad_type is not None or not parts:
            key = missing_key or (bad_type[0] if bad_type else settings.text_key)
            fail(
                line,
                "missing text",
                Errors.E001.format(
                    path=path,
                    line=line,
                    text_key=key + (f" (holds a {bad_type[1]}, not a string)" if bad_type else ""),
                    available=available,
                ),
            )
            continue
        text = TEXT_JOIN.join(parts)
        if has_undecodable(text):
            fail(line, "invalid character", Errors.E211.format(path=path, line=line))
            continue
        # --- labels
        label_key = next((k for k in label_keys if k in data), None)
        if label_key is None:
            fail(
                line,
                "missing label",
                Errors.E002.format(
                    path=path, line=line, label_keys=" | ".join(label_keys), available=available
                ),
            )
            continue
        parsed = _labels_of(data[label_key], split, settings.label_sep)
        if isinstance(parsed, str):
            fail(
                line,
                "malformed label",
                Errors.E210.format(path=path, line=line, key=label_key, detail=parsed),
            )
            continue
        labels, soft, cats_error, names = parsed
        if cats_error:
            fail(
                line,
                "non-numeric score",
                Errors.E206.format(path=path, line=line, key=label_key, detail=cats_error),
            )
            continue
        if any(has_undecodable(label) for label in labels):
            fail(line, "invalid character", Errors.E211.format(path=path, line=line))
            continue
        if base is not None and label_set is not None:
            mapped = []
            bad = None
            for label in labels:
                index_or_none = _as_id(label)
                if index_or_none is None:
                    bad = label
                    break
                index = index_or_none
                if not base <= index < base + len(label_set):
                    bad = label
                    break
                mapped.append(label_set[index - base])
            if bad is not None:
                fail(
                    line,
                    "label id out of range",
                    Errors.E208.format(
                        path=path,
                        line=line,
                        value=bad,
                        base=base,
                        n=len(label_set),
                        low=base,
                        high=base + len(label_set) - 1,
                    ),
                )
                continue
            labels = mapped
            if soft:
                fail(
                    line,
                    "malformed label",
                    Errors.E210.format(
                        path=path,
                        line=line,
                        key=label_key,
                        detail="a cats dict cannot be combined with --label-ids",
                    ),
                )
                continue
        if base is not None:
            names = labels
        if not labels and settings.multilabel is False:
            fail(
                line,
                "missing label",
                Errors.E002.format(path=path, line=line, label_keys=label_key, available=available),
            )
            continue
        if known is not None:
            unknown = [name for name in names if name not in known]
            if unknown:
                hint = ""
                if base is None and unknown[0].lstrip("-").isdigit():
                    hint = (
                        " The labels look like numeric ids: pass --label-ids 0 (or 1) to map "
                        "them through the labels file."
                    )
                fail(
                    line,
                    "unknown label",
                    Errors.E003.format(
                        path=path,
                        line=line,
                        label=unknown[0],
                        n_labels=len(known),
                        label_source="the labels file",
                    )
                    + hint,
                )
                continue
        unique = list(dict.fromkeys(labels))
        if settings.multilabel is False and len(unique) > 1:
            fail(
                line,
                "several labels in exclusive task",
                Errors.E007.format(path=path, line=line, n_labels=len(unique), labels=unique),
            )
            continue
        meta: dict[str, Any] = {"source": path.name, "line": line}
        for id_key in _ID_KEYS:
            value = data.get(id_key)
            if isinstance(value, (str, int)) and not isinstance(value, bool) and value != "":
                if not (isinstance(value, str) and has_undecodable(value)):
                    meta["id"] = value
                break
        result.records.append(Record(text, unique, meta, soft or None))
    if result.n_rows == 0:
        raise DataError(Errors.E008.format(path=path))
    return result


def _as_id(label: str) -> int | None:
    """An integer id from ``"3"`` or ``"3.0"`` (pandas writes ids as floats when a column
    has gaps); None for anything else."""
    try:
        return int(label)
    except ValueError:
        pass
    try:
        value = float(label)
    except ValueError:
        return None
    return int(value) if value.is_integer() else None


def _labels_of(
    value: Any, split: bool, sep: str
) -> tuple[list[str], dict[str, float], str, list[str]] | str:
    """``(labels, soft scores, cats error, every label named)`` of one label value, or a
    malformed-label detail. A ``cats`` dict names its negative labels too."""
    if value is None:
        return [], {}, "", []
    if isinstance(value, dict):
        labels: list[str] = []
        soft: dict[str, float] = {}
        for key, score in value.items():
            if isinstance(score, bool):
                score = float(score)
            if not isinstance(score, (int, float)) or not math.isfinite(score):
                return [], {}, f"label '{key}' has the score {score!r}", []
            if not 0.0 <= score <= 1.0:
                return [], {}, f"label '{key}' has the score {score!r}, outside [0, 1]", []
            if score >= 0.5:
                labels.append(str(key))
            if 0.0 < score < 1.0:
                soft[str(key)] = float(score)
        return labels, soft, "", [str(key) for key in value]
    if isinstance(value, list):
        out = []
        for item in value:
            label = _label_text(item)
            if label is None:
                return f"the list item {item!r} is not a label (a string or an integer id)"
            if label:
                out.append(label)
        return out, {}, "", out
    if isinstance(value, bool):
        return f"the value {value!r} is not a label"
    if isinstance(value, (int, float)):
        label = _label_text(value)
        if label is None:
            return f"the number {value!r} is not a label (ids are integers)"
        return [label], {}, "", [label]
    if not isinstance(value, str):
        return f"a {type(value).__name__} is not a label"
    stripped = value.strip()
    if not stripped:
        return [], {}, "", []
    if stripped.startswith("["):
        parsed = _parse_json_list(stripped)
        if parsed is not None:
            return _labels_of(parsed, split, sep)
    if split and sep and sep in stripped:
        parts = [p.strip() for p in stripped.split(sep) if p.strip()]
        return parts, {}, "", parts
    return [stripped], {}, "", [stripped]


def read_labels_file(path: Path) -> list[str]:
    """A label set: a JSON list, or one label per line (blank lines ignored)."""
    text = decode_utf8(path)
    stripped = text.strip()
    if stripped.startswith("["):
        try:
            labels = json.loads(stripped)
        except json.JSONDecodeError as err:
            raise DataError(
                Errors.E005.format(path=path, line=err.lineno, detail=err.msg)
            ) from None
        if not isinstance(labels, list):
            raise DataError(Errors.E005.format(path=path, line=1, detail="not a JSON list"))
        return [str(label).strip() for label in labels]
    return [line.strip() for line in text.splitlines() if line.strip()]

"""Read labelled texts from CSV, TSV and JSONL into :class:`Record` objects.

Readers are strict by default: a malformed row stops the run with an error that names
the file and line and says what to do. In lenient mode the row is skipped and its
reason counted, so that ``rows in == records + skipped`` always holds and nothing is
dropped silently.
"""

from __future__ import annotations

import csv
import io
import json
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ..errors import DataError, Errors
from .records import Record

FileFormat = Literal["csv", "tsv", "jsonl"]
LABEL_KEYS = ("label", "labels", "cats")


@dataclass
class ReadSettings:
    """How to find texts and labels in a file.

    ``label_key`` None means: the first of ``label``, ``labels``, ``cats`` present.
    ``columns`` names the columns of a header-less CSV/TSV (e.g. GoEmotions:
    ``["text", "labels", "id"]``). ``label_sep`` splits a multi-label string cell.
    ``labels_are_indices`` maps integer labels to names through ``label_set``
    (GoEmotions stores emotion ids).
    """

    text_key: str = "text"
    label_key: str | None = None
    columns: list[str] | None = None
    multilabel: bool = False
    label_sep: str = ","
    labels_are_indices: bool = False
    lenient: bool = False
    fmt: FileFormat | None = None


@dataclass
class ReadResult:
    """Records read from one file plus the accounting of what was skipped and why."""

    path: Path
    records: list[Record]
    n_rows: int
    skipped: Counter[str] = field(default_factory=Counter)
    skipped_rows: list[tuple[int, str]] = field(default_factory=list)

    @property
    def n_skipped(self) -> int:
        return sum(self.skipped.values())

    def summary(self) -> str:
        reasons = ", ".join(f"{reason}: {n}" for reason, n in sorted(self.skipped.items()))
        return (
            f"{self.path}: {self.n_rows} rows in = {len(self.records)} read + "
            f"{self.n_skipped} skipped" + (f" ({reasons})" if reasons else "")
        )


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
    raise DataError(Errors.E006.format(path=path, suffix=suffix))


def decode_utf8(path: Path) -> str:
    """Decode a file as UTF-8 (a BOM is dropped); the error names the offending line."""
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        line = raw.count(b"\n", 0, err.start) + 1
        raise DataError(Errors.E004.format(path=path, line=line, detail=err.reason)) from None
    return text.removeprefix("\ufeff")


def _iter_rows(path: Path, fmt: FileFormat, settings: ReadSettings) -> Iterator[tuple[int, Any]]:
    """Yield ``(line, row)``; ``row`` is a dict, or an exception for a malformed record."""
    text = decode_utf8(path)
    if fmt == "jsonl":
        for line_no, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                yield line_no, json.loads(line)
            except json.JSONDecodeError as err:
                yield (
                    line_no,
                    DataError(
                        Errors.E005.format(
                            path=path, line=line_no, detail=f"invalid JSON: {err.msg}"
                        )
                    ),
                )
        return
    delimiter = "," if fmt == "csv" else "\t"
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    columns = settings.columns
    last_line = 0
    for row in reader:
        start_line = last_line + 1
        last_line = reader.line_num
        if not row or all(not cell.strip() for cell in row):
            continue
        if columns is None:
            columns = [c.strip() for c in row]
            continue
        if len(row) != len(columns):
            yield (
                start_line,
                DataError(
                    Errors.E005.format(
                        path=path,
                        line=start_line,
                        detail=f"{len(row)} fields, expected {len(columns)} ({', '.join(columns)})",
                    )
                ),
            )
            continue
        yield start_line, dict(zip(columns, row))


def _raw_labels(value: Any, settings: ReadSettings) -> list[str] | dict[str, float]:
    if isinstance(value, dict):
        return {str(k): float(v) for k, v in value.items()}
    if isinstance(value, list):
        return [str(v).strip() for v in value]
    if value is None:
        return []
    value = str(value).strip()
    if not value:
        return []
    if settings.multilabel and settings.label_sep:
        return [part.strip() for part in value.split(settings.label_sep) if part.strip()]
    return [value]


def read_file(
    path: Path, settings: ReadSettings, label_set: Sequence[str] | None = None
) -> ReadResult:
    """Read one CSV/TSV/JSONL file.

    When ``label_set`` is given, labels outside it are errors (E003); otherwise every
    label seen is accepted and the caller derives the label set from the data.
    """
    fmt = detect_format(path, settings.fmt)
    known = set(label_set) if label_set is not None else None
    result = ReadResult(path=path, records=[], n_rows=0)

    def fail(line: int, reason: str, err: DataError) -> None:
        if not settings.lenient:
            raise err
        result.skipped[reason] += 1
        result.skipped_rows.append((line, reason))

    for line, row in _iter_rows(path, fmt, settings):
        result.n_rows += 1
        if isinstance(row, DataError):
            fail(line, "malformed record", row)
            continue
        if not isinstance(row, dict):
            detail = f"expected a JSON object, got {type(row).__name__}"
            fail(
                line,
                "malformed record",
                DataError(Errors.E005.format(path=path, line=line, detail=detail)),
            )
            continue
        available = ", ".join(map(str, row))
        text = row.get(settings.text_key)
        if not isinstance(text, str) or not text.strip():
            fail(
                line,
                "missing text",
                DataError(
                    Errors.E001.format(
                        path=path, line=line, text_key=settings.text_key, available=available
                    )
                ),
            )
            continue
        label_key = settings.label_key or next((k for k in LABEL_KEYS if k in row), None)
        if label_key is None or label_key not in row:
            keys = settings.label_key or " | ".join(LABEL_KEYS)
            fail(
                line,
                "missing label",
                DataError(
                    Errors.E002.format(path=path, line=line, label_keys=keys, available=available)
                ),
            )
            continue
        raw = _raw_labels(row[label_key], settings)
        soft: dict[str, float] | None = None
        if isinstance(raw, dict):
            labels = [k for k, v in raw.items() if v >= 0.5]
            soft = {k: v for k, v in raw.items() if 0.0 < v < 1.0} or None
            names = list(raw)
        else:
            labels = raw
            names = raw
        if settings.labels_are_indices and label_set is not None:
            try:
                labels = [label_set[int(x)] for x in labels]
            except (ValueError, IndexError):
                detail = f"label ids {labels} are not indices into the {len(label_set)} labels"
                fail(
                    line,
                    "unknown label",
                    DataError(Errors.E005.format(path=path, line=line, detail=detail)),
                )
                continue
            names = labels
        if not labels:
            fail(
                line,
                "missing label",
                DataError(
                    Errors.E002.format(
                        path=path, line=line, label_keys=label_key, available=available
                    )
                ),
            )
            continue
        if known is not None:
            unknown = [name for name in names if name not in known]
            if unknown:
                fail(
                    line,
                    "unknown label",
                    DataError(
                        Errors.E003.format(
                            path=path,
                            line=line,
                            label=unknown[0],
                            n_labels=len(known),
                            label_source="the labels file",
                        )
                    ),
                )
                continue
        if not settings.multilabel and len(labels) > 1:
            fail(
                line,
                "several labels in exclusive task",
                DataError(
                    Errors.E007.format(path=path, line=line, n_labels=len(labels), labels=labels)
                ),
            )
            continue
        meta: dict[str, Any] = {"source": path.name, "line": line}
        for id_key in ("id", "task_id", "comment_id"):
            if id_key in row and row[id_key] not in (None, ""):
                meta["id"] = row[id_key]
                break
        # Leading/trailing newlines are artefacts of export (Banking77 has a few);
        # inner whitespace is kept as the annotator saw it.
        result.records.append(Record(text.strip(), list(dict.fromkeys(labels)), meta, soft))
    if result.n_rows == 0:
        raise DataError(Errors.E008.format(path=path))
    return result


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
        return [str(label) for label in labels]
    return [line.strip() for line in text.splitlines() if line.strip()]

"""Reading Label Studio export files into tasks with their annotations.

Label Studio exports a project in several shapes that carry different amounts of truth:

* ``JSON`` — one object per task with every annotation (cancelled ones and the
  ``ground_truth`` flag included). The only format with complete accounting.
* ``JSON_MIN``, ``CSV``, ``TSV`` — one row per annotation; the task data is flattened into
  the row; cancelled annotations and tasks whose annotations were all cancelled are left
  out; unannotated tasks have empty annotation fields. A multiple-choice value is a bare
  string when one choice was picked and ``{"choices": [...]}`` (a JSON string in CSV/TSV)
  when several were.

This module turns each of them into the same :class:`Task` / :class:`Annotation` objects
and validates them against the :class:`~.config.LabelingScheme`: an undeclared label, a
missing text field or a corrupt file stops with an error naming the task. It never decides
anything about disagreements (see :mod:`.aggregate`).
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, cast

from ..data.readers import guess_encoding, scan_delimited
from ..errors import DataError, Errors, Warnings
from .config import LabelingScheme

ExportFormat = Literal["JSON", "JSON_MIN", "CSV", "TSV"]
EXPORT_FORMATS: tuple[ExportFormat, ...] = ("JSON", "JSON_MIN", "CSV", "TSV")
#: Columns that Label Studio adds to every JSON_MIN / CSV / TSV row besides the task data.
ANNOTATION_COLUMNS = frozenset(
    {
        "id",
        "annotator",
        "annotation_id",
        "created_at",
        "updated_at",
        "lead_time",
        "agreement",
        "history",
    }
)
TABULAR_NOTE = (
    "{fmt} exports hold one row per annotation and leave out cancelled (skipped) annotations, "
    "tasks whose annotations were all cancelled, and the ground_truth flag; the accounting "
    "counts only what the file holds. Export JSON for complete accounting."
)
_SUFFIX_FORMATS: dict[str, ExportFormat] = {".csv": "CSV", ".tsv": "TSV"}


@dataclass(frozen=True)
class Annotation:
    """One annotator's answer for the scheme's Choices; ``choices == ()`` is an empty result."""

    annotation_id: int | None
    annotator: str | None
    choices: tuple[str, ...]
    cancelled: bool = False
    ground_truth: bool = False


@dataclass
class Task:
    """One Label Studio task: its text, its annotations and its other data fields.

    ``where`` names the task in messages ("task id 12 (line 30)").
    """

    task_id: int | None
    text: str
    annotations: list[Annotation]
    data: dict[str, Any] = field(default_factory=dict)
    where: str = ""


@dataclass
class Export:
    """The tasks of one export file, the format they were read from and caveats of it."""

    source: str
    export_format: ExportFormat
    tasks: list[Task]
    notes: list[str] = field(default_factory=list)


def read_export(
    path: Path, scheme: LabelingScheme, *, export_format: ExportFormat | None = None
) -> Export:
    """Read a Label Studio export file (format from ``export_format`` or the file)."""
    data = path.read_bytes()
    return parse_export(
        data, scheme, source=str(path), export_format=export_format, suffix=path.suffix
    )


def parse_export(
    data: bytes | str,
    scheme: LabelingScheme,
    *,
    source: str,
    export_format: ExportFormat | None = None,
    suffix: str = ".json",
) -> Export:
    """Parse export content (as downloaded from the API or read from disk)."""
    if isinstance(data, bytes):
        try:
            content = data.decode("utf-8-sig")
        except UnicodeDecodeError as err:
            raise DataError(
                Errors.E111.format(
                    source=source,
                    line="?",
                    column="?",
                    detail=f"not UTF-8: {err}; it looks like {guess_encoding(data)}",
                    where="the file is not a Label Studio export",
                )
            ) from err
    else:
        content = data
    fmt = export_format or _SUFFIX_FORMATS.get(suffix.lower())
    if fmt is None and suffix.lower() != ".json":
        raise DataError(Errors.E117.format(source=source, detail=suffix or "(no suffix)"))
    if fmt in ("CSV", "TSV"):
        tasks, table_notes = _tasks_from_table(content, scheme, source, cast(ExportFormat, fmt))
        notes = [TABULAR_NOTE.format(fmt=fmt), *table_notes]
    elif fmt in (None, "JSON", "JSON_MIN"):
        items = _load_json_list(content, source)
        if fmt is None:
            fmt = "JSON" if any(_is_full_task(item) for item in items) else "JSON_MIN"
        if fmt == "JSON":
            tasks = _tasks_from_json(items, scheme, source)
            notes = []
        else:
            tasks = _tasks_from_json_min(items, scheme, source)
            notes = [TABULAR_NOTE.format(fmt=fmt)]
    else:
        raise DataError(Errors.E117.format(source=source, detail=fmt))
    if not tasks:
        raise DataError(Errors.E122.format(source=source))
    return Export(source=source, export_format=fmt, tasks=tasks, notes=notes)


# ---------------------------------------------------------------------------- JSON


def _load_json_list(content: str, source: str) -> list[Any]:
    try:
        items = json.loads(content)
    except json.JSONDecodeError as err:
        raise DataError(
            Errors.E111.format(
                source=source,
                line=err.lineno,
                column=err.colno,
                detail=err.msg,
                where=_locate_broken_item(content),
            )
        ) from err
    if not isinstance(items, list):
        raise DataError(
            Errors.E123.format(
                source=source,
                where="top level",
                detail=f"expected a JSON list of tasks, got a {type(items).__name__}",
            )
        )
    return items


def _is_full_task(item: Any) -> bool:
    return isinstance(item, dict) and ("data" in item or "annotations" in item)


def _tasks_from_json(items: list[Any], scheme: LabelingScheme, source: str) -> list[Task]:
    tasks: list[Task] = []
    seen: dict[int, int] = {}
    for index, item in enumerate(items):
        where = _where(item.get("id") if isinstance(item, dict) else None, index)
        if not isinstance(item, dict) or not isinstance(item.get("data"), dict):
            raise DataError(
                Errors.E123.format(
                    source=source,
                    where=where,
                    detail="expected a task object with a 'data' object",
                )
            )
        task_id = _optional_int(item.get("id"), source, where, "id")
        if task_id is not None:
            if task_id in seen:
                raise DataError(
                    Errors.E119.format(
                        source=source, task_id=task_id, first=seen[task_id] + 1, second=index + 1
                    )
                )
            seen[task_id] = index
        text = _text_of(item["data"], scheme, source, where)
        raw_annotations = item.get("annotations")
        if raw_annotations is None:
            raw_annotations = item.get("completions") or []
        if not isinstance(raw_annotations, list):
            raise DataError(
                Errors.E123.format(source=source, where=where, detail="'annotations' is not a list")
            )
        annotations = [_annotation_from_json(raw, scheme, source, where) for raw in raw_annotations]
        tasks.append(Task(task_id, text, annotations, dict(item["data"]), where))
    return tasks


def _annotation_from_json(raw: Any, scheme: LabelingScheme, source: str, where: str) -> Annotation:
    if not isinstance(raw, dict):
        raise DataError(
            Errors.E123.format(source=source, where=where, detail="an annotation is not an object")
        )
    annotation_id = _optional_int(raw.get("id"), source, where, "annotation id")
    annotator = _annotator_of(raw.get("completed_by"))
    cancelled = bool(raw.get("was_cancelled") or raw.get("skipped"))
    ground_truth = bool(raw.get("ground_truth"))
    if cancelled:
        # A skip may keep a half-made result; it is not an answer, so it is not read.
        return Annotation(annotation_id, annotator, (), cancelled=True, ground_truth=ground_truth)
    results = raw.get("result") or []
    if not isinstance(results, list):
        raise DataError(
            Errors.E123.format(
                source=source,
                where=where,
                detail=f"annotation {annotation_id}: 'result' is not a list",
            )
        )
    chosen: list[str] = []
    for result in results:
        if not isinstance(result, dict):
            raise DataError(
                Errors.E123.format(
                    source=source,
                    where=where,
                    detail=f"annotation {annotation_id}: a result is not an object",
                )
            )
        from_name = result.get("from_name")
        if from_name is None:
            continue  # relations and other results without a control tag
        if scheme.control_names and from_name not in scheme.control_names:
            raise DataError(
                Errors.E115.format(
                    source=source,
                    where=where,
                    annotation=annotation_id,
                    from_name=from_name,
                    names=", ".join(sorted(scheme.control_names)),
                )
            )
        if from_name != scheme.choices_name:
            continue
        if result.get("type") != "choices":
            raise DataError(
                Errors.E116.format(
                    source=source,
                    where=where,
                    annotation=annotation_id,
                    from_name=from_name,
                    type=result.get("type"),
                )
            )
        value = result.get("value")
        choices = value.get("choices") if isinstance(value, dict) else None
        if not isinstance(choices, list) or not all(isinstance(c, str) for c in choices):
            raise DataError(
                Errors.E123.format(
                    source=source,
                    where=where,
                    detail=f"annotation {annotation_id}: value.choices is not a list of strings",
                )
            )
        chosen.extend(choices)
    return Annotation(
        annotation_id,
        annotator,
        _checked_choices(chosen, scheme, source, where, annotation_id),
        ground_truth=ground_truth,
    )


# ------------------------------------------------------------- JSON_MIN / CSV / TSV


@dataclass
class _Row:
    """One annotation row of a flattened export, values already normalised."""

    where: str
    task_id: int | None
    annotation_id: int | None
    annotator: str | None
    raw_choices: Any
    text: str
    data: dict[str, Any]
    group_key: str | None = None


def _tasks_from_json_min(items: list[Any], scheme: LabelingScheme, source: str) -> list[Task]:
    rows: list[_Row] = []
    for index, item in enumerate(items):
        raw_id = item.get("id") if isinstance(item, dict) else None
        where = _where(raw_id, index)
        if not isinstance(item, dict):
            raise DataError(
                Errors.E123.format(source=source, where=where, detail="a row is not an object")
            )
        annotation_id = _optional_int(item.get("annotation_id"), source, where, "annotation_id")
        if annotation_id is not None and scheme.choices_name == scheme.text_field:
            raise DataError(
                Errors.E120.format(source=source, name=scheme.choices_name, fmt="JSON_MIN")
            )
        annotator = item.get("annotator")
        rows.append(
            _Row(
                where=where,
                task_id=_optional_int(raw_id, source, where, "id"),
                annotation_id=annotation_id,
                annotator=None if annotator is None else str(annotator),
                raw_choices=item.get(scheme.choices_name),
                text=_text_of(item, scheme, source, where),
                data=_data_fields(item, scheme),
            )
        )
    # Label Studio writes "id" and "annotation_id" into every JSON_MIN row; rows with task
    # ids but no annotation ids were edited, and would all read as unlabelled.
    if any(r.task_id is not None for r in rows) and not any(
        isinstance(item, dict) and "annotation_id" in item for item in items
    ):
        raise DataError(
            Errors.E213.format(
                source=source,
                column="annotation_id",
                fmt="JSON_MIN",
                why="Without annotation ids no row can be told to be an annotation.",
            )
        )
    return _group_rows(rows, scheme, source)


def _tasks_from_table(
    content: str, scheme: LabelingScheme, source: str, fmt: ExportFormat
) -> tuple[list[Task], list[str]]:
    """Rows of a CSV/TSV export, scanned as physical records (see
    :func:`textcat_kit.data.readers.scan_delimited`): a broken quote, a row with the wrong
    number of fields or a duplicate header stops with the line; fields of any size are read.

    Label Studio writes both with CSV quoting. Without an ``id`` column rows cannot be
    grouped into tasks, and without ``annotation_id`` no row can be told to be an
    annotation: both are errors that say how to export properly (E213). A task data field
    named ``id`` overwrites the task id in these exports; such ids are used as grouping keys
    only, with a note (W203).
    """
    delimiter = "\t" if fmt == "TSV" else ","
    header: list[str] | None = None
    rows: list[_Row] = []
    raw_rows: list[tuple[int, dict[str, str]]] = []
    rows_seen = 0
    for item in scan_delimited(content, Path(source), delimiter, quoting=True):
        if isinstance(item, int):
            continue
        if item.error:
            # The reader's message names the line and column; Label Studio writes valid
            # CSV, so the advice is to export again.
            detail = item.error.split(": ", 1)[-1].split(". ")[0]
            raise DataError(
                Errors.E111.format(
                    source=source,
                    line=item.start,
                    column="?",
                    detail=f"{item.reason}: {detail}",
                    where=f"after {rows_seen} complete row(s)",
                )
            )
        assert item.fields is not None
        if header is None:
            header = item.fields
            duplicates = sorted(n for n, k in Counter(header).items() if k > 1)
            if duplicates:
                raise DataError(
                    Errors.E200.format(
                        path=source,
                        line=item.start,
                        names=", ".join(repr(d) for d in duplicates),
                        header=", ".join(repr(c) for c in header),
                    )
                )
            continue
        if len(item.fields) != len(header):
            raise DataError(
                Errors.E123.format(
                    source=source,
                    where=f"line {item.start}",
                    detail=f"the row has {len(item.fields)} fields but the header has "
                    f"{len(header)}; the file is truncated or corrupt",
                )
            )
        raw_rows.append((item.start, dict(zip(header, item.fields, strict=True))))
        rows_seen += 1
    if header is None:
        raise DataError(Errors.E122.format(source=source))
    if "id" not in header:
        raise DataError(
            Errors.E213.format(
                source=source,
                column="id",
                fmt=fmt,
                why="Without task ids the rows of one task (one row per annotation) cannot be "
                "grouped, so every row would become a task of its own.",
            )
        )
    if "annotation_id" not in header:
        raise DataError(
            Errors.E213.format(
                source=source,
                column="annotation_id",
                fmt=fmt,
                why="Without annotation ids no row can be told apart from an unannotated task, "
                "so every task would be listed as unlabelled.",
            )
        )
    text_column = (
        f"_data_{scheme.text_field}"
        if f"_data_{scheme.text_field}" in header
        else scheme.text_field
    )
    if text_column not in header:
        raise DataError(
            Errors.E112.format(
                source=source,
                where="the header",
                field=scheme.text_field,
                available=", ".join(header),
            )
        )
    ids = [record.get("id", "") for _, record in raw_rows]
    data_ids = any(value.strip() and not _is_int(value) for value in ids)
    for line, record in raw_rows:
        raw_id = record.get("id") or None
        where = f"{_where(raw_id, None)} (line {line})"
        rows.append(
            _Row(
                where=where,
                task_id=None if data_ids else _optional_int(raw_id, source, where, "id"),
                annotation_id=_optional_int(
                    record.get("annotation_id") or None, source, where, "annotation_id"
                ),
                annotator=record.get("annotator") or None,
                raw_choices=record.get(scheme.choices_name) or None,
                text=record[text_column],
                data={
                    k: v
                    for k, v in record.items()
                    if k not in ANNOTATION_COLUMNS
                    and k != scheme.choices_name
                    and k not in scheme.control_names
                },
                group_key=f"data-id:{raw_id}" if data_ids and raw_id else None,
            )
        )
    n_annotated = sum(row.annotation_id is not None for row in rows)
    if n_annotated and scheme.choices_name not in header:
        raise DataError(
            Errors.E118.format(
                source=source,
                n_annotated=n_annotated,
                name=scheme.choices_name,
                columns=", ".join(header),
            )
        )
    notes = [Warnings.W203.format(source=source)] if data_ids else []
    return _group_rows(rows, scheme, source), notes


def _is_int(value: str) -> bool:
    try:
        int(value)
    except ValueError:
        return False
    return True


def _group_rows(rows: Sequence[_Row], scheme: LabelingScheme, source: str) -> list[Task]:
    """Gather the annotation rows of each task (rows of one task are adjacent in exports,
    but grouping by id does not rely on it)."""
    tasks: dict[int | str, Task] = {}
    for index, row in enumerate(rows):
        key: int | str = (
            row.task_id
            if row.task_id is not None
            else row.group_key
            if row.group_key is not None
            else f"row-{index}"
        )
        task = tasks.get(key)
        if task is None:
            task = tasks[key] = Task(row.task_id, row.text, [], row.data, row.where)
        elif task.text != row.text:
            raise DataError(
                Errors.E121.format(
                    source=source, task_id=row.task_id, first=task.where, second=row.where
                )
            )
        if row.annotation_id is None:
            continue
        choices = _flat_choices(row.raw_choices, scheme, source, row.where)
        task.annotations.append(
            Annotation(
                row.annotation_id,
                row.annotator,
                _checked_choices(choices, scheme, source, row.where, row.annotation_id),
            )
        )
    return list(tasks.values())


def _flat_choices(value: Any, scheme: LabelingScheme, source: str, where: str) -> list[str]:
    """Choices from a flattened cell: a bare label, ``{"choices": [...]}`` or its JSON text."""
    if value is None or value == "":
        return []
    if isinstance(value, str):
        if value in scheme.labels or value.lstrip()[:1] not in ("{", "["):
            return [value]
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError:
            return [value]
        return _flat_choices(parsed, scheme, source, where)
    if isinstance(value, dict) and isinstance(value.get("choices"), list):
        return [str(choice) for choice in value["choices"]]
    if isinstance(value, list):
        return [c for item in value for c in _flat_choices(item, scheme, source, where)]
    raise DataError(
        Errors.E123.format(
            source=source,
            where=where,
            detail=f"the '{scheme.choices_name}' value {value!r} is not a label or "
            "{'choices': [...]}",
        )
    )


def _data_fields(item: dict[str, Any], scheme: LabelingScheme) -> dict[str, Any]:
    return {
        key: value
        for key, value in item.items()
        if key not in ANNOTATION_COLUMNS
        and key != scheme.choices_name
        and key not in scheme.control_names
    }


# ------------------------------------------------------------------------ shared


def _checked_choices(
    choices: Iterable[str],
    scheme: LabelingScheme,
    source: str,
    where: str,
    annotation_id: int | None,
) -> tuple[str, ...]:
    unique = tuple(dict.fromkeys(choices))
    known = set(scheme.labels)
    for label in unique:
        if label not in known:
            raise DataError(
                Errors.E113.format(
                    source=source,
                    where=where,
                    annotation=annotation_id,
                    label=label,
                    n_labels=len(scheme.labels),
                    scheme_source=scheme.source,
                )
            )
    if scheme.exclusive and len(unique) > 1:
        raise DataError(
            Errors.E114.format(
                source=source,
                where=where,
                annotation=annotation_id,
                n_labels=len(unique),
                labels=", ".join(unique),
                name=scheme.choices_name,
            )
        )
    return unique


def _text_of(data: dict[str, Any], scheme: LabelingScheme, source: str, where: str) -> str:
    if scheme.text_field not in data:
        raise DataError(
            Errors.E112.format(
                source=source,
                where=where,
                field=scheme.text_field,
                available=", ".join(sorted(map(str, data))) or "none",
            )
        )
    value = data[scheme.text_field]
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)):
        return str(value)
    raise DataError(
        Errors.E123.format(
            source=source,
            where=where,
            detail=f"the text field '{scheme.text_field}' holds a {type(value).__name__}, "
            "not a string",
        )
    )


def _annotator_of(completed_by: Any) -> str | None:
    """``completed_by`` is an id in recent exports and a user object in older ones."""
    if isinstance(completed_by, dict):
        completed_by = completed_by.get("id", completed_by.get("email"))
    return None if completed_by is None else str(completed_by)


def _optional_int(value: Any, source: str, where: str, what: str) -> int | None:
    if value is None:
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        raise DataError(
            Errors.E123.format(
                source=source, where=where, detail=f"{what} {value!r} is not a number"
            )
        ) from None


def _where(task_id: Any, index: int | None) -> str:
    if task_id is not None and task_id != "":
        return f"task id {task_id}"
    return f"item {index + 1} (no task id)" if index is not None else "a row without task id"


def _locate_broken_item(content: str) -> str:
    """Name the list item where a JSON export breaks (its task id when it got that far).

    Items are decoded one at a time; the first that fails is the broken one. Its task id is
    the ``"id"`` key at the item's top level, found by a small scan of the raw text (the
    item's ``data`` and annotations have ids of their own at deeper levels).
    """
    decoder = json.JSONDecoder()
    position = _skip_whitespace(content, 0)
    if content[position : position + 1] != "[":
        return "the file does not start with a JSON list"
    position += 1
    previous_id: Any = None
    index = 0
    while True:
        position = _skip_whitespace(content, position)
        if content[position : position + 1] == "]":
            return f"after item {index} (task id {previous_id})"
        try:
            item, position = decoder.raw_decode(content, position)
        except json.JSONDecodeError:
            task_id = _top_level_id(content[position:])
            name = f"task id {task_id}" if task_id is not None else "its task id was cut off"
            after = f", after task id {previous_id}" if previous_id is not None else ""
            return f"the break is in item {index + 1} ({name}{after})"
        index += 1
        previous_id = item.get("id") if isinstance(item, dict) else None
        position = _skip_whitespace(content, position)
        if content[position : position + 1] == ",":
            position += 1
        elif content[position : position + 1] != "]":
            return f"after item {index} (task id {previous_id})"


def _skip_whitespace(content: str, position: int) -> int:
    while position < len(content) and content[position] in " \t\r\n":
        position += 1
    return position


_ID_VALUE = re.compile(r"\s*:\s*(-?\d+)")


def _top_level_id(fragment: str) -> int | None:
    depth = 0
    position = 0
    while position < len(fragment):
        char = fragment[position]
        if char == '"':
            end = position + 1
            while end < len(fragment) and fragment[end] != '"':
                end += 2 if fragment[end] == "\\" else 1
            end += 1
            if depth == 1 and fragment[position:end] == '"id"':
                match = _ID_VALUE.match(fragment, end)
                if match:
                    return int(match.group(1))
            position = end
            continue
        if char in "{[":
            depth += 1
        elif char in "}]":
            depth -= 1
        position += 1
    return None

"""The data step: labelled files in, ``train/dev/test.spacy`` + a data report out.

One call reads the source files (train, and dev / test when given), decides whether the
task is exclusive or multi-label when not told (and says why), derives or checks the label
set, carves seeded stratified test and dev splits out of train when those files are
missing, optionally drops leaked texts from the evaluation splits, and writes the corpora,
``labels.json``, ``data.json`` and the data report into one output directory.

The directory is written through :func:`textcat_kit.safe_write.atomic_dir`: built beside
its target and swapped in with one rename, so a killed run leaves the previous output as it
was; a directory textcat-kit did not write is never replaced, and an earlier output only
with ``overwrite=True``.

The returned accounting is per *source file*: ``records in == written (to any split) +
skipped + dropped`` for every file, where records are the physical records the reader saw
(see :mod:`.readers`).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import srsly

from ..errors import DataError, Errors, Warnings
from ..safe_write import MARKER, atomic_dir
from .readers import ReadResult, ReadSettings, read_file, read_labels_file
from .records import Record, write_records
from .report import build_report, normalise_text, report_to_markdown
from .split import stratified_split

#: Every file ``corpus`` writes into its output directory.
CORPUS_FILES = frozenset(
    {
        "train.spacy",
        "dev.spacy",
        "test.spacy",
        "labels.json",
        "data.json",
        "data_report.json",
        "data_report.md",
    }
)
REPORT_FILES = frozenset({"data_report.json", "data_report.md"})


@dataclass
class CorpusSummary:
    labels: list[str]
    n_docs: dict[str, int]
    accounting: dict[str, dict[str, Any]]
    report: dict[str, Any]
    multilabel: bool = False
    multilabel_reason: str = ""
    messages: list[str] = field(default_factory=list)
    output_dir: Path | None = None


def adopt_earlier_output(directory: Path, allowed: frozenset[str]) -> bool:
    """Mark a directory written by an earlier ``corpus`` (before outputs carried a marker).

    Only a directory holding nothing but files this command writes is adopted (and, for a
    corpus directory, a ``data.json`` with an accounting); anything else stays foreign and
    is refused by the safe writer.
    """
    if not directory.is_dir() or directory.is_symlink() or (directory / MARKER).exists():
        return False
    names = {p.name for p in directory.iterdir()}
    if not names or not names <= allowed:
        return False
    if "data.json" in allowed:
        try:
            data = json.loads((directory / "data.json").read_text(encoding="utf8"))
        except (OSError, ValueError):
            return False
        if not isinstance(data, dict) or "accounting" not in data:
            return False
    (directory / MARKER).write_text(
        json.dumps({"written_by": "textcat-kit corpus (adopted)"}) + "\n", encoding="utf8"
    )
    return True


def _check_fraction(name: str, value: float) -> None:
    if not 0.0 < value < 1.0:
        raise DataError(
            Errors.E207.format(what=name, expected="a number between 0 and 1", value=value)
        )


def decide_multilabel(results: Sequence[ReadResult], requested: bool | None) -> tuple[bool, str]:
    """Exclusive or multi-label, and why (printed by ``corpus`` and kept in data.json)."""
    records = [(res, r) for res in results for r in res.records]
    several = [(res, r) for res, r in records if len(r.labels) > 1]
    none = [(res, r) for res, r in records if not r.labels]
    if requested is not None:
        kind = "multi-label" if requested else "exclusive"
        return requested, f"{kind} (--multilabel {str(requested).lower()})"
    if several or none:
        parts = []
        if several:
            res, r = several[0]
            parts.append(
                f"{len(several)} record(s) have several labels (first: {res.path.name}:"
                f"{r.meta.get('line', '?')})"
            )
        if none:
            res, r = none[0]
            parts.append(
                f"{len(none)} have no label (first: {res.path.name}:{r.meta.get('line', '?')})"
            )
        reason = "multi-label (detected): " + ", ".join(parts)
        if not several:
            reason += (
                "; if empty labels are missing annotations rather than 'none of the labels', "
                "pass --multilabel false (with --lenient to skip them)"
            )
        return True, reason
    return False, f"exclusive (detected): each of the {len(records)} records has exactly one label"


def build_corpus(
    *,
    train: Path,
    output_dir: Path,
    test: Path | None = None,
    dev: Path | None = None,
    settings: ReadSettings | None = None,
    labels_file: Path | None = None,
    dev_fraction: float = 0.1,
    test_fraction: float = 0.2,
    seed: int = 0,
    lang: str = "en",
    drop_leaked: bool = False,
    min_count: int = 20,
    report_dir: Path | None = None,
    dataset_name: str = "",
    overwrite: bool = False,
) -> CorpusSummary:
    """Read, split, check and write a corpus; see the module docstring."""
    settings = settings or ReadSettings()
    messages: list[str] = []
    if test is None:
        _check_fraction("--test-fraction", test_fraction)
    if dev is None:
        _check_fraction("--dev-fraction", dev_fraction)
    if test is None and dev is None and dev_fraction + test_fraction >= 1.0:
        raise DataError(
            Errors.E207.format(
                what="--dev-fraction + --test-fraction",
                expected="below 1",
                value=dev_fraction + test_fraction,
            )
        )
    # Refuse a foreign output before reading anything.
    for directory, allowed in ((output_dir, CORPUS_FILES), (report_dir, REPORT_FILES)):
        if directory is not None and adopt_earlier_output(directory, allowed):
            messages.append(f"{directory}: an earlier corpus output, marked as textcat-kit's")
    label_set: list[str] | None = read_labels_file(labels_file) if labels_file else None
    if label_set is not None and not label_set:
        raise DataError(Errors.E009)
    sources = {"train": train, "dev": dev, "test": test}
    results = {
        name: read_file(path, settings, label_set)
        for name, path in sources.items()
        if path is not None
    }
    for result in results.values():
        messages.append(f"{result.path.name}: labels: {result.label_format}")
        messages.extend(result.notes)

    multilabel, reason = decide_multilabel(list(results.values()), settings.multilabel)
    messages.append(reason)
    if not multilabel:
        for result in results.values():
            for record in result.records:
                if len(record.labels) != 1:  # only reachable with a cats dict
                    raise DataError(
                        Errors.E007.format(
                            path=result.path,
                            line=record.meta.get("line", "?"),
                            n_labels=len(record.labels),
                            labels=record.labels,
                        )
                    )

    if label_set is None:
        seen = Counter(label for r in results["train"].records for label in r.labels)
        label_set = sorted(seen)
        extra: dict[str, list[str]] = {}
        for name in ("dev", "test"):
            if name in results:
                for record in results[name].records:
                    for label in record.labels:
                        if label not in seen and name not in extra.get(label, []):
                            extra.setdefault(label, []).append(name)
        if extra:
            label_set = sorted(set(label_set) | set(extra))
            where = " / ".join(sorted({n for names in extra.values() for n in names}))
            messages.append(Warnings.W202.format(labels=sorted(extra), where=where))
        if not label_set:
            raise DataError(Errors.E009)

    source_of: dict[int, str] = {}
    for name, result in results.items():
        for record in result.records:
            source_of[id(record)] = name

    pool = list(results["train"].records)
    splits: dict[str, list[Record]] = {}
    test_source = "file"
    dev_source = "file"
    if test is None:
        pool, splits["test"] = stratified_split(pool, test_fraction, seed)
        test_source = f"stratified {test_fraction:g} of {train.name} (seed {seed})"
        messages.append(
            f"test: no --test file; carved {len(splits['test'])} records, {test_source}"
        )
        if not splits["test"]:
            raise DataError(Errors.E212.format(path=train, n=len(pool), split="test"))
    else:
        splits["test"] = results["test"].records
    if dev is None:
        share = dev_fraction / (1.0 - test_fraction) if test is None else dev_fraction
        pool, splits["dev"] = stratified_split(pool, min(share, 0.9), seed)
        dev_source = f"stratified {dev_fraction:g} of {train.name} (seed {seed})"
        messages.append(f"dev: no --dev file; carved {len(splits['dev'])} records, {dev_source}")
        if not splits["dev"]:
            raise DataError(Errors.E212.format(path=train, n=len(pool), split="dev"))
    else:
        splits["dev"] = results["dev"].records
    splits["train"] = pool
    if not pool:
        raise DataError(Errors.E212.format(path=train, n=0, split="train"))
    splits = {name: splits[name] for name in ("train", "dev", "test")}

    totals = Counter(label for records in splits.values() for r in records for label in r.labels)
    for name in ("train", "dev", "test"):
        have = {label for r in splits[name] for label in r.labels}
        absent = [label for label in label_set if label not in have]
        if absent and (name == "train" or dev is None or test is None):
            listed = ", ".join(f"{a} ({totals[a]})" for a in absent[:20])
            more = f" and {len(absent) - 20} more" if len(absent) > 20 else ""
            messages.append(
                f"{name}: no example of {len(absent)} label(s): {listed}{more} "
                "(examples in total in brackets; a label's last training example is never "
                "moved to dev/test)"
            )

    # The report describes the data as it came (leaked texts listed even when dropped);
    # the accounting below says what was dropped.
    report = build_report(splits, label_set, min_count=min_count)
    dropped: dict[str, Counter[str]] = {name: Counter() for name in results}
    if drop_leaked:
        seen_keys = {normalise_text(r.text) for r in splits["train"]}
        for name in ("dev", "test"):
            kept = []
            for record in splits[name]:
                key = normalise_text(record.text)
                if key in seen_keys:
                    dropped[source_of[id(record)]]["leaked (duplicate of an earlier split)"] += 1
                else:
                    kept.append(record)
            splits[name] = kept
            seen_keys |= {normalise_text(r.text) for r in kept}

    written: dict[str, Counter[str]] = {name: Counter() for name in results}
    for split_name, records in splits.items():
        for record in records:
            written[source_of[id(record)]][split_name] += 1
    accounting = {
        name: _accounting(result, written[name], dropped[name]) for name, result in results.items()
    }
    report["accounting"] = accounting
    report["multilabel"] = multilabel
    report["multilabel_reason"] = reason
    report["label_format"] = {name: r.label_format for name, r in results.items()}
    report["notes"] = [m for r in results.values() for m in r.notes]
    data_json = {
        "dataset": dataset_name,
        "labels": label_set,
        "multilabel": multilabel,
        "multilabel_reason": reason,
        "exclusive_in_data": all(
            len(r.labels) == 1 for records in splits.values() for r in records
        ),
        "n_docs": {name: len(records) for name, records in splits.items()},
        "dev_source": dev_source,
        "test_source": test_source,
        "seed": seed,
        "text_keys": settings.text_keys,
        "label_key": settings.label_key,
        "label_format": report["label_format"],
        "files": {name: str(path) for name, path in sources.items() if path is not None},
        "dropped_leaked": drop_leaked,
        "accounting": accounting,
    }

    n_docs: dict[str, int] = {}
    with atomic_dir(output_dir, overwrite=overwrite, command="textcat-kit corpus") as tmp:
        for name, records in splits.items():
            # Where each record came from is in the data report; keeping it in every doc
            # would slow down every training epoch (see records_to_docbin).
            n_docs[name] = write_records(
                records, tmp / f"{name}.spacy", label_set, lang, store_meta=False
            )
        data_json["n_docs"] = n_docs
        srsly.write_json(tmp / "labels.json", label_set)
        srsly.write_json(tmp / "data.json", data_json)
        _write_report(tmp, report)
    if report_dir is not None:
        with atomic_dir(report_dir, overwrite=overwrite, command="textcat-kit corpus") as tmp:
            _write_report(tmp, report)
    return CorpusSummary(
        labels=label_set,
        n_docs=n_docs,
        accounting=accounting,
        report=report,
        multilabel=multilabel,
        multilabel_reason=reason,
        messages=messages,
        output_dir=output_dir,
    )


def _write_report(directory: Path, report: dict[str, Any]) -> None:
    srsly.write_json(directory / "data_report.json", report)
    (directory / "data_report.md").write_text(report_to_markdown(report), encoding="utf8")


def _accounting(result: ReadResult, written: Counter[str], dropped: Counter[str]) -> dict[str, Any]:
    skipped = dict(sorted(result.skipped.items()))
    n_written = sum(written.values())
    return {
        "file": str(result.path),
        "records_in": result.n_rows,
        "written": n_written,
        "written_to": dict(written),
        "skipped": skipped,
        "dropped": dict(dropped),
        "skipped_lines": [line for line, _ in result.skipped_rows[:100]],
        "lines": result.n_lines,
        "blank_lines": result.n_blank,
        "header_lines": result.header_lines,
        "multiline_records": len(result.multiline),
        "balanced": result.n_rows == n_written + sum(skipped.values()) + sum(dropped.values()),
    }


def accounting_line(name: str, acc: dict[str, Any]) -> str:
    """One printed line of a file's accounting."""
    to = ", ".join(f"{k} {v}" for k, v in acc["written_to"].items())
    skipped = sum(acc["skipped"].values())
    dropped = sum(acc["dropped"].values())
    line = (
        f"{name} ({Path(acc['file']).name}): {acc['records_in']} records in = "
        f"{acc['written']} written ({to}) + {skipped} skipped"
    )
    if acc["skipped"]:
        line += f" {acc['skipped']}"
    if dropped:
        line += f" + {dropped} dropped {acc['dropped']}"
    if acc["skipped_lines"]:
        shown = ", ".join(map(str, acc["skipped_lines"][:10]))
        line += f"; skipped lines: {shown}" + (" ..." if skipped > 10 else "")
    if not acc["balanced"]:
        line += "  ** DOES NOT ADD UP **"
    return line


def corpus_settings(
    *,
    text_key: str = "text",
    label_key: str | None = None,
    columns: str | None = None,
    multilabel: str = "auto",
    label_sep: str = ",",
    label_ids: str = "none",
    labels_are_indices: bool = False,
    lenient: bool = False,
    tsv_quoting: str = "none",
    file_format: str = "auto",
    delimiter: str | None = None,
) -> ReadSettings:
    """:class:`ReadSettings` from the ``corpus`` command's option strings (checked)."""
    choices: dict[str, bool | None] = {"auto": None, "true": True, "false": False}
    if multilabel.lower() not in choices:
        raise DataError(
            Errors.E207.format(
                what="--multilabel", expected="auto, true or false", value=multilabel
            )
        )
    ids = {"none": None, "0": 0, "1": 1}
    if label_ids.lower() not in ids:
        raise DataError(
            Errors.E207.format(what="--label-ids", expected="none, 0 or 1", value=label_ids)
        )
    base = ids[label_ids.lower()]
    if labels_are_indices and base is None:
        base = 0
    if tsv_quoting not in ("none", "csv"):
        raise DataError(
            Errors.E207.format(what="--tsv-quoting", expected="none or csv", value=tsv_quoting)
        )
    formats = {"auto": None, "csv": "csv", "tsv": "tsv", "jsonl": "jsonl"}
    if file_format.lower() not in formats:
        raise DataError(
            Errors.E207.format(
                what="--format", expected="auto, csv, tsv or jsonl", value=file_format
            )
        )
    if delimiter is not None:
        delimiter = {"\\t": "\t", "tab": "\t"}.get(delimiter, delimiter)
        if len(delimiter) != 1 or delimiter in ('"', "\n", "\r"):
            raise DataError(
                Errors.E207.format(
                    what="--delimiter",
                    expected="one character (e.g. ';' or '\\t')",
                    value=delimiter,
                )
            )
    return ReadSettings(
        delimiter=delimiter,
        text_key=text_key,
        label_key=label_key,
        columns=[c.strip() for c in columns.split(",")] if columns else None,
        multilabel=choices[multilabel.lower()],
        label_sep=label_sep,
        label_ids=base,
        lenient=lenient,
        fmt=formats[file_format.lower()],  # type: ignore[arg-type]
        tsv_quoting=tsv_quoting,  # type: ignore[arg-type]
    )

"""The data step: labelled files in, ``train/dev/test.spacy`` + a data report out.

One call reads the source splits, derives or checks the label set, makes a seeded
stratified dev split when the source has none, optionally drops leaked texts from the
evaluation splits, writes the corpora and a report, and returns an accounting in which
``rows in == written + skipped`` for every file.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import srsly

from ..errors import DataError, Errors
from .readers import ReadResult, ReadSettings, read_file, read_labels_file
from .records import Record, write_records
from .report import build_report, normalise_text, report_to_markdown
from .split import stratified_split


@dataclass
class CorpusSummary:
    labels: list[str]
    n_docs: dict[str, int]
    accounting: dict[str, dict[str, Any]]
    report: dict[str, Any]


def _accounting(result: ReadResult, written: int, dropped: Counter[str]) -> dict[str, Any]:
    skipped = Counter(result.skipped)
    skipped.update(dropped)
    return {
        "file": str(result.path),
        "rows_in": result.n_rows,
        "written": written,
        "skipped": dict(skipped),
        "balanced": result.n_rows == written + sum(skipped.values()),
    }


def build_corpus(
    *,
    train: Path,
    test: Path,
    output_dir: Path,
    dev: Path | None = None,
    settings: ReadSettings | None = None,
    labels_file: Path | None = None,
    dev_fraction: float = 0.1,
    seed: int = 0,
    lang: str = "en",
    drop_leaked: bool = False,
    min_count: int = 20,
    report_dir: Path | None = None,
    dataset_name: str = "",
) -> CorpusSummary:
    settings = settings or ReadSettings()
    label_set: list[str] | None = read_labels_file(labels_file) if labels_file else None
    if settings.labels_are_indices and label_set is None:
        raise DataError(Errors.E009)
    results = {"train": read_file(train, settings, label_set)}
    if dev is not None:
        results["dev"] = read_file(dev, settings, label_set)
    results["test"] = read_file(test, settings, label_set)
    if label_set is None:
        seen = Counter(label for r in results["train"].records for label in r.labels)
        label_set = sorted(seen)
        if not label_set:
            raise DataError(Errors.E009)
        for name in ("dev", "test"):
            if name in results:
                for record in results[name].records:
                    for label in record.labels:
                        if label not in seen:
                            raise DataError(
                                Errors.E003.format(
                                    path=results[name].path,
                                    line=record.meta.get("line", "?"),
                                    label=label,
                                    n_labels=len(label_set),
                                    label_source=f"the training file {train}",
                                )
                            )

    splits: dict[str, list[Record]] = {}
    if dev is None:
        splits["train"], splits["dev"] = stratified_split(
            results["train"].records, dev_fraction, seed
        )
    else:
        splits["train"], splits["dev"] = results["train"].records, results["dev"].records
    splits["test"] = results["test"].records

    # The report describes the data as it came (leaked texts listed even when dropped);
    # the accounting below says what was dropped.
    report = build_report(splits, label_set, min_count=min_count)
    dropped: dict[str, Counter[str]] = {name: Counter() for name in splits}
    if drop_leaked:
        seen_keys = {normalise_text(r.text) for r in splits["train"]}
        for name in ("dev", "test"):
            kept = []
            for record in splits[name]:
                key = normalise_text(record.text)
                if key in seen_keys:
                    dropped[name]["leaked (duplicate of an earlier split)"] += 1
                else:
                    kept.append(record)
            splits[name] = kept
            seen_keys |= {normalise_text(r.text) for r in kept}

    output_dir.mkdir(parents=True, exist_ok=True)
    n_docs = {}
    for name, records in splits.items():
        # Where each record came from is in the data report; keeping it in every doc would
        # slow down every training epoch (see records_to_docbin).
        n_docs[name] = write_records(
            records, output_dir / f"{name}.spacy", label_set, lang, store_meta=False
        )
    accounting: dict[str, dict[str, Any]] = {}
    if dev is None:
        # The dev split is carved out of the training file: account for both together.
        total = Counter(dropped["train"])
        total.update(dropped["dev"])
        accounting["train+dev"] = _accounting(
            results["train"], n_docs["train"] + n_docs["dev"], total
        )
    else:
        accounting["train"] = _accounting(results["train"], n_docs["train"], dropped["train"])
        accounting["dev"] = _accounting(results["dev"], n_docs["dev"], dropped["dev"])
    accounting["test"] = _accounting(results["test"], n_docs["test"], dropped["test"])
    report["accounting"] = accounting
    exclusive = all(len(r.labels) == 1 for recs in splits.values() for r in recs)
    srsly.write_json(output_dir / "labels.json", label_set)
    srsly.write_json(
        output_dir / "data.json",
        {
            "dataset": dataset_name,
            "labels": label_set,
            "multilabel": settings.multilabel,
            "exclusive_in_data": exclusive,
            "n_docs": n_docs,
            "dev_source": "file" if dev is not None else f"stratified {dev_fraction} of train",
            "seed": seed,
            "dropped_leaked": drop_leaked,
            "accounting": accounting,
        },
    )
    if report_dir is not None:
        report_dir.mkdir(parents=True, exist_ok=True)
        srsly.write_json(report_dir / "data_report.json", report)
        (report_dir / "data_report.md").write_text(report_to_markdown(report), encoding="utf8")
    return CorpusSummary(label_set, n_docs, accounting, report)

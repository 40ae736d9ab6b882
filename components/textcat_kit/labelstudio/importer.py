"""Label Studio export → ``.spacy`` training data, unlabelled tasks, and an accounting.

The accounting is the point: labelled data is expensive, so every task that goes in is
either imported, unlabelled, skipped (by reason) or dropped as an unresolved conflict, and
:meth:`ImportSummary.is_balanced` checks that these add up. The summary is printed and
written as JSON next to the corpus.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import srsly

from ..data.records import Record, write_records
from ..data.split import stratified_split
from ..errors import ConfigError, Errors, OutputError
from ..safe_write import atomic_file
from .aggregate import TiePolicy, agreement_report, decide, exclusion_reason
from .config import LabelingScheme
from .exports import Export, ExportFormat, Task, read_export

#: ``Record.meta`` / ``doc.user_data`` key holding the Label Studio task id.
TASK_ID_KEY = "ls_task_id"
#: ``Record.meta`` / ``doc.user_data`` key saying how the label set was decided.
RESOLUTION_KEY = "ls_resolution"


@dataclass
class ImportSummary:
    """Where every task and annotation of an export went.

    ``tasks_in == imported + unlabelled + sum(skipped.values()) + dropped`` always holds
    (:meth:`is_balanced`). ``conflicts`` lists every task whose usable annotations
    disagreed, with its votes and how it was resolved (or that it was dropped).
    """

    source: str
    export_format: str
    choices_name: str
    exclusive: bool
    ties: str
    tasks_in: int = 0
    imported: int = 0
    unlabelled: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    dropped: int = 0
    annotations_in: int = 0
    annotations_used: int = 0
    annotations_excluded: dict[str, int] = field(default_factory=dict)
    resolutions: dict[str, int] = field(default_factory=dict)
    label_counts: dict[str, float] = field(default_factory=dict)
    conflicts: list[dict[str, Any]] = field(default_factory=list)
    skipped_task_ids: dict[str, list[int | None]] = field(default_factory=dict)
    dropped_task_ids: list[int | None] = field(default_factory=list)
    agreement: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    splits: dict[str, int] = field(default_factory=dict)

    def is_balanced(self) -> bool:
        """Whether every task is accounted for exactly once."""
        out = self.imported + self.unlabelled + sum(self.skipped.values()) + self.dropped
        return self.tasks_in == out

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form (what ``--summary`` writes)."""
        return {**asdict(self), "balanced": self.is_balanced()}

    def render(self) -> str:
        """A short plain-text report for the terminal."""
        skipped = ", ".join(f"{k} {v}" for k, v in sorted(self.skipped.items())) or "0"
        excluded = ", ".join(f"{k} {v}" for k, v in sorted(self.annotations_excluded.items()))
        mode = "exclusive" if self.exclusive else "multilabel"
        alpha = self.agreement.get("alpha")
        lines = [
            f"Label Studio import: {self.source} ({self.export_format}, Choices "
            f"'{self.choices_name}', {mode}, ties={self.ties})",
            f"  tasks in    {self.tasks_in} = imported {self.imported} + unlabelled "
            f"{self.unlabelled} + skipped {sum(self.skipped.values())} ({skipped}) + dropped "
            f"{self.dropped}" + ("" if self.is_balanced() else "  ** DOES NOT ADD UP **"),
            f"  annotations {self.annotations_in} in, {self.annotations_used} used"
            + (f", excluded: {excluded}" if excluded else ""),
            "  decided by  "
            + (", ".join(f"{k} {v}" for k, v in sorted(self.resolutions.items())) or "-"),
            f"  agreement   Krippendorff's alpha "
            f"{'n/a' if alpha is None else f'{alpha:.3f}'} over "
            f"{self.agreement.get('tasks_with_2plus_annotators', 0)} task(s) with 2+ annotators",
        ]
        if self.conflicts:
            listed = ", ".join(f"{c['task_id']} ({c['resolution']})" for c in self.conflicts[:20])
            more = f" and {len(self.conflicts) - 20} more" if len(self.conflicts) > 20 else ""
            lines.append(f"  conflicts   {len(self.conflicts)}: task {listed}{more}")
        lines.extend(f"  note        {note}" for note in self.notes)
        return "\n".join(lines)


@dataclass
class ImportResult:
    """Records to train on, tasks still to label, and the accounting."""

    records: list[Record]
    unlabelled: list[Task]
    summary: ImportSummary
    scheme: LabelingScheme


def import_tasks(
    export: Export, scheme: LabelingScheme, *, ties: TiePolicy = "drop"
) -> ImportResult:
    """Apply the annotator policy to every task of ``export`` and account for each."""
    summary = ImportSummary(
        source=export.source,
        export_format=export.export_format,
        choices_name=scheme.choices_name,
        exclusive=scheme.exclusive,
        ties=ties,
        notes=list(export.notes),
    )
    records: list[Record] = []
    unlabelled: list[Task] = []
    skipped: Counter[str] = Counter()
    excluded: Counter[str] = Counter()
    resolutions: Counter[str] = Counter()
    label_counts: dict[str, float] = dict.fromkeys(scheme.labels, 0.0)
    for task in export.tasks:
        summary.tasks_in += 1
        summary.annotations_in += len(task.annotations)
        excluded.update(r for r in map(exclusion_reason, task.annotations) if r is not None)
        decision = decide(
            task.annotations, labels=scheme.labels, exclusive=scheme.exclusive, ties=ties
        )
        if decision.status == "unlabelled":
            summary.unlabelled += 1
            unlabelled.append(task)
            continue
        if decision.status == "skipped":
            reason = decision.skip_reason or "unknown"
            skipped[reason] += 1
            summary.skipped_task_ids.setdefault(reason, []).append(task.task_id)
            continue
        summary.annotations_used += decision.n_voters
        if decision.conflict:
            summary.conflicts.append(
                {
                    "task_id": task.task_id,
                    "votes": decision.votes,
                    "annotators": decision.n_voters,
                    "resolution": decision.resolution,
                }
            )
        resolutions[decision.resolution] += 1
        if decision.status == "dropped":
            summary.dropped += 1
            summary.dropped_task_ids.append(task.task_id)
            continue
        record = Record(
            text=task.text,
            labels=list(decision.labels),
            meta={TASK_ID_KEY: task.task_id, RESOLUTION_KEY: decision.resolution},
            soft=decision.soft,
        )
        records.append(record)
        summary.imported += 1
        for label, value in record.cats(scheme.labels).items():
            label_counts[label] += value
    summary.skipped = dict(sorted(skipped.items()))
    summary.annotations_excluded = dict(sorted(excluded.items()))
    summary.resolutions = dict(sorted(resolutions.items()))
    summary.label_counts = label_counts
    summary.agreement = agreement_report(
        [task.annotations for task in export.tasks],
        labels=scheme.labels,
        exclusive=scheme.exclusive,
    )
    return ImportResult(records, unlabelled, summary, scheme)


def import_export(
    path: Path,
    scheme: LabelingScheme,
    *,
    ties: TiePolicy = "drop",
    export_format: ExportFormat | None = None,
) -> ImportResult:
    """Read the export at ``path`` and import it (see :func:`import_tasks`)."""
    return import_tasks(read_export(path, scheme, export_format=export_format), scheme, ties=ties)


def split_records(
    records: Sequence[Record],
    *,
    dev_fraction: float = 0.0,
    test_fraction: float = 0.0,
    seed: int = 0,
) -> dict[str, list[Record]]:
    """Seeded stratified ``train`` / ``dev`` / ``test`` parts (a fraction of 0 = no part).

    Test is split off first, then dev from the rest, each with the shared
    :func:`~textcat_kit.data.split.stratified_split`; every record lands in one part.
    """
    rest: list[Record] = list(records)
    test: list[Record] = []
    if test_fraction:
        rest, test = stratified_split(rest, test_fraction, seed)
    dev: list[Record] = []
    if dev_fraction:
        rest, dev = stratified_split(rest, dev_fraction / (1.0 - test_fraction), seed)
    return {"train": rest, "dev": dev, "test": test}


def write_import(
    result: ImportResult,
    output: Path,
    *,
    dev_output: Path | None = None,
    dev_fraction: float = 0.0,
    test_output: Path | None = None,
    test_fraction: float = 0.0,
    seed: int = 0,
    unlabelled_output: Path | None = None,
    summary_output: Path | None = None,
    lang: str = "en",
    overwrite: bool = False,
) -> dict[str, int]:
    """Write the ``.spacy`` corpus (every label explicit 0/1, task id in ``doc.user_data``),
    optionally split into dev/test files, the unlabelled tasks as JSONL and the summary as
    JSON; return the number of docs written per part.

    Every file is written atomically (:func:`textcat_kit.safe_write.atomic_file`); an existing
    file is replaced only with ``overwrite=True``, and all targets are checked first.
    """
    for path, fraction, flag in (
        (dev_output, dev_fraction, "--dev-fraction"),
        (test_output, test_fraction, "--test-fraction"),
    ):
        if (path is None) != (fraction == 0.0) or not 0.0 <= fraction < 1.0:
            raise ConfigError(Errors.E134.format(flag=flag, fraction=fraction))
    if dev_fraction + test_fraction >= 1.0:
        raise ConfigError(
            Errors.E134.format(
                flag="--dev-fraction + --test-fraction", fraction=dev_fraction + test_fraction
            )
        )
    parts = split_records(
        result.records, dev_fraction=dev_fraction, test_fraction=test_fraction, seed=seed
    )
    paths = {"train": output, "dev": dev_output, "test": test_output}
    # Refuse before writing anything: an existing output is replaced only with overwrite.
    targets = [*paths.values(), unlabelled_output, summary_output]
    for target in targets:
        if target is not None:
            check_file_target(target, overwrite=overwrite)
    written: dict[str, int] = {}
    for part, path in paths.items():
        if path is not None:
            with atomic_file(path, overwrite=overwrite) as tmp:
                written[part] = write_records(parts[part], tmp, result.scheme.labels, lang)
    result.summary.splits = written
    if unlabelled_output is not None:
        with atomic_file(unlabelled_output, overwrite=overwrite) as tmp:
            write_unlabelled(result.unlabelled, tmp)
    if summary_output is not None:
        with atomic_file(summary_output, overwrite=overwrite) as tmp:
            srsly.write_json(tmp, result.summary.to_dict())
    return written


def check_file_target(path: Path, *, overwrite: bool) -> None:
    """Raise :class:`~textcat_kit.errors.OutputError` unless ``path`` may be written."""
    if path.is_dir():
        raise OutputError(Errors.E025.format(path=path))
    if path.exists() and not overwrite:
        raise OutputError(Errors.E023.format(path=path, option="--overwrite"))


def write_unlabelled(tasks: Sequence[Task], path: Path) -> None:
    """One JSON object per line: ``{"ls_task_id", "text", "data"}`` (input of ``push``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    srsly.write_jsonl(
        path, ({TASK_ID_KEY: t.task_id, "text": t.text, "data": t.data} for t in tasks)
    )

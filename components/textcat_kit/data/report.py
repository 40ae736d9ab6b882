"""The data report: label counts per split, rare labels, conflicts and leakage.

Leakage is the silent killer of evaluation: a test text that also occurs in train
(exactly, or after normalising case, whitespace and punctuation) measures memory, not
generalisation. The report counts and lists such texts for every pair of splits.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from .records import Record

_PUNCT_OR_SPACE = re.compile(r"[\W_]+", re.UNICODE)


def normalise_text(text: str) -> str:
    """Case-, whitespace- and punctuation-insensitive key for duplicate detection."""
    text = unicodedata.normalize("NFKC", text).casefold()
    return _PUNCT_OR_SPACE.sub(" ", text).strip()


def label_counts(records: Sequence[Record]) -> Counter[str]:
    return Counter(label for record in records for label in record.labels)


def conflicting_texts(records: Sequence[Record]) -> list[dict[str, Any]]:
    """Identical texts (exact) that carry different label sets."""
    seen: dict[str, set[tuple[str, ...]]] = defaultdict(set)
    for record in records:
        seen[record.text].add(tuple(sorted(record.labels)))
    return [
        {"text": text, "label_sets": sorted(list(ls) for ls in label_sets)}
        for text, label_sets in seen.items()
        if len(label_sets) > 1
    ]


def leaked_texts(
    source: Sequence[Record], target: Sequence[Record]
) -> dict[str, list[dict[str, Any]]]:
    """Texts of ``target`` that occur in ``source``: exactly, and after normalisation."""
    exact_source = {r.text for r in source}
    normal_source: dict[str, str] = {}
    for r in source:
        normal_source.setdefault(normalise_text(r.text), r.text)
    exact, normalised = [], []
    for r in target:
        if r.text in exact_source:
            exact.append({"text": r.text, "labels": r.labels, **_where(r)})
        elif (key := normalise_text(r.text)) in normal_source:
            normalised.append(
                {"text": r.text, "matches": normal_source[key], "labels": r.labels, **_where(r)}
            )
    return {"exact": exact, "normalised": normalised}


def _where(record: Record) -> dict[str, Any]:
    return {k: record.meta[k] for k in ("source", "line", "id") if k in record.meta}


def build_report(
    splits: Mapping[str, Sequence[Record]],
    label_set: Sequence[str],
    min_count: int = 20,
    accounting: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The report as a JSON-serialisable dict."""
    counts = {name: label_counts(records) for name, records in splits.items()}
    per_label = {
        label: {name: counts[name].get(label, 0) for name in splits} for label in label_set
    }
    rare = {
        name: sorted(label for label in label_set if counts[name].get(label, 0) < min_count)
        for name in splits
    }
    leakage = {}
    names = list(splits)
    for i, first in enumerate(names):
        for second in names[i + 1 :]:
            found = leaked_texts(splits[first], splits[second])
            leakage[f"{first}->{second}"] = {
                "n_exact": len(found["exact"]),
                "n_normalised": len(found["normalised"]),
                **found,
            }
    return {
        "n_labels": len(label_set),
        "n_docs": {name: len(records) for name, records in splits.items()},
        "labels_per_doc": {
            name: dict(sorted(Counter(len(r.labels) for r in records).items()))
            for name, records in splits.items()
        },
        "label_counts": per_label,
        "min_count": min_count,
        "labels_below_min_count": rare,
        "conflicting_texts": {name: conflicting_texts(recs) for name, recs in splits.items()},
        "leakage": leakage,
        "accounting": dict(accounting or {}),
    }


def report_to_markdown(report: Mapping[str, Any], max_listed: int = 50) -> str:
    """A readable rendering of :func:`build_report`."""
    splits = list(report["n_docs"])
    lines = ["# Data report", ""]
    lines += ["| split | docs |", "|---|---:|"]
    lines += [f"| {s} | {report['n_docs'][s]} |" for s in splits]
    if report.get("accounting"):
        lines += ["", "## Accounting (rows in = written + skipped)", ""]
        for name, acc in report["accounting"].items():
            lines.append(f"- **{name}**: {acc}")
    lines += ["", "## Label counts", ""]
    lines += ["| label | " + " | ".join(splits) + " |", "|---|" + "---:|" * len(splits)]
    for label, per_split in report["label_counts"].items():
        lines.append(f"| {label} | " + " | ".join(str(per_split[s]) for s in splits) + " |")
    lines += ["", f"## Labels with fewer than {report['min_count']} examples", ""]
    for split, labels in report["labels_below_min_count"].items():
        lines.append(f"- {split}: {', '.join(labels) if labels else 'none'}")
    lines += ["", "## Identical texts with conflicting labels", ""]
    for split, conflicts in report["conflicting_texts"].items():
        lines.append(f"- {split}: {len(conflicts)}")
        for item in conflicts[:max_listed]:
            lines.append(f"  - `{_md(item['text'])}`: {item['label_sets']}")
    lines += ["", "## Leakage between splits (exact / normalised duplicates)", ""]
    for pair, found in report["leakage"].items():
        lines.append(f"### {pair}: {found['n_exact']} exact, {found['n_normalised']} normalised")
        lines.append("")
        for item in (found["exact"] + found["normalised"])[:max_listed]:
            where = f"{item.get('source', '')}:{item.get('line', '')}"
            lines.append(f"- `{_md(item['text'])}` ({where}) {item['labels']}")
        extra = found["n_exact"] + found["n_normalised"] - max_listed
        if extra > 0:
            lines.append(f"- … and {extra} more (see the JSON report)")
        lines.append("")
    return "\n".join(lines) + "\n"


def _md(text: str) -> str:
    return text.replace("`", "'").replace("\n", " ").replace("|", "\\|")[:200]

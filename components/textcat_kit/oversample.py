"""Rare-label oversampling of training records: duplicate examples until labels reach a floor.

An alternative to class-weighted losses for the data step: instead of scaling the loss of
rare labels, show their examples more often. :func:`oversample_rare_labels` is a pure,
seeded function over :class:`~textcat_kit.data.records.Record` objects: it never drops or
changes a record, only appends copies, so the same seed and input always give the same
corpus. Apply it to the **training** split only: duplicated examples in a dev or test set
would inflate its scores.

Multi-label aware: copying a record raises the count of *every* label it carries, so labels
are topped up from the rarest to the most frequent, and copies are drawn first from records
whose other labels are still below the target (so that topping up ``grief`` does not also
inflate ``neutral`` when a ``grief``-only example exists).
"""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import replace
from typing import NamedTuple

from .data.records import Record
from .errors import ConfigError
from .errors import Errors as OversampleErrors

#: Key added to the ``meta`` of each copy (kept in ``doc.user_data``), so that copies can
#: be told apart from originals when auditing a corpus.
COPY_MARKER = "oversampled"


class OversampleResult(NamedTuple):
    """The oversampled records and per-label positive counts before and after."""

    records: list[Record]
    n_copies: int
    counts_before: dict[str, int]
    counts_after: dict[str, int]

    @property
    def added(self) -> dict[str, int]:
        """Labels whose count grew, with how many positive examples they gained."""
        return {
            label: self.counts_after[label] - count
            for label, count in self.counts_before.items()
            if self.counts_after[label] > count
        }

    def describe(self) -> str:
        """One line per label that gained examples, for the data step to print."""
        if not self.n_copies:
            return "oversampling: no label below the target, no records added"
        lines = [f"oversampling: added {self.n_copies} copies of existing records"]
        for label, gained in sorted(self.added.items(), key=lambda item: -item[1]):
            before = self.counts_before[label]
            lines.append(f"  {label}: {before} -> {before + gained} (+{gained})")
        return "\n".join(lines)


def oversample_rare_labels(
    records: Sequence[Record],
    *,
    min_count: int | None = None,
    target_ratio: float = 0.0,
    seed: int = 0,
) -> OversampleResult:
    """Append copies of records so that every label reaches a target number of examples.

    The target is ``max(min_count, ceil(target_ratio * largest_label_count))``: an absolute
    floor, a fraction of the most frequent label (imbalanced-learn's ``sampling_strategy``
    ratio), or both. Labels already at or above it are left alone; labels with no
    example at all cannot be oversampled and stay at 0. Copies are drawn by cycling
    through a seeded shuffle of the candidate records, so every example of a rare label
    is repeated about equally often rather than a few of them many times.

    Returns the original records (same objects, same order) followed by the copies, the
    number of copies, and the label counts before and after.
    """
    if min_count is not None and min_count < 0:
        raise ConfigError(
            OversampleErrors.E189.format(setting="min_count", value=min_count, rule="must be >= 0")
        )
    if not 0.0 <= target_ratio <= 1.0:
        raise ConfigError(
            OversampleErrors.E189.format(
                setting="target_ratio", value=target_ratio, rule="must be within [0, 1]"
            )
        )
    label_sets = [frozenset(record.labels) for record in records]
    counts_before = Counter(label for labels in label_sets for label in labels)
    largest = max(counts_before.values(), default=0)
    target = max(min_count or 0, math.ceil(target_ratio * largest))
    counts = Counter(counts_before)
    rng = random.Random(seed)
    copies: list[Record] = []
    for label in sorted(counts_before, key=lambda name: (counts_before[name], name)):
        deficit = target - counts[label]
        if deficit <= 0:
            continue
        candidates = [i for i, labels in enumerate(label_sets) if label in labels]
        preferred = [
            i
            for i in candidates
            if all(counts[other] < target for other in label_sets[i] if other != label)
        ]
        for index in _cycle_shuffled(preferred or candidates, deficit, rng):
            copies.append(_copy_record(records[index]))
            counts.update(label_sets[index])
    return OversampleResult(
        records=[*records, *copies],
        n_copies=len(copies),
        counts_before=dict(counts_before),
        counts_after={label: counts[label] for label in counts_before},
    )


def _cycle_shuffled(pool: list[int], n: int, rng: random.Random) -> list[int]:
    """``n`` items from ``pool``: whole shuffled passes over it, then part of one more."""
    drawn: list[int] = []
    while len(drawn) < n:
        shuffled = list(pool)
        rng.shuffle(shuffled)
        drawn.extend(shuffled)
    return drawn[:n]


def _copy_record(record: Record) -> Record:
    """An independent copy of ``record`` whose meta marks it as an oversampled copy."""
    return replace(
        record,
        labels=list(record.labels),
        meta={**record.meta, COPY_MARKER: True},
        soft=dict(record.soft) if record.soft is not None else None,
    )

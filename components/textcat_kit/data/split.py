"""Seeded, stratified dev splits, for sources that ship without one.

Exclusive data is stratified per class. Multi-label data uses iterative stratification
(Sechidis et al., 2011): examples of the rarest labels are placed first, so every label
gets close to its share of dev examples, which matters for thresholds tuned on dev.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Sequence

from .records import Record

#: Stratum of records without any label (all-negative multi-label examples), so they are
#: split in proportion like any label instead of all staying in train.
_NO_LABEL = "\x00(no label)"


def stratified_split(
    records: Sequence[Record], dev_fraction: float, seed: int = 0
) -> tuple[list[Record], list[Record]]:
    """Split ``records`` into ``(train, dev)``; every record lands in exactly one part.

    The last training example of a label is never moved, so a label with one or two
    examples may have none in ``dev``; the caller reports such labels. ``dev`` gets at
    least one record whenever some record's labels all have a second example.
    """
    if not 0.0 < dev_fraction < 1.0:
        raise ValueError(f"dev_fraction must be in (0, 1), got {dev_fraction}")
    rng = random.Random(seed)
    order = list(range(len(records)))
    rng.shuffle(order)
    strata = [list(r.labels) or [_NO_LABEL] for r in records]
    label_counts = Counter(label for labels in strata for label in labels)
    wanted = {label: dev_fraction * count for label, count in label_counts.items()}
    n_dev_target = round(dev_fraction * len(records))

    def rarity(index: int) -> int:
        return min(label_counts[label] for label in strata[index])

    # Rarest first; the shuffle above breaks ties at random but reproducibly.
    order.sort(key=rarity)
    dev_idx: set[int] = set()
    in_dev: Counter[str] = Counter()
    for index in order:
        if len(dev_idx) >= n_dev_target:
            break
        labels = strata[index]
        # Place the example in dev while its rarest label (the one it is sorted by) is short
        # of its share, but never take the last training example of a label. Asking "any
        # label short" instead would move every example of a rare label whose documents
        # also carry a common label that is still short (multi-label data with many labels
        # per document).
        # A label with 3+ examples gets at least one in dev, so its threshold can be checked.
        rarest = min(labels, key=lambda label: (label_counts[label], label))
        share = max(1.0, wanted[rarest]) if label_counts[rarest] >= 3 else wanted[rarest]
        if in_dev[rarest] + 1 <= share + 0.5 and all(
            label_counts[label] - in_dev[label] > 1 for label in labels
        ):
            dev_idx.add(index)
            in_dev.update(labels)
    if not dev_idx and len(records) >= 2:
        # Tiny data: no label reached its share of one example. Take one example whose
        # labels all keep a training example, so the split is never empty when it can
        # be filled.
        for index in order:
            labels = strata[index]
            if all(label_counts[label] > 1 for label in labels):
                dev_idx.add(index)
                break
    train = [r for i, r in enumerate(records) if i not in dev_idx]
    dev = [r for i, r in enumerate(records) if i in dev_idx]
    return train, dev

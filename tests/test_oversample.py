"""Rare-label oversampling: targets, multi-label awareness, determinism, nothing dropped."""

from __future__ import annotations

from collections import Counter

import pytest

from textcat_kit.data.records import Record
from textcat_kit.errors import ConfigError
from textcat_kit.oversample import COPY_MARKER, oversample_rare_labels


def label_counts(records: list[Record]) -> Counter[str]:
    return Counter(label for record in records for label in set(record.labels))


def exclusive_records() -> list[Record]:
    return [
        *[Record(f"common {i}", ["common"], {"line": i}) for i in range(20)],
        *[Record(f"medium {i}", ["medium"], {"line": 20 + i}) for i in range(8)],
        *[Record(f"rare {i}", ["rare"], {"line": 28 + i}) for i in range(3)],
    ]


def test_labels_below_min_count_are_topped_up_exactly() -> None:
    records = exclusive_records()
    result = oversample_rare_labels(records, min_count=10, seed=0)
    assert label_counts(result.records) == {"common": 20, "medium": 10, "rare": 10}
    assert result.n_copies == 2 + 7
    assert result.added == {"medium": 2, "rare": 7}
    assert result.counts_before == {"common": 20, "medium": 8, "rare": 3}
    assert result.counts_after == {"common": 20, "medium": 10, "rare": 10}


def test_target_ratio_is_relative_to_the_largest_label() -> None:
    result = oversample_rare_labels(exclusive_records(), target_ratio=0.5, seed=0)
    # ceil(0.5 * 20) = 10; min_count and ratio combine as the larger of the two
    assert label_counts(result.records) == {"common": 20, "medium": 10, "rare": 10}
    result = oversample_rare_labels(exclusive_records(), target_ratio=0.5, min_count=12, seed=0)
    assert label_counts(result.records) == {"common": 20, "medium": 12, "rare": 12}


def test_originals_are_kept_in_order_and_copies_are_marked() -> None:
    records = exclusive_records()
    result = oversample_rare_labels(records, min_count=10, seed=0)
    assert result.records[: len(records)] == records
    assert all(a is b for a, b in zip(result.records, records, strict=False))
    copies = result.records[len(records) :]
    assert all(copy.meta[COPY_MARKER] is True for copy in copies)
    assert all(COPY_MARKER not in record.meta for record in records)
    originals = {record.text: record for record in records}
    for copy in copies:
        assert copy.labels == originals[copy.text].labels
        assert copy.meta["line"] == originals[copy.text].meta["line"]
        copy.labels.append("changed")  # copies are independent of the originals
    assert label_counts(records) == {"common": 20, "medium": 8, "rare": 3}


def test_copies_are_spread_evenly_over_the_examples_of_a_label() -> None:
    result = oversample_rare_labels(exclusive_records(), min_count=10, seed=0)
    copies = Counter(record.text for record in result.records if record.meta.get(COPY_MARKER))
    rare_copies = [copies[f"rare {i}"] for i in range(3)]
    assert sorted(rare_copies) == [2, 2, 3]  # 7 copies over 3 examples


def test_same_seed_same_result_and_different_seed_different_choice() -> None:
    def texts(seed: int) -> list[str]:
        result = oversample_rare_labels(exclusive_records(), min_count=10, seed=seed)
        return [record.text for record in result.records]

    assert texts(1) == texts(1)
    assert any(texts(seed) != texts(1) for seed in range(2, 6))


def test_multilabel_prefers_records_whose_other_labels_are_not_frequent() -> None:
    records = [
        *[Record(f"neutral {i}", ["neutral"]) for i in range(30)],
        Record("grief and neutral", ["grief", "neutral"]),
        Record("grief alone", ["grief"]),
        *[Record(f"joy {i}", ["joy"]) for i in range(6)],
        Record("joy and grief", ["joy", "grief"]),
    ]
    result = oversample_rare_labels(records, min_count=6, seed=0)
    counts = label_counts(result.records)
    assert counts["grief"] == 6
    assert counts["neutral"] == 31  # the grief+neutral record was never copied
    # of the three grief records only "grief alone" has no other label already at the
    # target (neutral has 31, joy 7), so all copies come from it
    copied = Counter(r.text for r in result.records if r.meta.get(COPY_MARKER))
    assert copied == {"grief alone": 3}


def test_multilabel_counts_every_label_of_a_copy() -> None:
    records = [
        *[Record(f"a {i}", ["a"]) for i in range(10)],
        Record("b and c", ["b", "c"]),
        Record("c", ["c"]),
    ]
    result = oversample_rare_labels(records, min_count=4, seed=0)
    counts = label_counts(result.records)
    # b (1) is topped up first with 3 copies of "b and c", which also lift c to 5
    assert counts == {"a": 10, "b": 4, "c": 5}
    assert result.counts_after == dict(counts)


def test_nothing_to_do_returns_the_records_unchanged() -> None:
    records = exclusive_records()
    result = oversample_rare_labels(records, seed=0)
    assert result.records == records and result.n_copies == 0 and result.added == {}
    assert "no records added" in result.describe()
    result = oversample_rare_labels([], min_count=5, seed=0)
    assert result.records == [] and result.n_copies == 0


def test_unlabelled_records_are_kept_but_never_copied() -> None:
    records = [Record("no label", []), Record("x", ["x"]), *[Record("y", ["y"])] * 4]
    result = oversample_rare_labels(records, min_count=3, seed=0)
    assert result.records[0].text == "no label"
    assert sum(record.text == "no label" for record in result.records) == 1
    assert label_counts(result.records)["x"] == 3


def test_soft_labels_are_copied() -> None:
    records = [Record("soft", ["a"], soft={"a": 0.7}), *[Record("b", ["b"])] * 3]
    result = oversample_rare_labels(records, min_count=2, seed=0)
    copy = result.records[-1]
    assert copy.soft == {"a": 0.7} and copy.soft is not records[0].soft


def test_describe_lists_what_was_added() -> None:
    result = oversample_rare_labels(exclusive_records(), min_count=10, seed=0)
    assert result.describe().splitlines() == [
        "oversampling: added 9 copies of existing records",
        "  rare: 3 -> 10 (+7)",
        "  medium: 8 -> 10 (+2)",
    ]


def test_invalid_settings_raise_coded_errors() -> None:
    with pytest.raises(ConfigError, match=r"\[E189\].*min_count"):
        oversample_rare_labels(exclusive_records(), min_count=-1, seed=0)
    with pytest.raises(ConfigError, match=r"\[E189\].*target_ratio"):
        oversample_rare_labels(exclusive_records(), target_ratio=1.5, seed=0)

"""The in-memory unit of labelled data and its conversion to and from ``DocBin``.

Every importer (CSV/TSV/JSONL, Label Studio) produces :class:`Record` objects; a single
function turns them into ``.spacy`` files so that every corpus written by the project
has the same guarantees: every label of the label set is present in ``doc.cats`` as an
explicit 0.0 or 1.0 (or a soft value in [0, 1] when annotators disagreed on purpose),
and where the record came from is kept in ``doc.user_data``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import spacy
import srsly
from spacy.language import Language
from spacy.tokens import DocBin


@dataclass
class Record:
    """One labelled (or unlabelled) text.

    ``labels`` are the positive labels; ``soft`` optionally overrides individual label
    values with a probability (used for multi-annotator soft labels). ``meta`` is copied
    to ``doc.user_data`` (e.g. ``{"source": "train.csv", "line": 12}`` or
    ``{"ls_task_id": 42}``) and must be msgpack-serialisable.
    """

    text: str
    labels: list[str]
    meta: dict[str, Any] = field(default_factory=dict)
    soft: dict[str, float] | None = None

    def cats(self, label_set: Sequence[str]) -> dict[str, float]:
        """All labels of ``label_set`` with an explicit value: 1.0, 0.0 or the soft value."""
        positives = set(self.labels)
        cats = {label: 1.0 if label in positives else 0.0 for label in label_set}
        if self.soft:
            for label, value in self.soft.items():
                if label in cats:
                    cats[label] = float(value)
        return cats


@lru_cache(maxsize=8)
def blank(lang: str) -> Language:
    """A cached blank pipeline: creating one loads every entry point (seconds)."""
    return spacy.blank(lang)


def records_to_docbin(
    records: Iterable[Record], label_set: Sequence[str], lang: str = "en", store_meta: bool = True
) -> DocBin:
    """Tokenise ``records`` with a blank ``lang`` pipeline and store them with full cats.

    ``store_meta`` keeps ``Record.meta`` in ``doc.user_data``. It costs time on every
    read: spaCy's DocBin unpacks each doc's user data with a new msgpack unpacker, and
    each one scans the installed entry points (~3 ms a doc, so ~2 minutes per epoch of
    GoEmotions in ``spacy train``). Training corpora that don't need it should skip it.
    """
    nlp = blank(lang)
    records = list(records)
    # DocBin.add would serialise user_data with a new msgpack packer per doc, which costs
    # the same entry-point scan; one packer for all docs is ~100x faster.
    doc_bin = DocBin(store_user_data=False)
    packer = srsly.msgpack.Packer(use_bin_type=True)
    user_data = []
    docs = nlp.tokenizer.pipe(r.text for r in records)  # type: ignore[union-attr]
    for record, doc in zip(records, docs):
        doc.cats = record.cats(label_set)
        doc_bin.add(doc)
        if store_meta:
            user_data.append(packer.pack(dict(record.meta)))
    if store_meta:
        doc_bin.store_user_data = True
        doc_bin.user_data = user_data
    return doc_bin


def write_records(
    records: Iterable[Record],
    path: Path,
    label_set: Sequence[str],
    lang: str = "en",
    store_meta: bool = True,
) -> int:
    """Write ``records`` to a ``.spacy`` file and return how many were written."""
    doc_bin = records_to_docbin(records, label_set, lang, store_meta)
    path.parent.mkdir(parents=True, exist_ok=True)
    doc_bin.to_disk(path)
    return len(doc_bin)


def read_docbin_records(path: Path, lang: str = "en", threshold: float = 0.5) -> list[Record]:
    """Read a ``.spacy`` file back into records (labels with a value ≥ ``threshold``)."""
    nlp = blank(lang)
    records = []
    for doc in DocBin().from_disk(path).get_docs(nlp.vocab):
        labels = [label for label, value in doc.cats.items() if value >= threshold]
        soft = {k: v for k, v in doc.cats.items() if 0.0 < v < 1.0} or None
        records.append(Record(doc.text, labels, dict(doc.user_data), soft))
    return records

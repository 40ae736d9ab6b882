"""From texts to output rows: run the pipeline, read its results through the public Doc
API (``doc.cats`` and ``doc._.decided_labels``) and lay them out as Arrow columns, which
become Parquet row groups or JSON lines.

Output columns, in order:

* ``source`` (string): the input file, relative to the input directory;
* ``row`` (int64): the record's 0-based number in that file;
* ``id`` (string, with ``--id-key``): the record's id, as text;
* ``labels`` (list of strings): ``doc._.decided_labels``;
* ``abstain`` (bool): exclusive task and no label decided ("route to a person");
* ``probabilities`` (struct of float32, one field per label, in the pipeline's label order)
  or, with ``--top-k K``, ``top_labels`` (list of K strings) and ``top_probabilities``
  (list of K float32), highest first.

JSON lines hold the same fields; probabilities are written rounded to 7 decimals (the
precision of the float32 values in Parquet) and ``probabilities`` is an object
``{label: p}``.
"""

from __future__ import annotations

import contextlib
import json
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import ConfigError, Errors, Warnings

# spaCy is imported where a pipeline is used, not here: the Ray engine's read and write
# tasks import this module for the output layout, and importing spaCy (with thinc and, when
# installed, torch) would cost each of those worker processes seconds of CPU.
if TYPE_CHECKING:
    import pyarrow as pa
    from spacy.language import Language

DECIDED = "decided_labels"


@dataclass(frozen=True)
class OutputSpec:
    """What the output rows hold: the pipeline's labels and task, and the layout options."""

    labels: tuple[str, ...]
    exclusive: bool
    has_decision: bool
    top_k: int | None = None
    with_id: bool = False

    @classmethod
    def from_pipeline(
        cls, nlp: Language, *, top_k: int | None = None, with_id: bool = False
    ) -> OutputSpec:
        from spacy.tokens import Doc

        from ..evaluation import find_textcat, is_exclusive
        from ..pipeline.fitted import pipeline_decisions

        name, pipe = find_textcat(nlp)
        labels = tuple(pipe.labels)
        if top_k is not None and not 1 <= top_k <= len(labels):
            raise ConfigError(Errors.E355.format(top_k=top_k, n_labels=len(labels)))
        # The decision rule is owned by our classifiers after `tune`, or a standalone
        # textcat_kit_decision component follows a third-party classifier.
        has_decision = pipeline_decisions(nlp, name).decision is not None and Doc.has_extension(
            DECIDED
        )
        return cls(labels, is_exclusive(pipe), has_decision, top_k, with_id)

    def to_json(self) -> dict[str, Any]:
        return {
            "labels": list(self.labels),
            "exclusive": self.exclusive,
            "has_decision": self.has_decision,
            "top_k": self.top_k,
            "with_id": self.with_id,
        }

    def schema(self) -> pa.Schema:
        import pyarrow as pa

        fields = [pa.field("source", pa.string()), pa.field("row", pa.int64())]
        if self.with_id:
            fields.append(pa.field("id", pa.string()))
        fields += [pa.field("labels", pa.list_(pa.string())), pa.field("abstain", pa.bool_())]
        if self.top_k is None:
            struct = pa.struct([pa.field(label, pa.float32()) for label in self.labels])
            fields.append(pa.field("probabilities", struct))
        else:
            fields += [
                pa.field("top_labels", pa.list_(pa.string())),
                pa.field("top_probabilities", pa.list_(pa.float32())),
            ]
        return pa.schema(fields)


def warn_if_untuned(spec: OutputSpec) -> None:
    if not spec.has_decision:
        warnings.warn(Warnings.W350.format(rule=_fallback_rule(spec)), stacklevel=2)


def _fallback_rule(spec: OutputSpec) -> str:
    return "the top label" if spec.exclusive else "every label with p >= 0.5"


#: Texts scored outside memory zones first (see :class:`Scorer`).
WARMUP_TEXTS = 5000


class Scorer:
    """Scores batches of texts with bounded memory.

    Every batch after the first ``warmup`` texts runs inside ``nlp.memory_zone()``, so the
    strings and lexemes it creates (ids, numbers, typos: new ones in every batch) are freed
    when it ends; without it the vocab grows with the input (65 MB per 100k texts with two
    unique tokens each, measured). The first ``warmup`` texts run outside a zone, so the
    common words and the tokenizer's cache entries for them stay; without that warm-up
    every zone would tokenise and create them again (+60% CPU on Banking77 texts, against
    +0-10% with it).
    """

    def __init__(self, nlp: Language, spec: OutputSpec, warmup: int | None = None) -> None:
        self.nlp, self.spec = nlp, spec
        self.warmup = WARMUP_TEXTS if warmup is None else warmup
        self.seen = 0

    def __call__(self, texts: Sequence[str]) -> tuple[np.ndarray, list[list[str]]]:
        zone = self.seen >= self.warmup
        self.seen += len(texts)
        return score_texts(self.nlp, texts, self.spec, memory_zone=zone)


def score_texts(
    nlp: Language, texts: Sequence[str], spec: OutputSpec, *, memory_zone: bool = True
) -> tuple[np.ndarray, list[list[str]]]:
    """Run ``nlp.pipe`` over ``texts``; return ``doc.cats`` as a float32 matrix (rows in
    input order, columns in ``spec.labels`` order) and the decided labels of each doc.
    With ``memory_zone`` no Doc, string or lexeme made for these texts outlives the call."""
    labels = spec.labels
    scores = np.empty((len(texts), len(labels)), dtype=np.float32)
    decided: list[list[str]] = []
    with nlp.memory_zone() if memory_zone else contextlib.nullcontext():
        for i, doc in enumerate(nlp.pipe(texts, batch_size=max(1, len(texts)))):
            cats = doc.cats
            try:
                scores[i] = list(map(cats.__getitem__, labels))
            except KeyError as err:
                present = ", ".join(list(cats)[:10])
                raise ConfigError(Errors.E014.format(label=err.args[0], present=present)) from None
            if spec.has_decision:
                decided.append(list(doc._.get(DECIDED) or []))
    if not spec.has_decision:
        decided = _fallback_decisions(scores, spec)
    return scores, decided


def _fallback_decisions(scores: np.ndarray, spec: OutputSpec) -> list[list[str]]:
    labels = spec.labels
    if not len(scores):
        return []
    if spec.exclusive:
        return [[labels[j]] for j in scores.argmax(axis=1).tolist()]
    return [[labels[j] for j in np.flatnonzero(row >= 0.5)] for row in scores]


def result_table(
    spec: OutputSpec,
    source: str | Sequence[str],
    rows: Sequence[int] | np.ndarray,
    ids: Sequence[str] | None,
    scores: np.ndarray,
    decided: list[list[str]],
) -> pa.Table:
    """The output rows of one scored batch as an Arrow table with ``spec.schema()``."""
    import pyarrow as pa

    n = len(decided)
    if isinstance(source, str):
        source_array = pa.DictionaryArray.from_arrays(
            pa.array(np.zeros(n, dtype=np.int32)), pa.array([source])
        ).cast(pa.string())
    else:
        source_array = pa.array(source, type=pa.string())
    columns: list[Any] = [source_array, pa.array(np.asarray(rows, dtype=np.int64))]
    if spec.with_id:
        columns.append(pa.array(ids, type=pa.string()))
    columns.append(pa.array(decided, type=pa.list_(pa.string())))
    abstain = (
        np.array([not d for d in decided], dtype=bool) if spec.exclusive else np.zeros(n, bool)
    )
    columns.append(pa.array(abstain))
    if spec.top_k is None:
        by_label = np.ascontiguousarray(scores.T)
        columns.append(
            pa.StructArray.from_arrays(
                [pa.array(by_label[j]) for j in range(len(spec.labels))],
                fields=list(spec.schema().field("probabilities").type),
            )
        )
    else:
        k = spec.top_k
        order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
        top_p = np.take_along_axis(scores, order, axis=1)
        offsets = pa.array(np.arange(0, n * k + 1, k, dtype=np.int32))
        names = np.array(spec.labels, dtype=object)[order.ravel()]
        columns.append(pa.ListArray.from_arrays(offsets, pa.array(names, type=pa.string())))
        columns.append(pa.ListArray.from_arrays(offsets, pa.array(top_p.ravel())))
    return pa.Table.from_arrays(columns, schema=spec.schema())


def table_to_jsonl(table: pa.Table, spec: OutputSpec) -> bytes:
    """The rows of a :func:`result_table` as JSON lines (UTF-8, one object per line)."""
    source = table.column("source").to_pylist()
    rows = table.column("row").to_pylist()
    ids = table.column("id").to_pylist() if spec.with_id else None
    decided = table.column("labels").to_pylist()
    abstain = table.column("abstain").to_pylist()
    lines: list[str] = []
    dumps = json.JSONEncoder(ensure_ascii=False, separators=(", ", ": ")).encode
    if spec.top_k is None:
        struct = table.column("probabilities").combine_chunks()
        matrix = (
            np.column_stack(
                [struct.field(j).to_numpy(zero_copy_only=False) for j in range(len(spec.labels))]
            )
            if len(table)
            else np.empty((0, len(spec.labels)), np.float32)
        )
        probs = np.round(matrix.astype(np.float64), 7).tolist()
        labels = spec.labels
        for i in range(len(rows)):
            record: dict[str, Any] = {"source": source[i], "row": rows[i]}
            if ids is not None:
                record["id"] = ids[i]
            record["labels"] = decided[i]
            record["abstain"] = abstain[i]
            record["probabilities"] = dict(zip(labels, probs[i]))
            lines.append(dumps(record))
    else:
        top_labels = table.column("top_labels").to_pylist()
        top_p = table.column("top_probabilities").combine_chunks().flatten()
        k = spec.top_k
        flat = np.round(top_p.to_numpy(zero_copy_only=False).astype(np.float64), 7).tolist()
        for i in range(len(rows)):
            record = {"source": source[i], "row": rows[i]}
            if ids is not None:
                record["id"] = ids[i]
            record["labels"] = decided[i]
            record["abstain"] = abstain[i]
            record["top_labels"] = top_labels[i]
            record["top_probabilities"] = flat[i * k : (i + 1) * k]
            lines.append(dumps(record))
    return ("\n".join(lines) + "\n").encode("utf-8") if lines else b""

"""The local engine: one reader, ``n_process`` scorers, parts committed in input order.

The parent process reads the input in chunks of ``batch_size`` records and hands the
texts of each chunk to a scorer: itself (``n_process=1``) or one of ``n_process`` forked
worker processes that share the loaded pipeline. A worker sends back the finished output
rows of its chunk (an Arrow table, or JSON lines), never Docs, so the parent only
collects and writes. At most ``2 * n_process`` chunks are in flight, which bounds memory
whatever the input size (``multiprocessing.Pool.imap`` would read the whole input ahead).

Shards are ``shard_size`` consecutive records of one file, numbered in input order and
committed in that order, so the complete shards of an interrupted run are a prefix: the
resumed run seeks to where the last one ended (byte offset / Parquet row) and goes on.
"""

from __future__ import annotations

import multiprocessing
import warnings
from collections import Counter, deque
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import Warnings
from ..runtime_gc import freeze_loaded_objects, unfreeze_objects
from .inputs import Chunk, Fields, InputFile, Position, read_chunks
from .progress import Progress
from .results import OutputSpec, Scorer, result_table, table_to_jsonl
from .store import OutputFormat, PartMeta, PartStore

if TYPE_CHECKING:
    import pyarrow as pa
    from spacy.language import Language

#: What the forked workers run (set in the parent just before the pool forks).
_WORKER: tuple[Scorer, OutputSpec, OutputFormat] | None = None


def score_chunk(
    scorer: Scorer,
    spec: OutputSpec,
    fmt: OutputFormat,
    source: str,
    rows: Sequence[int],
    ids: Sequence[str] | None,
    texts: Sequence[str],
) -> pa.Table | bytes:
    """The output rows of one chunk: an Arrow table (Parquet) or JSON lines."""
    scores, decided = scorer(texts)
    table = result_table(spec, source, rows, ids, scores, decided)
    return table_to_jsonl(table, spec) if fmt == "jsonl" else table


def _score_in_worker(
    source: str, rows: list[int], ids: list[str] | None, texts: list[str]
) -> pa.Table | bytes:
    assert _WORKER is not None, "the parent sets the pipeline before forking"
    return score_chunk(*_WORKER, source, rows, ids, texts)


class _Done:
    def __init__(self, value: Any) -> None:
        self.value = value

    def get(self) -> Any:
        return self.value


@dataclass
class _ShardBuffer:
    shard: int
    file: int
    first: int
    results: list[Any] = field(default_factory=list)
    rejects: list[bytes] = field(default_factory=list)
    count: int = 0
    scored: int = 0
    reasons: Counter[str] = field(default_factory=Counter)


def _chunks_with_lookahead(chunks: Iterator[Chunk]) -> Iterator[Chunk]:
    """Fold the empty chunk a reader yields at the end of a file into the chunk before it."""
    previous: Chunk | None = None
    for chunk in chunks:
        if previous is not None:
            if chunk.n_records == 0 and chunk.at_eof:
                previous.at_eof, previous.end = True, chunk.end
                chunk = previous
                previous = None
                yield chunk
                continue
            yield previous
        previous = chunk
    if previous is not None:
        yield previous


def resume_point(
    store: PartStore,
) -> tuple[int, int, Position, list[PartMeta]]:
    """``(next shard, file index, position, parts to keep)`` from the committed parts."""
    complete = store.complete_shards()
    n_done = 0
    while n_done in complete:
        n_done += 1
    keep = [meta for shard in range(n_done) for meta in complete[shard]]
    if not n_done:
        return 0, 0, Position(), keep
    last = complete[n_done - 1][-1]
    if last.eof or last.end is None:
        return n_done, last.file + 1, Position(), keep
    return n_done, last.file, Position(**last.end), keep


def run_local(
    nlp: Language,
    spec: OutputSpec,
    files: Sequence[InputFile],
    fields: Fields,
    store: PartStore,
    *,
    n_process: int,
    batch_size: int,
    shard_size: int,
    progress: Progress,
    row_counts: Sequence[int | None],
) -> None:
    """Score every record not yet in a complete shard of ``store``."""
    global _WORKER
    next_shard, file_index, start, keep = resume_point(store)
    store.remove_except(keep)
    fmt = store.fmt
    if n_process > 1 and "fork" not in multiprocessing.get_all_start_methods():
        warnings.warn(Warnings.W003, stacklevel=2)
        n_process = 1
    pool = None
    scorer = Scorer(nlp, spec)
    # The pipeline lives as long as the job (and is shared with the workers by fork).
    freeze_loaded_objects()
    if n_process > 1:
        _WORKER = (scorer, spec, fmt)
        pool = multiprocessing.get_context("fork").Pool(n_process)
    max_in_flight = 2 * n_process
    pending: deque[tuple[Chunk, bool, Any]] = deque()
    current: _ShardBuffer | None = None

    def fraction(chunk: Chunk) -> float:
        file = files[chunk.file_index]
        if file.fmt == "parquet":
            total = row_counts[chunk.file_index] or 1
            within = chunk.end.row / total
        else:
            within = chunk.end.offset / max(1, file.size)
        return progress.position(chunk.file_index, 1.0 if chunk.at_eof else within)

    def finish(chunk: Chunk, last: bool, handle: Any) -> None:
        nonlocal current, next_shard
        if current is None:
            current = _ShardBuffer(next_shard, chunk.file_index, chunk.start)
        result = handle.get() if handle is not None else None
        if result is not None:
            current.results.append(result)
        source = files[chunk.file_index].source
        if chunk.rejects:
            current.rejects.extend(_reject_lines(chunk, source))
            current.reasons.update(r.reason for r in chunk.rejects)
        current.count += chunk.n_records
        current.scored += len(chunk.rows)
        progress.update(chunk.n_records, fraction(chunk))
        if last:
            _commit(store, current, source, chunk, fmt)
            current = None
            next_shard += 1

    try:
        if file_index < len(files):
            progress.begin(
                progress.position(
                    file_index, _within(files[file_index], start, row_counts[file_index])
                )
            )
        for chunk, last in _plan(files, fields, file_index, start, batch_size, shard_size):
            handle: Any = None
            if chunk.rows:
                args = (files[chunk.file_index].source, chunk.rows, chunk.ids, chunk.texts)
                if pool is None:
                    handle = _Done(score_chunk(scorer, spec, fmt, *args))
                else:
                    handle = pool.apply_async(_score_in_worker, args)
            pending.append((chunk, last, handle))
            while len(pending) > max_in_flight:
                finish(*pending.popleft())
        while pending:
            finish(*pending.popleft())
    finally:
        if pool is not None:
            pool.terminate()
            pool.join()
            _WORKER = None
        unfreeze_objects()
        progress.close()


def _within(file: InputFile, start: Position, n_rows: int | None) -> float:
    if file.fmt == "parquet":
        return start.row / max(1, n_rows or 1)
    return start.offset / max(1, file.size)


def _plan(
    files: Sequence[InputFile],
    fields: Fields,
    file_index: int,
    start: Position,
    batch_size: int,
    shard_size: int,
) -> Iterator[tuple[Chunk, bool]]:
    """``(chunk, last chunk of its shard)`` from ``start`` in ``files[file_index]`` on."""
    for index in range(file_index, len(files)):
        in_shard = 0
        chunks = read_chunks(files[index], index, fields, batch_size, start=start)
        for chunk in _chunks_with_lookahead(chunks):
            in_shard += chunk.n_records
            last = chunk.at_eof or in_shard >= shard_size
            yield chunk, last
            if last:
                in_shard = 0
        start = Position()


def _reject_lines(chunk: Chunk, source: str) -> list[bytes]:
    return [reject.to_line(source) for reject in chunk.rejects]


def _commit(
    store: PartStore, buffer: _ShardBuffer, source: str, last: Chunk, fmt: OutputFormat
) -> None:
    rows: Any
    if fmt == "jsonl":
        rows = b"".join(buffer.results)
    elif buffer.results:
        import pyarrow as pa

        rows = pa.concat_tables(buffer.results)
    else:
        rows = None
    meta = PartMeta(
        shard=buffer.shard,
        file=buffer.file,
        source=source,
        first=buffer.first,
        count=buffer.count,
        scored=buffer.scored,
        rejected=buffer.count - buffer.scored,
        reasons=dict(buffer.reasons),
        stop=buffer.first + buffer.count,
        eof=last.at_eof,
        end=asdict(last.end),
    )
    store.commit(meta, rows, b"".join(buffer.rejects) or None)

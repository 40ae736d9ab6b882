"""The Ray engine: ``ray.data.read_datasource`` → ``map_batches(RayScorer)`` →
``write_datasink``, on a local Ray started for the job or on a cluster (``address``).

* :class:`ScoreInputDatasource` has one read task per shard (a Parquet file is cut into
  shards of ``shard_size`` rows; a CSV / JSONL file is one shard, since its records can
  only be found by reading it from the start). Read tasks use the same readers as the
  local engine, so a bad record becomes a reject row with the same reason, instead of
  failing the job as ``ray.data.read_csv`` / ``read_json`` would.
* :class:`RayScorer` is the callable class of ``map_batches``: each actor loads the
  pipeline once, in ``__init__``, and turns a block of records into output rows (rejected
  records pass through with their reason).
* :class:`ScoreDatasink` commits each block as a part of the job's parts directory
  (:mod:`textcat_kit.scoring.store`); a resumed job reads only the shards that are not
  complete. The parts directory must be a path every node can write (a shared
  filesystem) when the job runs on a cluster.
"""

from __future__ import annotations

import functools
import os
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import ConfigError, Errors, OutputError
from ..runtime_gc import freeze_loaded_objects
from .inputs import Chunk, Fields, InputFile, Position, Reject, read_chunks
from .results import OutputSpec, Scorer, result_table, table_to_jsonl
from .store import PartMeta, PartStore

if TYPE_CHECKING:
    import pyarrow as pa

#: CPUs reserved by each read task and each write task.
IO_CPUS = 0.5
#: Records per Ray block, in ``--batch-size`` batches. Every block is one call of a scoring
#: actor and one write; blocks of one batch made Ray's per-block costs (scheduling, object
#: store, one part file per block) a third of the job on small machines.
BATCHES_PER_BLOCK = 50
INTERNAL = ("_file", "_shard", "_stop", "_line", "_reason", "_detail")


@dataclass(frozen=True)
class ShardSpec:
    shard: int
    file: int
    start: int
    stop: int | None  # None: to the end of the file


def plan_shards(
    files: Sequence[InputFile], row_counts: Sequence[int | None], shard_size: int
) -> list[ShardSpec]:
    """Parquet files in ranges of ``shard_size`` rows, text files whole, in input order."""
    plan: list[ShardSpec] = []
    for index, (file, n_rows) in enumerate(zip(files, row_counts)):
        if file.fmt == "parquet" and n_rows is not None:
            for start in range(0, max(1, n_rows), shard_size):
                plan.append(ShardSpec(len(plan), index, start, min(start + shard_size, n_rows)))
        else:
            plan.append(ShardSpec(len(plan), index, 0, None))
    return plan


def _block_schema(with_id: bool) -> pa.Schema:
    import pyarrow as pa

    fields = [pa.field("source", pa.string()), pa.field("row", pa.int64())]
    fields.append(pa.field("text", pa.string()))
    if with_id:
        fields.append(pa.field("id", pa.string()))
    fields += [
        pa.field("_file", pa.int32()),
        pa.field("_shard", pa.int64()),
        pa.field("_stop", pa.int64()),
        pa.field("_line", pa.int64()),
        pa.field("_reason", pa.string()),
        pa.field("_detail", pa.string()),
    ]
    return pa.schema(fields)


def _chunk_block(chunk: Chunk, shard: int, source: str, stop: int, with_id: bool) -> pa.Table:
    """One block: the chunk's texts, then its rejected records (text null, reason set).

    Built column by column from arrays (constant columns repeated in Arrow), not from a
    dict of Python lists: on short texts that conversion was a second of CPU per million
    records in the read tasks."""
    import pyarrow as pa

    n_ok, rejects = len(chunk.rows), chunk.rejects
    n = n_ok + len(rejects)

    def constant(value: Any, type_: pa.DataType) -> pa.Array:
        return pa.repeat(pa.scalar(value, type_), n)

    def reject_values(values: list[Any], type_: pa.DataType) -> pa.Array:
        if not rejects:
            return pa.nulls(n, type_)
        return pa.array([None] * n_ok + values, type_)

    rows = np.asarray(chunk.rows + [r.row for r in rejects], dtype=np.int64)
    arrays = [
        constant(source, pa.string()),
        pa.array(rows, pa.int64()),
        pa.array(chunk.texts + [None] * len(rejects), pa.string()),
    ]
    if with_id:
        ids = (chunk.ids or []) + [r.id for r in rejects]
        arrays.append(pa.array(ids, pa.string()))
    arrays += [
        constant(chunk.file_index, pa.int32()),
        constant(shard, pa.int64()),
        constant(stop, pa.int64()),
        reject_values([r.line for r in rejects], pa.int64()),
        reject_values([r.reason for r in rejects], pa.string()),
        reject_values([r.detail for r in rejects], pa.string()),
    ]
    return pa.Table.from_arrays(arrays, schema=_block_schema(with_id))


def _read_shard(
    shard: ShardSpec,
    file: InputFile,
    fields: Fields,
    batch_size: int,
    store: PartStore,
) -> Iterator[pa.Table]:
    chunks = read_chunks(
        file, shard.file, fields, batch_size, start=Position(row=shard.start), stop_row=shard.stop
    )
    held: Chunk | None = None
    for chunk in chunks:
        if chunk.n_records == 0:
            if held is not None:
                held.end = chunk.end
            continue
        if held is not None:
            yield _chunk_block(held, shard.shard, file.source, -1, fields.id_key is not None)
        held = chunk
    if held is None:  # a shard without records: commit its (empty) part here
        store.commit(
            PartMeta(shard.shard, shard.file, file.source, shard.start, 0, 0, 0, stop=shard.start),
            None,
            None,
        )
        return
    yield _chunk_block(held, shard.shard, file.source, held.end.row, fields.id_key is not None)


def _datasource_class() -> type:
    from ray.data.block import BlockMetadata
    from ray.data.datasource import Datasource, ReadTask

    class ScoreInputDatasource(Datasource):  # type: ignore[misc]
        """One read task per shard still to score; blocks of ``block_size`` records."""

        def __init__(
            self,
            files: Sequence[InputFile],
            fields: Fields,
            shards: Sequence[ShardSpec],
            block_size: int,
            store: PartStore,
        ) -> None:
            super().__init__()
            self.files, self.fields, self.shards = list(files), fields, list(shards)
            self.block_size, self.store = block_size, store

        def estimate_inmemory_data_size(self) -> int | None:
            return sum(self._shard_bytes(s) for s in self.shards)

        def _shard_bytes(self, shard: ShardSpec) -> int:
            return int(self.files[shard.file].size)

        def get_read_tasks(
            self, parallelism: int, per_task_row_limit: int | None = None, data_context: Any = None
        ) -> list[ReadTask]:
            tasks = []
            for shard in self.shards:
                file = self.files[shard.file]
                rows = None if shard.stop is None else shard.stop - shard.start
                meta = BlockMetadata(
                    num_rows=rows,
                    size_bytes=self._shard_bytes(shard),
                    input_files=(str(file.path),),
                    exec_stats=None,
                )
                args = (shard, file, self.fields, self.block_size, self.store)
                tasks.append(
                    ReadTask(
                        functools.partial(_read_shard, *args),
                        meta,
                        schema=_block_schema(self.fields.id_key is not None),
                    )
                )
            return tasks

    return ScoreInputDatasource


class RayScorer:
    """The ``map_batches`` callable class: loads the pipeline once per actor."""

    def __init__(self, model: str, top_k: int | None, with_id: bool, batch_size: int) -> None:
        import spacy

        self.batch_size = batch_size
        self.nlp = spacy.load(model)
        self.spec = OutputSpec.from_pipeline(self.nlp, top_k=top_k, with_id=with_id)
        self.scorer = Scorer(self.nlp, self.spec)
        # The actor holds the pipeline for its whole life: keep the collector off it.
        freeze_loaded_objects()

    def __call__(self, batch: pa.Table) -> pa.Table:
        import pyarrow as pa
        import pyarrow.compute as pc

        ok_mask = pc.is_null(batch.column("_reason"))
        ok, bad = batch.filter(ok_mask), batch.filter(pc.invert(ok_mask))
        spec = self.spec
        texts = ok.column("text").to_pylist()
        size = self.batch_size
        parts = [self.scorer(texts[i : i + size]) for i in range(0, len(texts), size)]
        scores = np.concatenate([p[0] for p in parts]) if parts else self.scorer([])[0]
        decided = [labels for p in parts for labels in p[1]]
        ids = ok.column("id").to_pylist() if spec.with_id else None
        file_indices = ok.column("_file").to_numpy()
        one_file = len(ok) > 0 and file_indices.min() == file_indices.max()
        source = ok.column("source")[0].as_py() if one_file else ok.column("source").to_pylist()
        scored = result_table(spec, source, ok.column("row").to_numpy(), ids, scores, decided)
        for name in INTERNAL:
            scored = scored.append_column(batch.schema.field(name), ok.column(name))
        if not len(bad):
            return scored
        schema = scored.schema
        rejected_columns = []
        for field in schema:
            if field.name in INTERNAL or field.name in ("source", "row", "id"):
                rejected_columns.append(bad.column(field.name))
            else:
                rejected_columns.append(pa.nulls(len(bad), field.type))
        rejected = pa.Table.from_arrays(rejected_columns, schema=schema)
        return pa.concat_tables([scored, rejected])


def _datasink_class() -> type:
    from ray.data.block import BlockAccessor
    from ray.data.datasource import Datasink

    class ScoreDatasink(Datasink):  # type: ignore[misc]
        """Commits every block as parts of the job (one per shard and run of rows)."""

        def __init__(self, store: PartStore, spec: OutputSpec) -> None:
            self.store, self.spec = store, spec

        def write(self, blocks: Iterable[Any], ctx: Any) -> list[dict[str, Any]]:
            written = []
            for block in blocks:
                table = BlockAccessor.for_block(block).to_arrow()
                if len(table):
                    written += commit_block(self.store, self.spec, table)
            return written

    return ScoreDatasink


def commit_block(store: PartStore, spec: OutputSpec, table: pa.Table) -> list[dict[str, Any]]:
    """Commit the rows of one output block: one part per shard and run of consecutive rows."""
    import pyarrow.compute as pc

    written = []
    shards = table.column("_shard").to_numpy()
    unique = np.unique(shards)
    for shard in unique:
        # A block is usually one run of one shard, in order and without rejects: then
        # there is nothing to filter or sort (that was most of a write task's CPU).
        part = table if len(unique) == 1 else table.filter(shards == shard)
        rows = part.column("row").to_numpy()
        if np.any(np.diff(rows) < 0):
            part = part.sort_by("row")
            rows = part.column("row").to_numpy()
        breaks = np.flatnonzero(np.diff(rows) != 1) + 1
        for lo, hi in zip([0, *breaks.tolist()], [*breaks.tolist(), len(rows)]):
            run = part.slice(lo, hi - lo)
            reasons = run.column("_reason")
            if reasons.null_count == len(run):
                scored, bad = run, run.slice(0, 0)
            else:
                ok_mask = pc.is_null(reasons)
                scored, bad = run.filter(ok_mask), run.filter(pc.invert(ok_mask))
            scored = scored.select(spec.schema().names).cast(spec.schema())
            source = run.column("source")[0].as_py()
            rejects = [
                Reject(row, line, reason, detail, id_).to_line(source)
                for row, line, reason, detail, id_ in zip(
                    bad.column("row").to_pylist(),
                    bad.column("_line").to_pylist(),
                    bad.column("_reason").to_pylist(),
                    bad.column("_detail").to_pylist(),
                    bad.column("id").to_pylist() if spec.with_id else [None] * len(bad),
                )
            ]
            stops = run.column("_stop").to_numpy()
            stop = int(stops.max()) if stops.max() >= 0 else None
            meta = PartMeta(
                shard=int(shard),
                file=int(run.column("_file")[0].as_py()),
                source=source,
                first=int(rows[lo]),
                count=len(run),
                scored=len(scored),
                rejected=len(bad),
                reasons=dict(Counter(bad.column("_reason").to_pylist())),
                stop=stop,
                eof=False,
            )
            data: Any = table_to_jsonl(scored, spec) if store.fmt == "jsonl" else scored
            store.commit(meta, data, b"".join(rejects) or None)
            written.append({"shard": meta.shard, "first": meta.first, "count": meta.count})
    return written


@dataclass(frozen=True)
class RaySession:
    """A connection to Ray for one job: how many scoring actors to run, and the function
    that stops the local Ray the job started (a no-op for a cluster or a Ray that was
    already running)."""

    n_actors: int
    stop: Callable[[], None]


def start_ray(address: str | None, n_process: int | None) -> RaySession:
    """Connect to ``address``, to the Ray this process already runs, or start a local one
    with one logical CPU per scoring actor (``n_process``, default all cores) and one for
    the read / write tasks."""
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError as err:
        raise ConfigError(Errors.E361.format(error=err)) from None
    stop: Callable[[], None] = _no_op
    if not ray.is_initialized():
        if address is None:
            n_actors = n_process or os.cpu_count() or 1
            ray.init(num_cpus=n_actors + 1, include_dashboard=False, log_to_driver=False)
            return RaySession(n_actors, ray.shutdown)
        ray.init(address=address, log_to_driver=False)
        stop = ray.shutdown
    total = int(ray.cluster_resources().get("CPU", 2))
    return RaySession(n_process or max(1, total - 1), stop)


def run_ray(
    model: str | os.PathLike[str],
    spec: OutputSpec,
    files: Sequence[InputFile],
    fields: Fields,
    store: PartStore,
    session: RaySession,
    *,
    batch_size: int,
    shard_size: int,
    row_counts: Sequence[int | None],
    progress: bool = True,
) -> dict[int, list[PartMeta]]:
    """Score the shards of ``store`` that are not complete on the Ray of ``session`` (see
    :func:`start_ray`); return the complete shards. Stopping a Ray the job started is the
    caller's (it does so while it assembles the output, or when anything fails).
    ``progress=False`` also turns off Ray Data's progress bars and end-of-run statistics
    for this job."""
    plan = plan_shards(files, row_counts, shard_size)
    starts = {s.shard: s.start for s in plan}
    complete = store.complete_shards(starts)
    store.remove_except([m for metas in complete.values() for m in metas])
    todo = [s for s in plan if s.shard not in complete]
    if todo:
        import ray.data

        model_ref = str(model)
        if os.path.isdir(model_ref):
            model_ref = os.path.abspath(model_ref)
        context = ray.data.DataContext.get_current()
        shown = (context.enable_progress_bars, context.enable_auto_log_stats)
        if not progress:
            context.enable_progress_bars = context.enable_auto_log_stats = False
        try:
            block_size = batch_size * BATCHES_PER_BLOCK
            if shard_size > 0:
                block_size = min(block_size, shard_size)
            datasource = _datasource_class()(files, fields, todo, block_size, store)
            # Read and write tasks ask for half a CPU: different resources keep Ray from
            # fusing the read into the scoring actors (a single CSV / JSONL shard would then
            # be scored by one actor only), and they fit beside the actors on a local Ray.
            ds = ray.data.read_datasource(
                datasource, override_num_blocks=len(todo), num_cpus=IO_CPUS
            )
            ds = ds.map_batches(
                RayScorer,
                fn_constructor_kwargs={
                    "model": model_ref,
                    "top_k": spec.top_k,
                    "with_id": spec.with_id,
                    "batch_size": batch_size,
                },
                batch_size=None,
                batch_format="pyarrow",
                compute=ray.data.ActorPoolStrategy(size=session.n_actors),
                num_cpus=1,
            )
            ds.write_datasink(_datasink_class()(store, spec), ray_remote_args={"num_cpus": IO_CPUS})
        finally:
            context.enable_progress_bars, context.enable_auto_log_stats = shown
    complete = store.complete_shards(starts)
    missing = [s for s in plan if s.shard not in complete]
    if missing:
        names = ", ".join(sorted({files[s.file].source for s in missing}))
        raise OutputError(Errors.E360.format(directory=store.directory, files=names))
    return complete


def _no_op() -> None:
    return None

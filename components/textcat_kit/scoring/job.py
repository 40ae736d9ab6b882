"""``score_files``: a scoring job from input files to an output file (or directory).

Output layout:

* ``OUTPUT`` ending in ``.parquet`` or ``.jsonl``: parts are written to ``OUTPUT.parts/``
  while the job runs; at the end they are concatenated in input order into ``OUTPUT``
  (temporary sibling, then one rename) and the parts directory is removed.
* any other ``OUTPUT``: a directory of parts (``--format parquet|jsonl``) that stays as
  the result, readable as a dataset by pyarrow / pandas / DuckDB / Spark (bookkeeping
  files start with ``_``); ``_summary.json`` appears when the job is complete.

Rejected records go to ``--rejects`` (default ``OUTPUT`` with ``.rejects.jsonl`` for a
file, ``OUTPUT/_rejects.jsonl`` for a directory), one JSON object per record with
``source``, ``row``, ``line`` (CSV / JSONL), ``id``, ``reason`` and ``detail``.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from ..errors import ConfigError, Errors, OutputError
from ..safe_write import MARKER, atomic_file
from .inputs import Fields, InputFile, discover_inputs, parquet_columns, read_csv_header
from .inputs import check_columns as _check_columns
from .progress import Progress
from .results import OutputSpec, warn_if_untuned
from .store import OutputFormat, PartStore, Summary

if TYPE_CHECKING:
    from .ray_engine import RaySession

Engine = Literal["local", "ray"]
OUTPUT_SUFFIXES: dict[str, OutputFormat] = {".parquet": "parquet", ".jsonl": "jsonl"}
JOB_VERSION = 1


@dataclass
class ScoreSettings:
    """Options of a scoring job (the ``textcat-kit score`` options)."""

    text_key: str = "text"
    id_key: str | None = None
    top_k: int | None = None
    n_process: int | None = None
    batch_size: int = 1000
    shard_size: int = 100_000
    resume: bool = False
    overwrite: bool = False
    engine: Engine = "local"
    ray_address: str | None = None
    rejects: Path | None = None
    output_format: OutputFormat | None = None
    progress: bool = True


@dataclass
class ScoreResult:
    output: Path
    rejects: Path
    summary: Summary
    resumed_parts: int = 0
    ignored_files: list[Path] = field(default_factory=list)


@dataclass
class _Layout:
    output: Path
    fmt: OutputFormat
    as_directory: bool
    parts: Path
    rejects: Path


def _layout(output: Path, settings: ScoreSettings) -> _Layout:
    output = output.absolute()
    suffix = output.suffix.lower()
    if suffix in OUTPUT_SUFFIXES and not output.is_dir():
        fmt = OUTPUT_SUFFIXES[suffix]
        if settings.output_format and settings.output_format != fmt:
            raise ConfigError(
                Errors.E358.format(path=output, fmt=settings.output_format, suffix=suffix)
            )
        rejects = settings.rejects or output.with_name(output.stem + ".rejects.jsonl")
        parts = output.with_name(output.name + ".parts")
        return _Layout(output, fmt, False, parts, Path(rejects).absolute())
    fmt = settings.output_format or "parquet"
    rejects = settings.rejects or output / "_rejects.jsonl"
    return _Layout(output, fmt, True, output, Path(rejects).absolute())


def _model_fingerprint(model: str | Path) -> dict[str, Any]:
    path = Path(model)
    if path.is_dir():
        digest = hashlib.sha256()
        for item in sorted(p for p in path.rglob("*") if p.is_file()):
            stat = item.stat()
            digest.update(f"{item.relative_to(path)}:{stat.st_size}:{stat.st_mtime_ns}".encode())
        return {"model": str(path.absolute()), "model_files": digest.hexdigest()}
    return {"model": str(model)}


def _check_inputs(files: list[InputFile], fields: Fields) -> list[int | None]:
    """File-level checks before any scoring (columns exist, no duplicate header names);
    returns the row count of each Parquet file (None for text files)."""
    counts: list[int | None] = []
    for file in files:
        if file.fmt == "parquet":
            counts.append(parquet_columns(file, fields))
        else:
            if file.fmt in ("csv", "tsv") and file.size:
                columns, _, _ = read_csv_header(file)
                _check_columns(file, columns, fields)
            counts.append(None)
    return counts


def _check_outputs(layout: _Layout, settings: ScoreSettings) -> None:
    """Refuse before scoring anything what would be refused at the end."""
    if not layout.as_directory:
        # A run killed after assembling its output but before removing its parts is resumed
        # by assembling again from the parts. They are removed by one rename to
        # ``.parts.done`` first; a run killed after that rename left them there (whole, or
        # partly deleted: a resume then scores again what is missing), so take them back.
        done = _done_parts(layout.parts)
        if settings.resume and not layout.parts.exists() and done.is_dir():
            os.rename(done, layout.parts)
    # The files a resumed job writes at the end (output, rejects) may be there already
    # from the run it resumes: it was killed while writing them.
    resuming = settings.resume and layout.parts.is_dir()
    if not layout.as_directory:
        if layout.output.exists() and not settings.overwrite and not resuming:
            raise OutputError(Errors.E023.format(path=layout.output, option="--overwrite"))
    else:
        out = layout.output
        if out.exists() and not out.is_dir():
            raise OutputError(Errors.E024.format(path=out))
        if out.is_dir() and any(out.iterdir()) and not PartStore(out, layout.fmt).exists():
            raise OutputError(Errors.E022.format(path=out))
        if (out / "_summary.json").exists() and not settings.overwrite:
            raise OutputError(Errors.E023.format(path=out, option="--overwrite"))
    if layout.rejects.is_dir():
        raise OutputError(Errors.E025.format(path=layout.rejects))
    inside = layout.as_directory and layout.rejects.parent == layout.output
    if layout.rejects.exists() and not settings.overwrite and not inside and not resuming:
        raise OutputError(Errors.E023.format(path=layout.rejects, option="--overwrite"))


def score_files(
    model: str | Path,
    input_spec: str | Path,
    output: str | Path,
    settings: ScoreSettings | None = None,
) -> ScoreResult:
    """Score every record of ``input_spec`` with the pipeline ``model`` into ``output``."""
    settings = settings or ScoreSettings()
    try:
        import pyarrow  # noqa: F401
    except ImportError as err:
        raise ConfigError(Errors.E363.format(error=err)) from None
    if (
        (settings.n_process is not None and settings.n_process < 1)
        or settings.batch_size < 1
        or settings.shard_size < 1
    ):
        raise ConfigError(
            Errors.E359.format(
                n_process=settings.n_process,
                batch_size=settings.batch_size,
                shard_size=settings.shard_size,
            )
        )
    if settings.engine not in ("local", "ray"):
        raise ConfigError(
            Errors.E013.format(what="engine", value=settings.engine, options="local, ray")
        )
    fields = Fields.parse(settings.text_key, settings.id_key)
    files, ignored = discover_inputs(input_spec)
    layout = _layout(Path(output), settings)
    _check_outputs(layout, settings)
    row_counts = _check_inputs(files, fields)
    store = PartStore(layout.parts, layout.fmt)
    _check_parts(layout, store, settings)
    session: RaySession | None = None
    if settings.engine == "ray":
        nlp, session = _load_while_starting_ray(model, settings)
    else:
        import spacy

        nlp = spacy.load(model)
    try:
        return _score(
            model, nlp, files, ignored, fields, layout, store, row_counts, settings, session
        )
    except BaseException as err:
        if session is not None:
            session.stop()
        full = _out_of_space(err)
        if full is not None:
            raise OutputError(
                Errors.E364.format(output=layout.output, parts=layout.parts, error=full)
            ) from err
        raise


def _out_of_space(err: BaseException) -> OSError | None:
    """The "no space left" error behind ``err``, if that is what it is. Ray hands a write
    task's error back wrapped (its cause, or only its text), so follow causes and look at
    the message too."""
    seen: set[int] = set()
    current: BaseException | None = err
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno in (errno.ENOSPC, errno.EDQUOT):
            return current
        cause = getattr(current, "cause", None)
        nxt = current.__cause__ or (cause if isinstance(cause, BaseException) else None)
        current = nxt or current.__context__
    if "No space left on device" in str(err):
        return OSError(errno.ENOSPC, "No space left on device")
    return None


def _check_parts(layout: _Layout, store: PartStore, settings: ScoreSettings) -> None:
    """Refuse the parts of an earlier run unless --resume / --overwrite says what to do."""
    if store.exists():
        if not settings.overwrite and not settings.resume:
            raise OutputError(Errors.E356.format(directory=layout.parts))
    elif layout.parts.exists() and not layout.as_directory:
        raise OutputError(Errors.E022.format(path=layout.parts))


def _load_while_starting_ray(model: str | Path, settings: ScoreSettings) -> tuple[Any, RaySession]:
    """Load the pipeline (the driver needs its labels and decisions) in a thread while Ray
    starts: each takes seconds, mostly waiting (Ray on its processes), so together they
    take about as long as the slower one."""
    from .ray_engine import start_ray

    loaded: dict[str, Any] = {}

    def load() -> None:
        try:
            import spacy

            loaded["nlp"] = spacy.load(model)
        except BaseException as err:  # re-raised in the caller's thread
            loaded["error"] = err

    thread = threading.Thread(target=load, name="textcat-kit-load-pipeline")
    thread.start()
    try:
        session = start_ray(settings.ray_address, settings.n_process)
    finally:
        thread.join()
    if "error" in loaded:
        session.stop()
        raise loaded["error"]
    return loaded["nlp"], session


def _score(
    model: str | Path,
    nlp: Any,
    files: list[InputFile],
    ignored: list[Path],
    fields: Fields,
    layout: _Layout,
    store: PartStore,
    row_counts: list[int | None],
    settings: ScoreSettings,
    session: RaySession | None,
) -> ScoreResult:
    spec = OutputSpec.from_pipeline(nlp, top_k=settings.top_k, with_id=fields.id_key is not None)
    warn_if_untuned(spec)
    shard_size = -(-settings.shard_size // settings.batch_size) * settings.batch_size
    job = {
        "version": JOB_VERSION,
        "engine": settings.engine,
        **_model_fingerprint(model),
        "inputs": [f.fingerprint() for f in files],
        "text_keys": list(fields.text_keys),
        "id_key": fields.id_key,
        "format": layout.fmt,
        "output": spec.to_json(),
        "shard_size": shard_size,
    }
    resumed = 0
    if store.exists():
        if settings.resume:
            store.check_job(job)
            resumed = len(store.parts())
        else:  # --overwrite (checked by _check_parts)
            shutil.rmtree(layout.parts)
            store.create(job)
    else:
        store.create(job)
    progress = Progress([f.size for f in files], enabled=settings.progress)
    if session is not None:
        from .ray_engine import run_ray

        shards = run_ray(
            model,
            spec,
            files,
            fields,
            store,
            session,
            batch_size=settings.batch_size,
            shard_size=shard_size,
            row_counts=row_counts,
            progress=settings.progress,
        )
    else:
        from .local import run_local

        run_local(
            nlp,
            spec,
            files,
            fields,
            store,
            n_process=settings.n_process or 1,
            batch_size=settings.batch_size,
            shard_size=shard_size,
            progress=progress,
            row_counts=row_counts,
        )
        shards = store.complete_shards()
    summary = store.summary(shards)
    if session is None:
        _finish(layout, store, shards, spec, summary, settings)
    else:
        # The local Ray's processes take a second or two to exit: assemble meanwhile.
        stopping = threading.Thread(target=session.stop, name="textcat-kit-ray-shutdown")
        stopping.start()
        try:
            _finish(layout, store, shards, spec, summary, settings)
        finally:
            stopping.join()
    return ScoreResult(layout.output, layout.rejects, summary, resumed, ignored)


def _finish(
    layout: _Layout,
    store: PartStore,
    shards: dict[int, Any],
    spec: OutputSpec,
    summary: Summary,
    settings: ScoreSettings,
) -> None:
    with atomic_file(layout.rejects, overwrite=True) as tmp:
        store.assemble_rejects(shards, tmp)
    if layout.as_directory:
        payload = {"summary": summary.to_json(), "output": spec.to_json(), "format": layout.fmt}
        (layout.output / "_summary.json").write_text(json.dumps(payload, indent=2) + "\n")
        (layout.output / MARKER).write_text(json.dumps({"written_by": "score"}) + "\n")
        return
    with atomic_file(layout.output, overwrite=settings.overwrite or settings.resume) as tmp:
        store.assemble(shards, tmp, spec.schema())
    done = _done_parts(layout.parts)
    shutil.rmtree(done, ignore_errors=True)
    os.rename(layout.parts, done)  # one step: the parts are either all there or gone
    shutil.rmtree(done)


def _done_parts(parts: Path) -> Path:
    """Where the parts of a finished output go for their removal (one rename)."""
    return parts.with_name(parts.name + ".done")


def print_result(result: ScoreResult) -> None:
    """What the CLI prints at the end (stdout): accounting and where things went."""
    print(result.summary.line())
    print(f"output: {result.output}")
    print(f"rejects: {result.rejects} ({result.summary.rejected} records)")
    if result.ignored_files:
        names = ", ".join(p.name for p in result.ignored_files[:5])
        more = len(result.ignored_files) - 5
        print(
            f"ignored {len(result.ignored_files)} file(s) with other suffixes: {names}"
            + (f" and {more} more" if more > 0 else ""),
            file=sys.stderr,
        )


__all__ = ["ScoreResult", "ScoreSettings", "print_result", "score_files"]

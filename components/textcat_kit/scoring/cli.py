"""``textcat-kit score``: a thin typer wrapper around :func:`textcat_kit.scoring.score_files`."""

from __future__ import annotations

from pathlib import Path

import typer


def score_command(
    model: str = typer.Argument(..., help="Pipeline directory or installed package name."),
    input_spec: str = typer.Argument(
        ...,
        metavar="INPUT",
        help="CSV / TSV / JSONL / Parquet file, a directory of them, or a quoted glob.",
    ),
    output: Path = typer.Argument(
        ...,
        help="Output .parquet or .jsonl file; any other name is a directory of parts (--format).",
    ),
    text_key: str = typer.Option(
        "text", help="Field holding the text; several (title,body) are joined with a line break."
    ),
    id_key: str | None = typer.Option(
        None, help="Field holding an id written to the output (default: row numbers only)."
    ),
    top_k: int | None = typer.Option(
        None, help="Write the K most probable labels instead of all probabilities."
    ),
    n_process: int | None = typer.Option(
        None,
        help="Local engine: worker processes (default 1). Ray: scoring actors (default: all "
        "CPUs of the local Ray, the cluster's CPUs - 1 with --ray-address).",
    ),
    batch_size: int = typer.Option(1000, help="Texts per nlp.pipe call (and per Ray block)."),
    shard_size: int = typer.Option(
        100_000, help="Records per shard: the unit that is committed and skipped by --resume."
    ),
    resume: bool = typer.Option(
        False, "--resume", help="Continue an interrupted run: complete shards are kept."
    ),
    engine: str = typer.Option("local", help="local | ray."),
    ray_address: str | None = typer.Option(
        None, help="Ray cluster to use (e.g. auto, ray://head:10001); default: a local Ray."
    ),
    rejects: Path | None = typer.Option(
        None,
        help="Where rejected records go (JSON lines with reason); default OUTPUT with "
        ".rejects.jsonl, or OUTPUT/_rejects.jsonl for a directory.",
    ),
    output_format: str | None = typer.Option(
        None, "--format", help="parquet | jsonl (default: from OUTPUT's suffix, else parquet)."
    ),
    overwrite: bool = typer.Option(
        False, "--overwrite", help="Replace an existing output / discard an interrupted run."
    ),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Progress on stderr."),
) -> None:
    """Score texts from files with a pipeline: decided labels, abstain flag and calibrated
    probabilities per record, streamed, resumable, on local cores or on Ray."""
    from ..errors import ConfigError, Errors
    from .job import ScoreSettings, print_result, score_files

    if engine not in ("local", "ray"):
        raise ConfigError(Errors.E013.format(what="engine", value=engine, options="local, ray"))
    if output_format not in (None, "parquet", "jsonl"):
        raise ConfigError(
            Errors.E013.format(what="format", value=output_format, options="parquet, jsonl")
        )
    settings = ScoreSettings(
        text_key=text_key,
        id_key=id_key,
        top_k=top_k,
        n_process=n_process,
        batch_size=batch_size,
        shard_size=shard_size,
        resume=resume,
        overwrite=overwrite,
        engine=engine,  # type: ignore[arg-type]
        ray_address=ray_address,
        rejects=rejects,
        output_format=output_format,  # type: ignore[arg-type]
        progress=progress,
    )
    result = score_files(model, input_spec, output, settings)
    print_result(result)

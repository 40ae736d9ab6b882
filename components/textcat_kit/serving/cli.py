"""``textcat-kit serve``: run the REST service with uvicorn."""

from __future__ import annotations

import os
from pathlib import Path

import typer

from ..errors import ConfigError, Errors


def serve_command(
    model: str = typer.Argument(..., help="Pipeline directory or installed package name."),
    host: str = typer.Option("127.0.0.1", help="Interface to listen on (0.0.0.0: all)."),
    port: int = typer.Option(8000, help="TCP port."),
    workers: int = typer.Option(
        1, help="Server processes; each loads the pipeline and batches on its own."
    ),
    max_batch_size: int = typer.Option(256, help="Most texts gathered into one nlp.pipe batch."),
    max_wait_ms: float = typer.Option(
        0.0,
        help="Extra time a batch smaller than --max-batch-size waits for more requests (ms); "
        "0: a batch is what arrived while the previous one ran.",
    ),
    batch_runner: str = typer.Option(
        "auto",
        help="Where batches run: loop (the event loop's thread; CPU-bound pipelines), thread "
        "(a worker thread; PyTorch / ONNX pipelines, which release the GIL), auto (chosen "
        "from the pipeline).",
    ),
    max_texts: int = typer.Option(256, help="Most texts accepted in one request."),
    max_text_length: int = typer.Option(20_000, help="Most characters accepted per text."),
    memory_zones: bool = typer.Option(
        True, "--memory-zones/--no-memory-zones", help="Free per-batch strings (spaCy >= 3.8)."
    ),
    monitor_window: int = typer.Option(2000, help="Predictions in the live monitor window."),
    monitor_min_docs: int = typer.Option(200, help="Predictions before the monitor reports."),
    warmup_docs: int = typer.Option(
        10_000, help="First texts run outside memory zones so the tokenizer cache fills once."
    ),
    warmup_texts: Path | None = typer.Option(
        None,
        exists=True,
        dir_okay=False,
        help="CSV/TSV/JSONL texts (e.g. the training file) tokenized once at startup.",
    ),
    log_level: str = typer.Option("info", help="uvicorn log level."),
) -> None:
    """Serve a pipeline over HTTP: /classify, /health, /metadata, /metrics, /monitor, /docs."""
    try:
        import fastapi  # noqa: F401
        import uvicorn
    except ImportError as err:
        raise ConfigError(
            Errors.E300.format(command="serve", missing=err.name or "fastapi", extra="serve")
        ) from None
    from .app import SETTINGS_ENV, ServeSettings, create_app, load_runtime

    if workers < 1:
        raise ConfigError(Errors.E309.format(option="--workers", rule=">= 1", value=workers))
    settings = ServeSettings(
        model=model,
        max_batch_size=max_batch_size,
        max_wait_ms=max_wait_ms,
        batch_runner=batch_runner,
        max_texts=max_texts,
        max_text_length=max_text_length,
        memory_zones=memory_zones,
        monitor_window=monitor_window,
        monitor_min_docs=monitor_min_docs,
        warmup_docs=warmup_docs,
        warmup_texts=str(warmup_texts) if warmup_texts else None,
    ).validate()
    if workers == 1:
        # Load here so that a bad MODEL is a coded error before the server starts.
        runtime = load_runtime(settings)
        uvicorn.run(create_app(settings, runtime), host=host, port=port, log_level=log_level)
        return
    os.environ[SETTINGS_ENV] = settings.to_json()
    uvicorn.run(
        "textcat_kit.serving.app:app_from_env",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level=log_level,
    )

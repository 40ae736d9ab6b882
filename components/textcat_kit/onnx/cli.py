"""``textcat-kit export-onnx MODEL_DIR OUT_DIR [--quantize int8]``.

A thin typer command around :func:`textcat_kit.onnx.export.export_onnx_pipeline`; the
package CLI mounts :func:`export_onnx` as ``export-onnx``. Errors of the package are
printed without a traceback and exit with 1. The heavy imports (torch, transformers,
spacy-transformers) happen only when the command runs.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from enum import Enum
from pathlib import Path
from typing import Any

import typer

from ..errors import TextcatKitError


class QuantizeOption(str, Enum):
    """Choices of ``--quantize`` (mirrors :class:`textcat_kit.onnx.export.Quantization`)."""

    int8 = "int8"


def export_onnx(
    model_dir: Path = typer.Argument(
        ..., exists=True, file_okay=False, help="Trained transformer + textcat pipeline."
    ),
    out_dir: Path = typer.Argument(
        ..., file_okay=False, help="New (or empty) directory for the ONNX pipeline."
    ),
    quantize: QuantizeOption | None = typer.Option(
        None, "--quantize", help="Quantise the encoder's weights (int8: dynamic quantisation)."
    ),
    optimize: bool = typer.Option(
        True,
        "--optimize/--no-optimize",
        help="Fuse attention / layer norm / GELU with ONNX Runtime's transformer optimizer.",
    ),
) -> None:
    """Export a trained spacy-transformers text classifier to a torch-free ONNX Runtime pipeline.

    The transformer + textcat pair is replaced by one `textcat_kit_onnx_textcat` component
    (same name, same position); all other components are kept. The exported pipeline needs
    only spaCy, onnxruntime, tokenizers and spacy-textcat-kit.
    """
    from .export import Quantization, export_onnx_pipeline

    try:
        report = export_onnx_pipeline(
            model_dir,
            out_dir,
            quantize=Quantization(quantize.value) if quantize is not None else None,
            optimize=optimize,
        )
    except TextcatKitError as error:
        typer.echo(str(error), err=True)
        raise typer.Exit(code=1) from None
    typer.echo(report.summary())


app = typer.Typer(
    name="export-onnx",
    help="Export a transformer text classifier to ONNX Runtime.",
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.command("export-onnx")(export_onnx)


@app.callback()
def _root() -> None:
    """Export a transformer text classifier to ONNX Runtime."""


def main(argv: list[str] | None = None) -> None:
    """Run on its own: ``python -m textcat_kit.onnx.cli export-onnx MODEL_DIR OUT_DIR``."""
    command: Callable[..., Any] = typer.main.get_command(app)
    command(args=argv if argv is not None else sys.argv[1:], prog_name="textcat-kit")


if __name__ == "__main__":
    main()

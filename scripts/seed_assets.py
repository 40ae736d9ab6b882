"""Fill assets/ from a local mirror of the public files, checked against project.yml.

spaCy project assets are skipped when the destination already exists with the declared
md5 checksum, so copying the mirror byte for byte is equivalent to downloading. Without
a mirror the script falls back to `spacy project assets` (network).
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

import srsly
import typer


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def main(
    shared: Path = typer.Option(Path("../shared/data"), help="Mirror: <shared>/<dataset>/<file>."),
    project_dir: Path = typer.Option(Path("."), help="The project directory (holds project.yml)."),
) -> None:
    assets = srsly.read_yaml(project_dir / "project.yml")["assets"]
    if not shared.is_dir():
        typer.echo(f"No mirror at {shared}: downloading with `spacy project assets`.")
        subprocess.run(
            [sys.executable, "-m", "spacy", "project", "assets", str(project_dir)], check=True
        )
        return
    for asset in assets:
        dest = project_dir / asset["dest"]
        source = shared / Path(asset["dest"]).relative_to("assets")
        if not source.exists():
            raise SystemExit(
                f"{source} is missing from the mirror; run `spacy project assets` instead."
            )
        checksum = asset.get("checksum")
        if checksum and md5(source) != checksum:
            raise SystemExit(
                f"{source}: md5 {md5(source)} differs from project.yml's {checksum} for "
                f"{asset['url']}; the mirror is not byte-identical to the public file."
            )
        if dest.exists() and (checksum is None or md5(dest) == checksum):
            typer.echo(f"ok      {dest}")
            continue
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, dest)
        typer.echo(f"copied  {source} -> {dest}")


if __name__ == "__main__":
    typer.run(main)

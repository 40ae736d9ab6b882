"""``textcat-kit distil``: train a bow student on a tuned teacher's calibrated probabilities."""

from __future__ import annotations

from pathlib import Path

import typer


def distil_command(
    teacher: Path = typer.Argument(..., help="Tuned teacher pipeline (textcat-kit tune output)."),
    student_config: Path = typer.Argument(
        ..., help="Student config, e.g. configs/textcat_bow.cfg."
    ),
    train: Path = typer.Argument(..., help="Training corpus (.spacy): texts and gold labels."),
    dev: Path = typer.Argument(..., help="Dev corpus (.spacy): picks the best epoch."),
    output_dir: Path = typer.Option(..., "--output-dir", help="Writes model-best + distil.json."),
    unlabelled: Path | None = typer.Option(
        None, help="Extra texts without labels: JSONL with a 'text' key, or one text per line."
    ),
    hard_weight: float = typer.Option(
        0.5, help="Share of the gold label in the targets of labelled texts (0: teacher only)."
    ),
    max_epochs: int = typer.Option(40, help="Most epochs."),
    patience: int = typer.Option(6, help="Stop after this many epochs without a better dev F."),
    seed: int = typer.Option(0, help="Shuffling seed."),
    overwrite: bool = typer.Option(False, help="Replace an earlier distil output directory."),
) -> None:
    """Distil a teacher (embedding / transformer pipeline) into a fast student (bow)."""
    from ..distil import DistilSettings, distil

    settings = DistilSettings(
        hard_weight=hard_weight, max_epochs=max_epochs, patience=patience, seed=seed
    )
    record = distil(
        teacher,
        student_config,
        train,
        dev,
        output_dir,
        unlabelled_path=unlabelled,
        settings=settings,
        overwrite=overwrite,
    )
    typer.echo(
        f"student: {output_dir / 'model-best'} (epoch {record['best_epoch']}, dev macro-F "
        f"{record['best_dev_macro_f']:.3f}; {record['n_labelled']} labelled + "
        f"{record['n_unlabelled']} unlabelled texts; teacher scoring "
        f"{record['teacher_seconds']:.0f} s, total {record['seconds']:.0f} s)"
    )

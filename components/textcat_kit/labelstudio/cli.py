"""``textcat-kit labelstudio import | pull | push``.

A typer app the package CLI mounts under ``labelstudio``. Commands are thin: they build a
:class:`~.config.LabelingScheme` from the options, call the library functions and print
the accounting. Errors of the package are printed without a traceback and exit with 1.
The API key is only ever read from the environment variable named by ``--api-key-env``.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, cast

import srsly
import typer

from ..errors import ConfigError, Errors, TextcatKitError
from .aggregate import check_tie_policy
from .client import (
    DEFAULT_API_KEY_ENV,
    LabelStudioProject,
    pull,
    push,
    read_unlabelled_jsonl,
)
from .config import LabelingScheme, load_labeling_scheme, scheme_from_overrides
from .exports import EXPORT_FORMATS, ExportFormat
from .importer import ImportResult, import_export, write_import

app = typer.Typer(
    name="labelstudio",
    help="Label Studio in and out: import exports, pull annotations, push predictions.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

TIES_HELP = (
    "When annotators tie: 'drop' the task, keep the 'first' annotation (lowest id), or "
    "keep tied labels as 'soft' values (share of annotators)."
)
API_KEY_ENV_HELP = (
    "NAME of the environment variable holding the API key (the key itself is never an option)."
)
DEFAULT_URL = "http://localhost:8080"


@app.command("import")
def import_command(
    export: Path = typer.Argument(..., exists=True, dir_okay=False, help="Export file"),
    output: Path = typer.Argument(..., dir_okay=False, help=".spacy file to write"),
    config: Path | None = typer.Option(
        None,
        "--config",
        "-c",
        exists=True,
        dir_okay=False,
        help="Labeling config: XML, or an official template's config.yml",
    ),
    choices_name: str | None = typer.Option(
        None, "--choices-name", help="<Choices name=...> to import (when there are several)"
    ),
    text_field: str | None = typer.Option(None, "--text-field", help="Task field with the text"),
    labels: Path | None = typer.Option(
        None,
        "--labels",
        exists=True,
        dir_okay=False,
        help="Label set override: one label per line or a JSON list",
    ),
    exclusive: bool | None = typer.Option(
        None, "--exclusive/--multilabel", help="Override the config's choice= mode"
    ),
    ties: str = typer.Option("drop", "--ties", help=TIES_HELP),
    export_format: str | None = typer.Option(
        None, "--format", help=f"One of {', '.join(EXPORT_FORMATS)} (default: from the file)"
    ),
    unlabelled: Path | None = typer.Option(
        None, "--unlabelled", help="JSONL of tasks without annotations (input of push)"
    ),
    summary: Path | None = typer.Option(None, "--summary", help="Accounting as JSON"),
    dev_output: Path | None = typer.Option(
        None, "--dev-output", dir_okay=False, help="Also split off a dev .spacy file"
    ),
    dev_fraction: float = typer.Option(0.0, "--dev-fraction", help="Share of docs for dev"),
    test_output: Path | None = typer.Option(
        None, "--test-output", dir_okay=False, help="Also split off a test .spacy file"
    ),
    test_fraction: float = typer.Option(0.0, "--test-fraction", help="Share of docs for test"),
    seed: int = typer.Option(0, "--seed", help="Seed of the stratified splits"),
    lang: str = typer.Option("en", "--lang", help="spaCy language of the tokenizer"),
    overwrite: bool = typer.Option(
        False, "--overwrite", help="Replace existing output files (written atomically)"
    ),
) -> None:
    """Convert a Label Studio export (JSON, JSON_MIN, CSV, TSV) into a .spacy corpus."""
    with _errors_as_messages():
        scheme = _scheme(config, choices_name, text_field, labels, exclusive)
        fmt = _export_format(export_format)
        result = import_export(export, scheme, ties=check_tie_policy(ties), export_format=fmt)
        _write_and_report(
            result,
            output,
            dev_output=dev_output,
            dev_fraction=dev_fraction,
            test_output=test_output,
            test_fraction=test_fraction,
            seed=seed,
            unlabelled_output=unlabelled,
            summary_output=summary,
            lang=lang,
            overwrite=overwrite,
        )


@app.command("pull")
def pull_command(
    output: Path = typer.Argument(..., dir_okay=False, help=".spacy file to write"),
    url: str = typer.Option(DEFAULT_URL, "--url", help="Label Studio base URL"),
    project_id: int = typer.Option(..., "--project-id", help="Project id"),
    api_key_env: str = typer.Option(DEFAULT_API_KEY_ENV, "--api-key-env", help=API_KEY_ENV_HELP),
    choices_name: str | None = typer.Option(None, "--choices-name"),
    text_field: str | None = typer.Option(None, "--text-field"),
    labels: Path | None = typer.Option(None, "--labels", exists=True, dir_okay=False),
    exclusive: bool | None = typer.Option(None, "--exclusive/--multilabel"),
    ties: str = typer.Option("drop", "--ties", help=TIES_HELP),
    unlabelled: Path | None = typer.Option(None, "--unlabelled"),
    summary: Path | None = typer.Option(None, "--summary"),
    raw_export: Path | None = typer.Option(
        None, "--raw-export", help="Also keep the downloaded JSON export (and its config)"
    ),
    dev_output: Path | None = typer.Option(
        None, "--dev-output", dir_okay=False, help="Also split off a dev .spacy file"
    ),
    dev_fraction: float = typer.Option(0.0, "--dev-fraction", help="Share of docs for dev"),
    test_output: Path | None = typer.Option(
        None, "--test-output", dir_okay=False, help="Also split off a test .spacy file"
    ),
    test_fraction: float = typer.Option(0.0, "--test-fraction", help="Share of docs for test"),
    seed: int = typer.Option(0, "--seed", help="Seed of the stratified splits"),
    lang: str = typer.Option("en", "--lang"),
    overwrite: bool = typer.Option(
        False, "--overwrite", help="Replace existing output files (written atomically)"
    ),
) -> None:
    """Download a project's annotations from a live server into a .spacy corpus."""
    with _errors_as_messages():
        project = LabelStudioProject.connect(url, project_id, api_key_env=api_key_env)
        result = pull(
            project,
            ties=check_tie_policy(ties),
            choices_name=choices_name,
            labels=_read_labels(labels) if labels else None,
            exclusive=exclusive,
            text_field=text_field,
            raw_export_output=raw_export,
            overwrite=overwrite,
        )
        _write_and_report(
            result,
            output,
            dev_output=dev_output,
            dev_fraction=dev_fraction,
            test_output=test_output,
            test_fraction=test_fraction,
            seed=seed,
            unlabelled_output=unlabelled,
            summary_output=summary,
            lang=lang,
            overwrite=overwrite,
        )


@app.command("push")
def push_command(
    model: Path = typer.Argument(..., exists=True, file_okay=False, help="Trained pipeline"),
    url: str = typer.Option(DEFAULT_URL, "--url", help="Label Studio base URL"),
    project_id: int = typer.Option(..., "--project-id", help="Project id"),
    api_key_env: str = typer.Option(DEFAULT_API_KEY_ENV, "--api-key-env", help=API_KEY_ENV_HELP),
    model_version: str | None = typer.Option(
        None, "--model-version", help="Tag of the predictions (default: pipeline name-version)"
    ),
    tasks: Path | None = typer.Option(
        None,
        "--tasks",
        exists=True,
        dir_okay=False,
        help="Unlabelled-tasks JSONL from import/pull (default: ask the server)",
    ),
    choices_name: str | None = typer.Option(None, "--choices-name"),
    threshold: float = typer.Option(0.5, "--threshold", help="Multi-label decision threshold"),
    limit: int | None = typer.Option(None, "--limit", help="Push only the N least confident"),
    dry_run: bool = typer.Option(False, "--dry-run", help="Predict and report, upload nothing"),
    summary: Path | None = typer.Option(None, "--summary", help="What was pushed, as JSON"),
    existing: str = typer.Option(
        "update",
        "--existing",
        help="A task that already has a prediction of this --model-version: 'update' it "
        "(unchanged ones are left alone) or 'skip' it. Pushing twice never duplicates.",
    ),
) -> None:
    """Upload a pipeline's predictions for unlabelled tasks as pre-annotations."""
    import spacy

    with _errors_as_messages():
        nlp = spacy.load(model)
        version = model_version or f"{nlp.meta.get('name', 'pipeline')}-{nlp.meta.get('version')}"
        project = LabelStudioProject.connect(url, project_id, api_key_env=api_key_env)
        result, _ = push(
            project,
            nlp,
            model_version=version,
            tasks=read_unlabelled_jsonl(tasks) if tasks else None,
            choices_name=choices_name,
            threshold=threshold,
            limit=limit,
            dry_run=dry_run,
            existing=existing,
        )
        if summary is not None:
            summary.parent.mkdir(parents=True, exist_ok=True)
            srsly.write_json(summary, result.to_dict())
        typer.echo(result.render())


def _write_and_report(
    result: ImportResult,
    output: Path,
    *,
    dev_output: Path | None,
    test_output: Path | None,
    **options: Any,
) -> None:
    """Write the imported corpus (and splits), print the accounting and what went where."""
    written = write_import(
        result, output, dev_output=dev_output, test_output=test_output, **options
    )
    typer.echo(result.summary.render())
    paths = {"train": output, "dev": dev_output, "test": test_output}
    for part, n_docs in written.items():
        typer.echo(f"Wrote {n_docs} docs to {paths[part]}")


def _scheme(
    config: Path | None,
    choices_name: str | None,
    text_field: str | None,
    labels_path: Path | None,
    exclusive: bool | None,
) -> LabelingScheme:
    labels = _read_labels(labels_path) if labels_path else None
    if config is not None:
        return load_labeling_scheme(
            config,
            choices_name=choices_name,
            labels=labels,
            exclusive=exclusive,
            text_field=text_field,
        )
    given: dict[str, Any] = {
        "--choices-name": choices_name,
        "--text-field": text_field,
        "--labels": labels,
        "--exclusive/--multilabel": exclusive,
    }
    missing = [name for name, value in given.items() if value is None]
    if missing:
        raise ConfigError(Errors.E132.format(missing=", ".join(missing)))
    return scheme_from_overrides(
        choices_name=cast(str, choices_name),
        text_field=cast(str, text_field),
        labels=cast(list[str], labels),
        exclusive=cast(bool, exclusive),
    )


def _read_labels(path: Path) -> list[str]:
    """A JSON list of strings, or one label per line (blank lines ignored)."""
    text = path.read_text(encoding="utf-8")
    if text.lstrip().startswith("["):
        labels = [str(label) for label in srsly.json_loads(text)]
    else:
        labels = [line.rstrip("\r") for line in text.split("\n") if line.strip()]
    if not labels:
        raise ConfigError(Errors.E133.format(path=path))
    return labels


def _export_format(value: str | None) -> ExportFormat | None:
    if value is None:
        return None
    normalised = value.upper().replace("-", "_")
    if normalised not in EXPORT_FORMATS:
        raise ConfigError(
            f"[E117] unsupported export format '{value}'. Use one of {', '.join(EXPORT_FORMATS)}."
        )
    return cast(ExportFormat, normalised)


@contextmanager
def _errors_as_messages() -> Iterator[None]:
    try:
        yield
    except TextcatKitError as err:
        typer.echo(str(err), err=True)
        raise typer.Exit(code=1) from None


def _mount_label_quality_commands() -> None:
    """``push-issues`` and ``suggest`` live in :mod:`.suggest` (labels agent, issue 19)."""
    from .suggest import push_issues_command, suggest_command

    app.command("push-issues")(push_issues_command)
    app.command("suggest")(suggest_command)


_mount_label_quality_commands()


def main(argv: list[str] | None = None) -> None:
    """Run the app on its own (``python -m textcat_kit.labelstudio.cli``)."""
    command: Callable[..., Any] = typer.main.get_command(app)
    command(args=argv if argv is not None else sys.argv[1:], prog_name="labelstudio")


__all__ = ["app", "main"]


if __name__ == "__main__":
    main()

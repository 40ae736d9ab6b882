"""The ``textcat-kit`` command line: thin typer wrappers around the package's functions."""

from __future__ import annotations

import os
import re
import sys
import traceback
import warnings
from pathlib import Path
from typing import Any

import typer

app = typer.Typer(
    name="textcat-kit",
    help="Text classification with spaCy you can ship: data, tune, evaluate, export.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _root() -> None:
    """Text classification with spaCy you can ship: data, tune, evaluate, export.

    Errors print a coded message ([E...]) saying what, where and how to fix it; add --debug
    (anywhere) or set TEXTCAT_KIT_DEBUG=1 to see the traceback.
    """


@app.command("corpus")
def corpus_command(
    train: Path = typer.Option(
        ..., exists=True, dir_okay=False, help="Training file (CSV/TSV/JSONL)."
    ),
    output_dir: Path = typer.Option(
        ...,
        help="Directory for train/dev/test.spacy, labels.json, data.json and the data report "
        "(written atomically; an existing one only if textcat-kit wrote it, with --overwrite).",
    ),
    dev: Path | None = typer.Option(
        None, exists=True, dir_okay=False, help="Dev file; if absent a stratified carve of train."
    ),
    test: Path | None = typer.Option(
        None,
        exists=True,
        dir_okay=False,
        help="Test file, used only for the final evaluation; if absent a stratified carve of "
        "train (--test-fraction).",
    ),
    text_key: str = typer.Option(
        "text",
        help="Column / key holding the text; several separated by commas (title,body) are "
        "joined with a line break.",
    ),
    label_key: str | None = typer.Option(
        None, help="Column / key holding the label(s); default: label | labels | cats."
    ),
    multilabel: str = typer.Option(
        "auto",
        help="auto (detect from the data: any record with no or several labels makes it "
        "multi-label; the choice is printed and kept in data.json) | true | false.",
    ),
    label_sep: str = typer.Option(
        ",", help="Separator of several labels in one cell (JSON lists are detected too)."
    ),
    test_fraction: float = typer.Option(
        0.2, help="Share of train carved out as test when there is no --test file."
    ),
    dev_fraction: float = typer.Option(
        0.1, help="Share of train carved out as dev when there is no --dev file."
    ),
    seed: int = typer.Option(0, help="Seed of the carved splits."),
    name: str = typer.Option("", help="Dataset name recorded in data.json."),
    labels: Path | None = typer.Option(
        None, exists=True, dir_okay=False, help="Label set: JSON list or one per line."
    ),
    label_ids: str = typer.Option(
        "none",
        help="none: labels are names | 0 or 1: labels are 0- or 1-based ids into --labels "
        "(out-of-range ids are errors).",
    ),
    labels_are_indices: bool = typer.Option(
        False, "--labels-are-indices", hidden=True, help="Deprecated: same as --label-ids 0."
    ),
    lenient: bool = typer.Option(
        False, "--lenient", help="Skip and count malformed records instead of stopping."
    ),
    overwrite: bool = typer.Option(
        False, "--overwrite", help="Replace an earlier output of this command (only that)."
    ),
    report_dir: Path | None = typer.Option(
        None, help="Also write data_report.{json,md} here (always in --output-dir)."
    ),
    tsv_quoting: str = typer.Option(
        "none",
        help="none: a TSV line is one record, quotes are text | csv: TSV written with CSV "
        "quoting (e.g. pandas).",
    ),
    file_format: str = typer.Option(
        "auto", "--format", help="auto (from the suffix) | csv | tsv | jsonl."
    ),
    delimiter: str | None = typer.Option(
        None, help="Field separator for CSV/TSV when not ',' / tab (e.g. ';', or '\\t')."
    ),
    columns: str | None = typer.Option(
        None, help="Comma-separated column names for header-less CSV/TSV."
    ),
    lang: str = typer.Option("en", help="spaCy language code for tokenisation."),
    drop_leaked: bool = typer.Option(
        False,
        "--drop-leaked",
        help="Drop dev/test texts that duplicate an earlier split (normalised).",
    ),
    min_count: int = typer.Option(20, help="Report labels with fewer examples than this."),
) -> None:
    """Convert labelled CSV/TSV/JSONL into spaCy corpora with labels.json, data.json and a
    data report; every record is written, or skipped with a reason and counted."""
    from .data.corpus_builder import accounting_line, build_corpus, corpus_settings

    settings = corpus_settings(
        text_key=text_key,
        label_key=label_key,
        columns=columns,
        multilabel=multilabel,
        label_sep=label_sep,
        label_ids=label_ids,
        labels_are_indices=labels_are_indices,
        lenient=lenient,
        tsv_quoting=tsv_quoting,
        file_format=file_format,
        delimiter=delimiter,
    )
    if labels_are_indices:
        typer.echo("--labels-are-indices is deprecated; use --label-ids 0.", err=True)
    summary = build_corpus(
        train=train,
        dev=dev,
        test=test,
        output_dir=output_dir,
        settings=settings,
        labels_file=labels,
        dev_fraction=dev_fraction,
        test_fraction=test_fraction,
        seed=seed,
        lang=lang,
        drop_leaked=drop_leaked,
        min_count=min_count,
        report_dir=report_dir,
        dataset_name=name,
        overwrite=overwrite,
    )
    for message in summary.messages:
        typer.echo(message)
    for source, acc in summary.accounting.items():
        typer.echo(accounting_line(source, acc))
    typer.echo(
        f"labels: {len(summary.labels)} ({'multi-label' if summary.multilabel else 'exclusive'})"
        f"; docs: {summary.n_docs}"
    )
    for pair, found in summary.report["leakage"].items():
        typer.echo(f"leakage {pair}: {found['n_exact']} exact, {found['n_normalised']} normalised")
    typer.echo(f"wrote {output_dir} (train/dev/test.spacy, labels.json, data.json, data_report.*)")


@app.command("evaluate")
def evaluate_command(
    model: str = typer.Argument(..., help="Pipeline directory or installed package name."),
    data: Path = typer.Argument(
        ..., exists=True, dir_okay=False, help="Held-out .spacy file (the test split)."
    ),
    output_dir: Path = typer.Option(..., help="Where metrics.json and report.md go."),
    overwrite: bool = typer.Option(
        False, "--overwrite", help="Replace an earlier output of this command (never other files)."
    ),
) -> None:
    """Evaluate a pipeline on a held-out split: per-label P/R/F, AUC, calibration."""
    from .evaluation import evaluate_to_dir

    result = evaluate_to_dir(model, data, output_dir, overwrite=overwrite)

    def fmt(value: Any) -> str:
        return "n/a" if value is None else f"{value:.4f}"

    typer.echo(f"{data}: {result['n_docs']} docs, {result['task']}")
    if "argmax" in result:
        typer.echo(
            f"  argmax (every text gets its top label): accuracy {fmt(result['accuracy'])}, "
            f"macro-F1 {fmt(result['argmax']['macro_f'])}"
        )
    if result["decision_rule"] != "argmax":
        typer.echo(
            f"  decided ({result['decision_rule']}; abstentions count as misses): macro-F1 "
            f"{fmt(result['macro_f'])}, micro-F1 {fmt(result['micro_f'])}, coverage "
            f"{fmt(result['coverage'])}"
        )
    typer.echo(f"  macro ROC AUC {fmt(result['macro_auc'])}")
    typer.echo(f"  calibration: { {k: v for k, v in result['calibration'].items()} }")
    if result.get("labels_absent_from_data"):
        typer.echo(
            f"  labels with no example (left out of macro averages): "
            f"{', '.join(result['labels_absent_from_data'])}"
        )
    typer.echo(f"wrote {output_dir / 'metrics.json'} and {output_dir / 'report.md'}")
    _print_diagnosis(result.get("diagnosis"))


@app.command("tune")
def tune_command(
    model: str = typer.Argument(..., help="Trained pipeline (e.g. training/x/model-best)."),
    dev: Path = typer.Argument(
        ...,
        exists=True,
        dir_okay=False,
        help="Held-out .spacy file (dev split; never the test split).",
    ),
    output_dir: Path = typer.Option(..., help="Where the tuned pipeline is written (atomically)."),
    calibration: str = typer.Option("auto", help="auto | temperature | platt | isotonic."),
    objective: str = typer.Option(
        "f1", help="f1 | fbeta | recall_at_precision | precision_at_recall."
    ),
    beta: float = typer.Option(1.0, help="beta of fbeta."),
    target: float | None = typer.Option(
        None, help="Precision / recall floor of the constrained objectives."
    ),
    abstain_precision: float | None = typer.Option(
        None, help="Exclusive: abstain below the confidence that reaches this precision on dev."
    ),
    ensure_one_label: bool = typer.Option(
        False, "--ensure-one-label", help="Multi-label: always decide at least the top label."
    ),
    n_folds: int = typer.Option(5, help="Folds for cross-fitting calibrator and thresholds."),
    seed: int = typer.Option(0),
    overwrite: bool = typer.Option(
        False, "--overwrite", help="Replace an earlier output of this command (never other files)."
    ),
) -> None:
    """Fit a calibrator and per-label thresholds on dev and save a pipeline that applies them."""
    from .tuning import tune_pipeline

    summary = tune_pipeline(
        model,
        dev,
        output_dir,
        calibration=calibration,
        n_folds=n_folds,
        seed=seed,
        overwrite=overwrite,
        decision_config={
            "objective": objective,
            "beta": beta,
            "target": target,
            "abstain_precision": abstain_precision,
            "ensure_one_label": ensure_one_label,
            "n_folds": n_folds,
        },
    )
    typer.echo(
        f"calibration: {summary['calibration_method']}; dev (cross-fitted) "
        f"{ {k: round(v, 4) for k, v in summary['dev_calibration_cross_fitted'].items()} }"
    )
    if summary["abstain"]:
        typer.echo(f"abstain: {summary['abstain']}")
    typer.echo(f"wrote {output_dir}")
    _print_diagnosis(summary.get("diagnosis"))


def _print_diagnosis(diagnosis: dict[str, Any] | None) -> None:
    """Print the findings of :func:`textcat_kit.diagnostics.diagnose` as the last lines."""
    if not diagnosis:
        return
    from .errors import Warnings

    for finding in diagnosis.get("findings", []):
        typer.echo(f"warning: {finding['message']}", err=True)
    if diagnosis.get("degenerate"):
        reasons = "; ".join(f["code"] for f in diagnosis["findings"] if f.get("degenerate"))
        line = "!" * 88
        typer.echo(f"{line}\n{Warnings.W008.format(reasons=reasons)}\n{line}", err=True)


@app.command("package")
def package_command(
    model_dir: Path = typer.Argument(
        ..., exists=True, file_okay=False, help="Pipeline directory to package."
    ),
    output_dir: Path = typer.Argument(..., help="Where the wheels go (e.g. packages/)."),
    name: str = typer.Option(..., help="Package name without the language prefix."),
    version: str = typer.Option("0.1.0", help="Pipeline version."),
    metrics: Path | None = typer.Option(
        None, exists=True, dir_okay=False, help="metrics.json of the test evaluation."
    ),
    data: Path | None = typer.Option(
        None, exists=True, dir_okay=False, help="data.json written by `corpus`."
    ),
    kit_source: Path | None = typer.Option(
        None, help="Source tree of spacy-textcat-kit (default: this one)."
    ),
    overwrite: bool = typer.Option(
        False, "--overwrite", help="Replace an earlier output of this command (never other files)."
    ),
) -> None:
    """Build the pipeline wheel (meta: labels, test metrics, data) and a kit wheel beside it."""
    from .packaging import package_pipeline

    pipeline_wheel, kit_wheel = package_pipeline(
        model_dir,
        output_dir,
        name=name,
        version=version,
        metrics_path=metrics,
        data_path=data,
        kit_source=kit_source,
        overwrite=overwrite,
    )
    typer.echo(f"pipeline wheel: {pipeline_wheel}")
    typer.echo(f"kit wheel:      {kit_wheel}")
    typer.echo(f"install: pip install --find-links {output_dir} {pipeline_wheel}")


def _mount_subcommands() -> None:
    from .labelstudio.cli import app as labelstudio_app
    from .onnx.cli import export_onnx

    app.add_typer(labelstudio_app, name="labelstudio")
    app.command("export-onnx")(export_onnx)
    from .monitoring.cli import monitor_command, monitor_reference_command
    from .serving.cli import serve_command

    app.command("serve")(serve_command)
    app.command("monitor")(monitor_command)
    app.command("monitor-reference")(monitor_reference_command)
    from .scoring.cli import score_command

    app.command("score")(score_command)
    from .training import train_command

    app.command("train")(train_command)
    from .embeddings.cli import distil_command

    app.command("distil")(distil_command)
    from .cv import cv_command
    from .explain import explain_command

    app.command("cv")(cv_command)
    app.command("explain")(explain_command)


_mount_subcommands()


class _WarningSummary:
    """Show the first few warnings of each code live; at exit count the repeats once.

    ``tune`` on a set with many rare labels raises one [W001] per label; showing 58 of them
    hides everything else, so each code is shown :attr:`shown_per_code` times and summarised.
    """

    shown_per_code = 3

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}
        self.first: dict[str, str] = {}

    @staticmethod
    def _code(text: str) -> str:
        match = re.match(r"\[(W\d{3})\]", text)
        return match.group(1) if match else text

    def show(
        self,
        message: Warning | str,
        category: type[Warning],
        filename: str,
        lineno: int,
        file: Any = None,
        line: str | None = None,
    ) -> None:
        text = str(message)
        code = self._code(text)
        self.counts[code] = self.counts.get(code, 0) + 1
        self.first.setdefault(code, text)
        if self.counts[code] <= self.shown_per_code:
            print(f"{category.__name__}: {text}", file=sys.stderr)

    def summary(self) -> list[str]:
        from .errors import Warnings

        return [
            Warnings.W009.format(message=self.first[code], count=count)
            for code, count in self.counts.items()
            if count > self.shown_per_code
        ]


def main(argv: list[str] | None = None) -> None:
    """Run the CLI. Known errors print their coded message without a traceback.

    ``--debug`` (anywhere on the command line) or ``TEXTCAT_KIT_DEBUG=1`` shows the traceback.
    """
    from .errors import TextcatKitError

    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args or os.environ.get("TEXTCAT_KIT_DEBUG", "") not in ("", "0")
    args = [a for a in args if a != "--debug"]
    summary = _WarningSummary()
    code: int | str | None = 0
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.showwarning = summary.show
        try:
            app(args=args, prog_name="textcat-kit")
        except SystemExit as exit_:
            code = exit_.code
        except (TextcatKitError, OSError) as error:
            if debug:
                traceback.print_exc()
            print(f"error: {error}", file=sys.stderr)
            if not debug:
                print("(run with --debug to see the traceback)", file=sys.stderr)
            code = 1
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            code = 130
    for line in summary.summary():
        print(line, file=sys.stderr)
    if code:
        raise SystemExit(code)


if __name__ == "__main__":
    main()

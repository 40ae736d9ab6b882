"""``textcat-kit monitor`` and ``textcat-kit monitor-reference``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import typer

from ..errors import ConfigError, DataError, Errors


def read_texts(
    path: Path, *, text_key: str = "text", label_key: str | None = None
) -> tuple[list[str], list[list[str]] | None]:
    """Texts (and, with ``label_key``, label lists) of a CSV/TSV/JSONL file; strict.

    A row without a text is an error naming the file and line (nothing is dropped). A
    label cell may hold one label or, in JSONL, a list of labels.
    """
    import csv
    import io
    import json

    suffix = path.suffix.lower()
    if suffix not in (".csv", ".tsv", ".jsonl", ".json", ".ndjson"):
        raise DataError(Errors.E006.format(path=path, suffix=suffix))
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as err:
        raise DataError(Errors.E004.format(path=path, line="?", detail=str(err))) from None
    rows: list[tuple[int, Any]] = []
    if suffix in (".jsonl", ".json", ".ndjson"):
        for line_no, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                rows.append((line_no, json.loads(line)))
            except json.JSONDecodeError as err:
                raise DataError(
                    Errors.E005.format(path=path, line=line_no, detail=f"invalid JSON: {err.msg}")
                ) from None
    else:
        reader = csv.DictReader(
            io.StringIO(text, newline=""), delimiter="," if suffix == ".csv" else "\t"
        )
        for row in reader:
            rows.append((reader.line_num, row))
    texts: list[str] = []
    labels: list[list[str]] | None = [] if label_key else None
    for line_no, row in rows:
        if not isinstance(row, dict) or not isinstance(row.get(text_key), str):
            available = ", ".join(map(str, row)) if isinstance(row, dict) else type(row).__name__
            raise DataError(
                Errors.E314.format(path=path, line=line_no, text_key=text_key, available=available)
            )
        texts.append(row[text_key])
        if labels is not None:
            value = row.get(label_key)
            if isinstance(value, list):
                labels.append([str(v) for v in value])
            elif value is None or str(value).strip() == "":
                labels.append([])
            else:
                labels.append([str(value).strip()])
    return texts, labels


def monitor_command(
    model: str = typer.Argument(..., help="Pipeline directory or installed package name."),
    current: Path = typer.Argument(
        ..., exists=True, dir_okay=False, help="Current texts (CSV/TSV/JSONL)."
    ),
    output_dir: Path = typer.Option(..., help="Where monitor.json, monitor.md and plots go."),
    text_key: str = typer.Option("text", help="Column / key holding the text."),
    label_key: str | None = typer.Option(
        None, help="Column / key with labels, if the current data have any (adds realised scores)."
    ),
    reference: Path | None = typer.Option(
        None,
        exists=True,
        file_okay=False,
        help="Directory with monitor_reference.json (default: the pipeline's).",
    ),
    alpha: float = typer.Option(0.001, help="False-alarm level of each test."),
    max_drop: float = typer.Option(0.03, help="Tolerated drop of expected accuracy / macro-F1."),
    plots: bool = typer.Option(True, "--plots/--no-plots", help="Write PNG plots (matplotlib)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an earlier report."),
    fail_on_alert: bool = typer.Option(
        False, "--fail-on-alert", help="Exit with status 3 when a figure leaves its corridor."
    ),
) -> None:
    """Drift and expected performance of CURRENT texts against the pipeline's reference."""
    from ..serving.runtime import ClassifierRuntime
    from .monitor import MonitorSettings, compare
    from .profile import read_reference_profile
    from .report import write_report

    settings = MonitorSettings(alpha=alpha, max_drop=max_drop).validate()
    runtime = ClassifierRuntime.load(model)
    ref_dir = reference or runtime.model_path
    if ref_dir is None:
        raise ConfigError(Errors.E310.format(path=model, file="monitor_reference.json"))
    profile = read_reference_profile(ref_dir)
    if profile.labels != runtime.labels or profile.exclusive != runtime.exclusive:
        raise ConfigError(
            Errors.E312.format(
                reference=len(profile.labels),
                task_ref="exclusive" if profile.exclusive else "multilabel",
                current=len(runtime.labels),
                task_cur=runtime.task,
            )
        )
    texts, gold_lists = read_texts(current, text_key=text_key, label_key=label_key)
    if len(texts) < settings.min_docs:
        raise ConfigError(
            Errors.E313.format(source=current, n=len(texts), minimum=settings.min_docs)
        )
    gold = None
    if gold_lists is not None:
        known = set(runtime.labels)
        for i, doc_labels in enumerate(gold_lists):
            for label in doc_labels:
                if label not in known:
                    raise DataError(
                        Errors.E315.format(
                            path=current, line=i + 1, label=label, n_labels=len(known)
                        )
                    )
        gold = runtime.decided_matrix(gold_lists)
    probs_parts, decided_parts = [], []
    for start in range(0, len(texts), 1000):
        out = runtime.run(texts[start : start + 1000])
        probs_parts.append(out.probs)
        decided_parts.append(runtime.decided_matrix(out.decided))
    probs = np.concatenate(probs_parts)
    decided = np.concatenate(decided_parts)
    report = compare(profile, probs, decided, settings, gold=gold)
    report["source"] = str(current)
    report["model"] = runtime.model_info
    write_report(
        report,
        output_dir,
        reference_confidences=np.asarray(profile.confidences),
        current_confidences=probs.max(axis=1),
        overwrite=overwrite,
        plots=plots,
    )
    for name, fig in report["figures"].items():
        flag = "ALERT" if fig["alert"] else "ok"
        typer.echo(f"{name:22s} {fig['value']:.4f}  corridor {fig['corridor']}  {flag}")
    correction = report["prior_shift"]
    if correction["status"] == "adjusted":
        typer.echo(
            f"label-prior correction: {correction['shrinkage']:.0%} of the EM move kept "
            f"(LR {correction['likelihood_ratio']:.1f}, noise {correction['noise_level']:.1f}); "
            f"plain CBPE accuracy {report['figures']['expected_accuracy']['unadjusted']:.4f}"
        )
    else:
        typer.echo(f"no label-prior correction: {correction['reason']}")
    if "observed" in report:
        typer.echo(f"realised (labels given): {report['observed']}")
    typer.echo(f"wrote {output_dir / 'monitor.json'} and {output_dir / 'monitor.md'}")
    if report["alert"] and fail_on_alert:
        raise typer.Exit(3)


def monitor_reference_command(
    model: str = typer.Argument(..., help="Pipeline directory (tuned)."),
    data: Path = typer.Argument(
        ..., exists=True, dir_okay=False, help="Held-out .spacy file with gold labels (dev)."
    ),
    output: Path | None = typer.Option(
        None, help="Directory to write monitor_reference.json into (default: MODEL)."
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing profile."),
) -> None:
    """Build the monitor's reference profile from held-out data and save it with the pipeline."""
    from spacy.tokens import DocBin

    from ..serving.runtime import ClassifierRuntime
    from .profile import build_reference_profile, write_reference_profile

    runtime = ClassifierRuntime.load(model)
    target = output or runtime.model_path
    if target is None:
        raise ConfigError(Errors.E309.format(option="--output", rule="given", value="None"))
    docs = list(DocBin().from_disk(data).get_docs(runtime.nlp.vocab))
    gold = np.array([[doc.cats.get(label, 0.0) for label in runtime.labels] for doc in docs])
    out = runtime.run([doc.text for doc in docs])
    profile = build_reference_profile(
        out.probs,
        labels=runtime.labels,
        exclusive=runtime.exclusive,
        decided=runtime.decided_matrix(out.decided),
        gold=gold,
        source=str(data),
    )
    path = write_reference_profile(target, profile, overwrite=overwrite)
    typer.echo(
        f"{profile.n_docs} docs: abstain rate {profile.abstain_rate:.4f}, expected accuracy "
        f"{profile.expected_accuracy:.4f} (observed {profile.observed_accuracy}), expected "
        f"macro-F1 {profile.expected_macro_f1:.4f} (observed {profile.observed_macro_f1})"
    )
    typer.echo(f"wrote {path}")

"""Evaluate a pipeline on a held-out split and write the report people look at.

The scores come from running the pipeline as an application would (``nlp.pipe`` over
the raw texts), never from the gold docs' annotations. Decisions are taken the way the
pipeline takes them: from the decision component's per-label thresholds when the
pipeline has one, otherwise argmax (exclusive) or 0.5 (multi-label), spaCy's default.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import spacy
import srsly
from spacy.language import Language
from spacy.pipeline import TextCategorizer
from spacy.tokens import Doc, DocBin

from .errors import ConfigError, Errors
from .maths import metrics

TEXTCAT_FACTORIES = ("textcat", "textcat_multilabel")


def find_textcat(nlp: Language) -> tuple[str, Any]:
    """The (last) text classifier of the pipeline and whether it is exclusive."""
    found: list[tuple[str, Any]] = [
        (name, pipe) for name, pipe in nlp.pipeline if isinstance(pipe, TextCategorizer)
    ]
    if not found:
        # Exported pipelines (ONNX) replace the spaCy classifier by a component that
        # still exposes ``labels`` and ``is_exclusive``.
        found = [
            (name, pipe)
            for name, pipe in nlp.pipeline
            if hasattr(pipe, "labels") and hasattr(pipe, "is_exclusive")
        ]
    if not found:
        raise ConfigError(Errors.E010.format(expected=TEXTCAT_FACTORIES, pipe_names=nlp.pipe_names))
    return found[-1]


def is_exclusive(pipe: Any) -> bool:
    if hasattr(pipe, "is_exclusive"):
        return bool(pipe.is_exclusive)
    return not getattr(pipe, "cfg", {}).get("multi_label", False) and pipe.__class__.__name__ in (
        "TextCategorizer",
    )


def load_gold(nlp: Language, path: Path) -> list[Doc]:
    return list(DocBin().from_disk(path).get_docs(nlp.vocab))


def cats_matrix(docs: Sequence[Doc], labels: Sequence[str]) -> np.ndarray:
    """``doc.cats`` of many docs as an (n_docs, n_labels) array in ``labels`` order."""
    out = np.zeros((len(docs), len(labels)), dtype=np.float64)
    for i, doc in enumerate(docs):
        cats = doc.cats
        out[i] = [cats.get(label, 0.0) for label in labels]
    return out


def _decisions(
    docs: Sequence[Doc], labels: Sequence[str], probs: np.ndarray, exclusive: bool
) -> tuple[np.ndarray, str, np.ndarray | None]:
    """0/1 decisions, how they were made, and per-label thresholds if any."""
    if docs and Doc.has_extension("decided_labels") and docs[0]._.decided_labels is not None:
        index = {label: j for j, label in enumerate(labels)}
        decided = np.zeros_like(probs, dtype=np.int64)
        for i, doc in enumerate(docs):
            for label in doc._.decided_labels:
                decided[i, index[label]] = 1
        return decided, "decision component", None
    if exclusive:
        decided = np.zeros_like(probs, dtype=np.int64)
        if len(probs):
            decided[np.arange(len(probs)), probs.argmax(axis=1)] = 1
        return decided, "argmax", None
    return metrics.decide(probs, 0.5), "threshold 0.5", np.full(len(labels), 0.5)


def calibration_metrics(probs: np.ndarray, gold: np.ndarray, exclusive: bool) -> dict[str, float]:
    return {
        "top_label_ece": metrics.top_label_ece(probs, gold, n_bins=15, strategy="uniform"),
        "classwise_ece": metrics.classwise_ece(probs, gold, n_bins=15, strategy="quantile"),
        "brier": metrics.brier_score(probs, gold, exclusive=exclusive),
        "log_loss": metrics.log_loss(probs, gold, exclusive=exclusive),
    }


def evaluate(nlp: Language, gold_docs: Sequence[Doc], batch_size: int = 256) -> dict[str, Any]:
    """Scores of ``nlp`` on ``gold_docs``: the metrics dict written as ``metrics.json``."""
    _, textcat = find_textcat(nlp)
    labels = list(textcat.labels)
    exclusive = is_exclusive(textcat)
    gold = cats_matrix(gold_docs, labels)
    texts = [doc.text for doc in gold_docs]
    start = time.perf_counter()
    predicted = list(nlp.pipe(texts, batch_size=batch_size))
    seconds = time.perf_counter() - start
    probs = cats_matrix(predicted, labels)
    decided, decision_rule, thresholds = _decisions(predicted, labels, probs, exclusive)
    prf = metrics.prf_per_label(decided, gold)
    per_label = {
        label: {
            "p": float(prf.precision[j]),
            "r": float(prf.recall[j]),
            "f": float(prf.f1[j]),
            "support": int(prf.support[j]),
            **({"threshold": float(thresholds[j])} if thresholds is not None else {}),
        }
        for j, label in enumerate(labels)
    }
    result: dict[str, Any] = {
        "task": "exclusive" if exclusive else "multilabel",
        "n_docs": len(gold_docs),
        "labels": labels,
        "decision_rule": decision_rule,
        "macro_p": prf.macro_p,
        "macro_r": prf.macro_r,
        "macro_f": prf.macro_f,
        "micro_p": prf.micro_p,
        "micro_r": prf.micro_r,
        "micro_f": prf.micro_f,
        "macro_auc": metrics.macro_auc(probs, gold),
        "per_label": per_label,
        "calibration": calibration_metrics(probs, gold, exclusive),
        "docs_per_second": len(texts) / seconds if seconds > 0 else float("inf"),
    }
    if exclusive:
        result["accuracy"] = metrics.accuracy(probs, gold)
        decided_any = decided.sum(axis=1) > 0
        result["coverage"] = float(decided_any.mean()) if len(decided_any) else 0.0
    return result


def report_markdown(result: dict[str, Any], title: str = "Evaluation") -> str:
    """A readable table of :func:`evaluate`'s result."""
    lines = [f"# {title}", ""]
    lines.append(
        f"- task: {result['task']}, docs: {result['n_docs']}, decisions: {result['decision_rule']}"
    )
    if "accuracy" in result:
        lines.append(f"- accuracy: {result['accuracy']:.4f}, coverage: {result['coverage']:.4f}")
    lines.append(
        f"- macro P/R/F: {result['macro_p']:.4f} / {result['macro_r']:.4f} / "
        f"{result['macro_f']:.4f}"
    )
    lines.append(
        f"- micro P/R/F: {result['micro_p']:.4f} / {result['micro_r']:.4f} / "
        f"{result['micro_f']:.4f}"
    )
    lines.append(f"- macro AUC: {result['macro_auc']:.4f}")
    cal = result["calibration"]
    lines.append(
        f"- calibration: top-label ECE {cal['top_label_ece']:.4f}, class-wise ECE "
        f"{cal['classwise_ece']:.4f}, Brier {cal['brier']:.4f}, log loss {cal['log_loss']:.4f}"
    )
    lines.append(f"- speed: {result['docs_per_second']:.0f} docs/s (nlp.pipe, this machine)")
    lines += ["", "| label | P | R | F | support | threshold |", "|---|---:|---:|---:|---:|---:|"]
    rows = sorted(result["per_label"].items(), key=lambda item: item[1]["f"])
    for label, row in rows:
        threshold = f"{row['threshold']:.3f}" if "threshold" in row else "argmax"
        lines.append(
            f"| {label} | {row['p']:.3f} | {row['r']:.3f} | {row['f']:.3f} | {row['support']} "
            f"| {threshold} |"
        )
    return "\n".join(lines) + "\n"


def evaluate_to_dir(model: str | Path, data: Path, output_dir: Path) -> dict[str, Any]:
    """Load ``model``, evaluate it on ``data`` and write ``metrics.json`` + ``report.md``."""
    nlp = spacy.load(model)
    gold_docs = load_gold(nlp, data)
    result = evaluate(nlp, gold_docs)
    result["model"] = str(model)
    result["data"] = str(data)
    output_dir.mkdir(parents=True, exist_ok=True)
    srsly.write_json(output_dir / "metrics.json", result)
    (output_dir / "report.md").write_text(
        report_markdown(result, title=f"Evaluation of {Path(model).name} on {data.name}"),
        encoding="utf8",
    )
    return result

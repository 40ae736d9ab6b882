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
from typing import Any, cast

import numpy as np
import spacy
import srsly
from spacy.language import Language
from spacy.pipeline import MultiLabel_TextCategorizer, TextCategorizer
from spacy.tokens import Doc, DocBin

from .errors import ConfigError, Errors
from .maths import metrics
from .pipeline._state import FittedComponent

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
    """Whether the classifier predicts exclusive classes (one label per doc)."""
    if hasattr(pipe, "is_exclusive"):
        return bool(pipe.is_exclusive)
    return isinstance(pipe, TextCategorizer) and not isinstance(pipe, MultiLabel_TextCategorizer)


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


def _decision(nlp: Language) -> Any:
    return nlp.get_pipe("textcat_kit_decision")


def _prf_block(
    decided: np.ndarray, gold: np.ndarray, labels: Sequence[str], thresholds: np.ndarray | None
) -> dict[str, Any]:
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
    return {
        "macro_p": prf.macro_p,
        "macro_r": prf.macro_r,
        "macro_f": prf.macro_f,
        "micro_p": prf.micro_p,
        "micro_r": prf.micro_r,
        "micro_f": prf.micro_f,
        "coverage": float((decided.sum(axis=1) > 0).mean()) if len(decided) else 0.0,
        "per_label": per_label,
    }


def _argmax(probs: np.ndarray) -> np.ndarray:
    decided = np.zeros_like(probs, dtype=np.int64)
    if len(probs):
        decided[np.arange(len(probs)), probs.argmax(axis=1)] = 1
    return decided


def evaluate(nlp: Language, gold_docs: Sequence[Doc], batch_size: int = 256) -> dict[str, Any]:
    """Scores of ``nlp`` on ``gold_docs``: the metrics dict written as ``metrics.json``.

    Headline figures use the pipeline's own decisions. With a calibrator and decision
    component present, the same texts are also scored with both disabled (``raw``),
    so the report shows calibration before/after and 0.5 / global / tuned thresholds.
    """
    _, textcat = find_textcat(nlp)
    labels = list(textcat.labels)
    exclusive = is_exclusive(textcat)
    gold = cats_matrix(gold_docs, labels)
    texts = [doc.text for doc in gold_docs]
    extra = [n for n in ("textcat_kit_calibrator", "textcat_kit_decision") if n in nlp.pipe_names]
    # One pass: the classifier's raw scores are read before our components overwrite them
    # (the same steps nlp.pipe runs; the copy is not timed).
    start = time.perf_counter()
    with nlp.select_pipes(disable=extra):
        predicted = list(nlp.pipe(texts, batch_size=batch_size))
    seconds = time.perf_counter() - start
    raw = cats_matrix(predicted, labels)
    start = time.perf_counter()
    for name in extra:
        component = cast(FittedComponent, nlp.get_pipe(name))
        predicted = list(component.pipe(predicted, batch_size=batch_size))
    seconds += time.perf_counter() - start
    probs = cats_matrix(predicted, labels)
    decided, decision_rule, thresholds = _decisions(predicted, labels, probs, exclusive)
    if decision_rule == "decision component":
        decision = _decision(nlp)
        if not exclusive:
            thresholds = np.array([decision.thresholds[label] for label in labels])
    result: dict[str, Any] = {
        "task": "exclusive" if exclusive else "multilabel",
        "n_docs": len(gold_docs),
        "labels": labels,
        "decision_rule": decision_rule,
        **_prf_block(decided, gold, labels, thresholds),
        "macro_auc": metrics.macro_auc(probs, gold),
        "calibration": calibration_metrics(probs, gold, exclusive),
        "docs_per_second": len(texts) / seconds if seconds > 0 else float("inf"),
    }
    if exclusive:
        result["accuracy"] = metrics.accuracy(probs, gold)
        argmax = _prf_block(_argmax(probs), gold, labels, None)
        result["argmax"] = {k: v for k, v in argmax.items() if k != "per_label"}
        correct = probs.argmax(axis=1) == gold.argmax(axis=1)
        if decision_rule == "decision component":
            kept = decided.sum(axis=1) > 0
            result["abstain"] = {
                "threshold": _decision(nlp).abstain_threshold,
                "coverage": float(kept.mean()),
                "precision": float(correct[kept].mean()) if kept.any() else 0.0,
            }
    if extra:
        raw_decided = _argmax(raw) if exclusive else metrics.decide(raw, 0.5)
        block = _prf_block(raw_decided, gold, labels, None)
        result["raw"] = {
            "rule": "argmax" if exclusive else "threshold 0.5",
            **block,
            "calibration": calibration_metrics(raw, gold, exclusive),
        }
        result["_raw_probs"] = raw
        if not exclusive and "textcat_kit_decision" in extra:
            fit_info = _decision(nlp).fit_info
            global_t = fit_info.get("raw_global_threshold")
            if global_t is not None:
                block = _prf_block(metrics.decide(raw, global_t), gold, labels, None)
                result["raw_global_threshold"] = {
                    "threshold": global_t,
                    **{k: v for k, v in block.items() if k != "per_label"},
                }
    result["_probs"] = probs
    result["_gold"] = gold
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
    if "argmax" in result and result["decision_rule"] != "argmax":
        lines.append(f"- argmax (no abstention) macro F: {result['argmax']['macro_f']:.4f}")
    if "abstain" in result:
        ab = result["abstain"]
        lines.append(
            f"- abstain below {ab['threshold']:.3f}: coverage {ab['coverage']:.4f}, "
            f"precision on kept docs {ab['precision']:.4f}"
        )
    if "raw" in result:
        raw = result["raw"]
        lines += ["", "## Before / after calibration and thresholds", ""]
        lines += [
            "| scores | decisions | macro F | micro F | top-label ECE | class-wise ECE "
            "| Brier | log loss |",
            "|---|---|---:|---:|---:|---:|---:|---:|",
        ]
        rc, cc = raw["calibration"], result["calibration"]
        lines.append(
            f"| raw | {raw['rule']} | {raw['macro_f']:.4f} | {raw['micro_f']:.4f} | "
            f"{rc['top_label_ece']:.4f} | {rc['classwise_ece']:.4f} | {rc['brier']:.4f} "
            f"| {rc['log_loss']:.4f} |"
        )
        if "raw_global_threshold" in result:
            g = result["raw_global_threshold"]
            lines.append(
                f"| raw | best global threshold on dev ({g['threshold']:.3f}) | "
                f"{g['macro_f']:.4f} | {g['micro_f']:.4f} | | | | |"
            )
        lines.append(
            f"| calibrated | {result['decision_rule']} | {result['macro_f']:.4f} | "
            f"{result['micro_f']:.4f} | {cc['top_label_ece']:.4f} | "
            f"{cc['classwise_ece']:.4f} | {cc['brier']:.4f} | {cc['log_loss']:.4f} |"
        )
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
    arrays = {k: result.pop(k) for k in list(result) if k.startswith("_")}
    result["model"] = str(model)
    result["data"] = str(data)
    output_dir.mkdir(parents=True, exist_ok=True)
    srsly.write_json(output_dir / "metrics.json", result)
    try:
        from .plots import write_plots
    except ImportError:  # matplotlib is the optional [report] extra
        result["plots"] = []
    else:
        result["plots"] = write_plots(result, arrays, output_dir)
    markdown = report_markdown(result, title=f"Evaluation of {Path(model).name} on {data.name}")
    if result["plots"]:
        markdown += "\n" + "\n".join(f"![{p}]({p})" for p in result["plots"]) + "\n"
    (output_dir / "report.md").write_text(markdown, encoding="utf8")
    return result

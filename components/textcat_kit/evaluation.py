"""Evaluate a pipeline on a held-out split and write the report people look at.

The scores come from running the pipeline as an application would (``nlp.pipe`` over
the raw texts), never from the gold docs' annotations. Decisions are taken the way the
pipeline takes them: from the decision component's per-label thresholds when the
pipeline has one, otherwise argmax (exclusive) or 0.5 (multi-label), spaCy's default.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import spacy
import srsly
from spacy.language import Language
from spacy.pipeline import MultiLabel_TextCategorizer, TextCategorizer
from spacy.tokens import Doc, DocBin

from .diagnostics import diagnose
from .errors import ConfigError, DataError, Errors
from .maths import metrics
from .pipeline.fitted import raw_scores
from .safe_write import atomic_dir, check_target

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


def check_exclusive_gold(
    docs: Sequence[Doc], gold: np.ndarray, labels: Sequence[str], path: Path | str
) -> None:
    """Every doc of an exclusive task needs one of the classifier's labels as its gold label.

    Raises [E030] naming the file, the doc and the labels it does carry (often a label the
    model was not trained on), instead of the maths' anonymous row error.
    """
    missing: np.ndarray = (
        np.nonzero(gold.max(axis=1, initial=0.0) < 0.5)[0] if len(gold) else np.zeros(0, int)
    )
    if len(missing):
        doc = docs[int(missing[0])]
        positive = sorted(label for label, value in doc.cats.items() if value >= 0.5)
        raise DataError(
            Errors.E030.format(
                path=path,
                index=int(missing[0]),
                text=doc.text[:60],
                n=len(missing),
                positive=positive or "none",
                labels=", ".join(labels[:10]) + (" …" if len(labels) > 10 else ""),
            )
        )


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
    # Macro averages over the labels present in the gold data: a label with no example
    # has no defined recall, and counting it as 0 would punish the model for the data.
    present = prf.support > 0
    if not present.any():
        present = np.ones_like(present, dtype=bool)
    return {
        "macro_p": float(prf.precision[present].mean()) if len(labels) else 0.0,
        "macro_r": float(prf.recall[present].mean()) if len(labels) else 0.0,
        "macro_f": float(prf.f1[present].mean()) if len(labels) else 0.0,
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


@dataclass
class EvaluationResult:
    """What :func:`evaluate` measured.

    ``metrics`` is the JSON-ready dict written as ``metrics.json`` (and read by the report and
    the package meta); the arrays are kept for the plots and are never serialised.
    """

    metrics: dict[str, Any]
    probs: np.ndarray
    gold: np.ndarray
    raw_probs: np.ndarray | None = None


def evaluate(nlp: Language, gold_docs: Sequence[Doc], batch_size: int = 256) -> EvaluationResult:
    """Scores of ``nlp`` on ``gold_docs``: the metrics written as ``metrics.json``.

    Headline figures use the pipeline's own decisions. With a calibrator and decision
    component present, the same texts are also scored with both disabled (``raw``),
    so the report shows calibration before/after and 0.5 / global / tuned thresholds.
    """
    textcat_name, textcat = find_textcat(nlp)
    labels = list(textcat.labels)
    exclusive = is_exclusive(textcat)
    gold = cats_matrix(gold_docs, labels)
    texts = [doc.text for doc in gold_docs]
    # One pass: the classifier's raw scores are read before its fitted calibration and
    # decisions are applied (the same steps nlp.pipe runs; the copy is not timed).
    start = time.perf_counter()
    with raw_scores(nlp, textcat_name) as fitted:
        predicted = list(nlp.pipe(texts, batch_size=batch_size))
    seconds = time.perf_counter() - start
    raw = cats_matrix(predicted, labels)
    start = time.perf_counter()
    fitted.apply(predicted)
    seconds += time.perf_counter() - start
    extra = fitted.is_fitted
    decision = fitted.decision
    probs = cats_matrix(predicted, labels)
    decided, decision_rule, thresholds = _decisions(predicted, labels, probs, exclusive)
    if decision_rule == "decision component" and decision is not None:
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
        if decision_rule == "decision component" and decision is not None:
            kept = decided.sum(axis=1) > 0
            result["abstain"] = {
                "threshold": decision.abstain_threshold,
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
        if not exclusive and decision is not None:
            fit_info = decision.fit_info
            global_t = fit_info.get("raw_global_threshold")
            if global_t is not None:
                block = _prf_block(metrics.decide(raw, global_t), gold, labels, None)
                result["raw_global_threshold"] = {
                    "threshold": global_t,
                    **{k: v for k, v in block.items() if k != "per_label"},
                }
    result["labels_absent_from_data"] = [
        label for label, row in result["per_label"].items() if row["support"] == 0
    ]
    result["diagnosis"] = diagnose(
        probs, gold, labels, exclusive, decided if not exclusive else None, where="test"
    ).to_dict()
    return EvaluationResult(
        metrics=result, probs=probs, gold=gold, raw_probs=raw if extra else None
    )


def _fmt(value: Any, digits: int = 4) -> str:
    """A number for the report; NaN / None (undefined on this data) as 'n/a'."""
    if value is None:
        return "n/a"
    value = float(value)
    return "n/a" if not np.isfinite(value) else f"{value:.{digits}f}"


def report_markdown(result: dict[str, Any], title: str = "Evaluation") -> str:
    """A readable report of :func:`evaluate`'s result.

    A degenerate model (see :mod:`textcat_kit.diagnostics`) gets its warning first, before
    any figure. The headline table puts the argmax figures (every text gets its top label)
    and the figures of the pipeline's own decisions (abstentions / tuned thresholds) side by
    side, each row saying what it is.
    """
    lines = [f"# {title}", ""]
    diagnosis = result.get("diagnosis") or {}
    if diagnosis.get("degenerate"):
        lines += [f"> **{banner_text(diagnosis)}**", ">"]
        lines += [f"> - {finding['message']}" for finding in diagnosis.get("findings", [])]
        lines += ["> ", "> The calibration (ECE) figures below are not evidence of quality.", ""]
    lines.append(
        f"- task: {result['task']}, docs: {result['n_docs']}, labels: {len(result['labels'])}"
    )
    absent = result.get("labels_absent_from_data") or []
    if absent:
        lines.append(
            f"- {len(absent)} label(s) have no example in this data and are left out of the "
            f"macro averages: {', '.join(absent)}"
        )
    lines += [
        "",
        "| decisions | what it is | coverage | macro P | macro R | macro F | micro F |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    if "argmax" in result:
        a = result["argmax"]
        lines.append(
            f"| argmax | every text gets its top label (accuracy {_fmt(result['accuracy'])}) "
            f"| 1.0000 | {_fmt(a['macro_p'])} | {_fmt(a['macro_r'])} | {_fmt(a['macro_f'])} "
            f"| {_fmt(a['micro_f'])} |"
        )
    if result["decision_rule"] != "argmax":
        if "abstain" in result and result["abstain"].get("threshold") is not None:
            ab = result["abstain"]
            what = (
                f"the pipeline's labels: abstains below confidence {_fmt(ab['threshold'], 3)} "
                f"(precision on kept texts {_fmt(ab['precision'])}); an abstention counts as "
                "a miss"
            )
        elif result["task"] == "exclusive":
            what = "the pipeline's labels (top label; no abstention fitted)"
        else:
            what = f"the pipeline's labels ({result['decision_rule']})"
        lines.append(
            f"| decided | {what} | {_fmt(result['coverage'])} | {_fmt(result['macro_p'])} "
            f"| {_fmt(result['macro_r'])} | {_fmt(result['macro_f'])} | "
            f"{_fmt(result['micro_f'])} |"
        )
    lines += [""]
    lines.append(f"- macro ROC AUC: {_fmt(result['macro_auc'])}")
    cal = result["calibration"]
    lines.append(
        f"- calibration: top-label ECE {_fmt(cal['top_label_ece'])}, class-wise ECE "
        f"{_fmt(cal['classwise_ece'])}, Brier {_fmt(cal['brier'])}, log loss "
        f"{_fmt(cal['log_loss'])}"
    )
    lines.append(f"- speed: {_fmt(result['docs_per_second'], 0)} docs/s (nlp.pipe, this machine)")
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
            f"| raw | {raw['rule']} | {_fmt(raw['macro_f'])} | {_fmt(raw['micro_f'])} | "
            f"{_fmt(rc['top_label_ece'])} | {_fmt(rc['classwise_ece'])} | {_fmt(rc['brier'])} "
            f"| {_fmt(rc['log_loss'])} |"
        )
        if "raw_global_threshold" in result:
            g = result["raw_global_threshold"]
            lines.append(
                f"| raw | best global threshold on dev ({_fmt(g['threshold'], 3)}) | "
                f"{_fmt(g['macro_f'])} | {_fmt(g['micro_f'])} | | | | |"
            )
        lines.append(
            f"| calibrated | {result['decision_rule']} | {_fmt(result['macro_f'])} | "
            f"{_fmt(result['micro_f'])} | {_fmt(cc['top_label_ece'])} | "
            f"{_fmt(cc['classwise_ece'])} | {_fmt(cc['brier'])} | {_fmt(cc['log_loss'])} |"
        )
    lines += [
        "",
        "## Per label (decided)",
        "",
        "| label | P | R | F | support | threshold |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    rows = sorted(result["per_label"].items(), key=lambda item: item[1]["f"])
    for label, row in rows:
        threshold = _fmt(row["threshold"], 3) if "threshold" in row else "argmax"
        note = " (no example: not averaged)" if row["support"] == 0 else ""
        lines.append(
            f"| {label}{note} | {row['p']:.3f} | {row['r']:.3f} | {row['f']:.3f} "
            f"| {row['support']} | {threshold} |"
        )
    return "\n".join(lines) + "\n"


def banner_text(diagnosis: dict[str, Any]) -> str:
    """The [W008] line of a diagnosis dict (as stored in metrics.json)."""
    from .errors import Warnings

    reasons = "; ".join(f["code"] for f in diagnosis.get("findings", []) if f.get("degenerate"))
    return Warnings.W008.format(reasons=reasons)


def _json_safe(value: Any) -> Any:
    """NaN / inf (undefined on tiny or one-class data) become null: metrics.json stays JSON."""
    if isinstance(value, float):
        return value if np.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if isinstance(value, np.generic):
        return _json_safe(value.item())
    return value


def evaluate_to_dir(
    model: str | Path, data: Path, output_dir: Path, *, overwrite: bool = False
) -> dict[str, Any]:
    """Load ``model``, evaluate it on ``data`` and write ``metrics.json`` + ``report.md``.

    ``output_dir`` is written through :func:`textcat_kit.safe_write.atomic_dir` (an earlier
    report is replaced only with ``overwrite``; other directories never).
    """
    check_target(Path(output_dir), overwrite=overwrite)
    nlp = spacy.load(model)
    gold_docs = load_gold(nlp, data)
    if not gold_docs:
        raise DataError(Errors.E028.format(path=data))
    _, textcat = find_textcat(nlp)
    if is_exclusive(textcat):
        labels = list(textcat.labels)
        check_exclusive_gold(gold_docs, cats_matrix(gold_docs, labels), labels, data)
    evaluation = evaluate(nlp, gold_docs)
    result = evaluation.metrics
    result["model"] = str(model)
    result["data"] = str(data)
    result = _json_safe(result)
    with atomic_dir(output_dir, overwrite=overwrite, command="textcat-kit evaluate") as tmp:
        srsly.write_json(tmp / "metrics.json", result)
        try:
            from .plots import write_plots
        except ImportError:  # matplotlib is the optional [report] extra
            plots: list[str] = []
        else:
            plots = write_plots(result, evaluation, tmp) if len(gold_docs) >= 2 else []
        result["plots"] = plots
        name = Path(str(model)).name
        markdown = report_markdown(result, title=f"Evaluation of {name} on {data.name}")
        if plots:
            markdown += "\n" + "\n".join(f"![{p}]({p})" for p in plots) + "\n"
        from .explain import error_analysis_markdown  # worst errors, confused pairs

        texts = [doc.text for doc in gold_docs]
        exclusive = result["task"] == "exclusive"
        markdown += "\n" + error_analysis_markdown(
            nlp, texts, evaluation.gold, evaluation.probs, result["labels"], exclusive
        )
        (tmp / "report.md").write_text(markdown, encoding="utf8")
    return result

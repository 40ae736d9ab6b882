"""``textcat-kit tune``: fit the calibrator and the thresholds on held-out data.

Order and data matter here:

1. Raw scores of the trained classifier on the dev split (the test split is never
   read).
2. The calibrator is **cross-fitted**: dev is cut into folds; each fold's calibrated
   scores come from a calibrator fitted on the other folds. The thresholds are then
   tuned on these out-of-fold scores, so the threshold search never sees a score from
   a calibrator that was fitted on the same example. The calibrator that ships is
   fitted on all of dev.
3. Both components are added after the classifier and the pipeline is written to a
   temporary directory next to the output, then moved into place, so an interrupted
   run never leaves a half-written pipeline behind.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import spacy
import srsly
from spacy.language import Language

from .evaluation import cats_matrix, find_textcat, is_exclusive, load_gold
from .maths import metrics
from .maths.thresholds import best_global_threshold
from .pipeline.calibrator import Calibration
from .pipeline.decision import Decision

CALIBRATOR = "textcat_kit_calibrator"
DECISION = "textcat_kit_decision"


def fold_ids(gold: np.ndarray, n_folds: int, seed: int) -> np.ndarray:
    """Fold index per doc, stratified by the doc's rarest positive label."""
    rng = np.random.default_rng(seed)
    n = gold.shape[0]
    positive = gold >= 0.5
    freq = positive.sum(axis=0)
    rarest = np.where(positive.any(axis=1), np.where(positive, freq, np.inf).argmin(axis=1), -1)
    order = np.lexsort((rng.random(n), rarest))
    folds = np.empty(n, dtype=np.int64)
    folds[order] = np.arange(n) % n_folds
    return folds


def cross_fit_calibration(
    make: Any,
    probs: np.ndarray,
    gold: np.ndarray,
    labels: list[str],
    exclusive: bool,
    n_folds: int,
    seed: int,
) -> np.ndarray:
    """Out-of-fold calibrated scores: fold k is transformed by a calibrator fitted without it."""
    folds = fold_ids(gold, n_folds, seed)
    out = np.empty_like(probs)
    for k in range(n_folds):
        held_out = folds == k
        calibrator = make().fit(probs[~held_out], gold[~held_out], labels, exclusive)
        out[held_out] = calibrator.transform(probs[held_out])
    return out


def raw_scores(nlp: Language, texts: list[str], labels: list[str], skip: list[str]) -> np.ndarray:
    with nlp.select_pipes(disable=[name for name in skip if name in nlp.pipe_names]):
        return cats_matrix(list(nlp.pipe(texts, batch_size=256)), labels)


def tune_pipeline(
    model: str | Path,
    dev_path: Path,
    output_dir: Path,
    *,
    calibration: str = "auto",
    decision_config: dict[str, Any] | None = None,
    n_folds: int = 5,
    seed: int = 0,
) -> dict[str, Any]:
    """Add a fitted calibrator and decision component to ``model`` and save it to ``output_dir``."""
    nlp = spacy.load(model)
    for name in (CALIBRATOR, DECISION):
        if name in nlp.pipe_names:
            nlp.remove_pipe(name)
    textcat_name, textcat = find_textcat(nlp)
    labels = list(textcat.labels)
    exclusive = is_exclusive(textcat)
    gold_docs = load_gold(nlp, dev_path)
    gold = cats_matrix(gold_docs, labels)
    probs = raw_scores(nlp, [doc.text for doc in gold_docs], labels, [])

    calibrator: Calibration = nlp.add_pipe(
        CALIBRATOR, after=textcat_name, config={"method": calibration}
    )  # type: ignore[assignment]

    def make() -> Calibration:
        return Calibration(nlp.vocab, method=calibration, min_positives=calibrator.min_positives)

    oof = cross_fit_calibration(make, probs, gold, labels, exclusive, n_folds, seed)
    calibrator.fit(probs, gold, labels, exclusive)
    decision: Decision = nlp.add_pipe(DECISION, after=CALIBRATOR, config=decision_config or {})  # type: ignore[assignment]
    decision.fit(oof, gold, labels, exclusive)

    raw_global = best_global_threshold(probs, gold) if not exclusive else None
    summary: dict[str, Any] = {
        "model": str(model),
        "dev": str(dev_path),
        "n_dev_docs": len(gold_docs),
        "task": "exclusive" if exclusive else "multilabel",
        "calibration_method": calibrator.resolved_method(exclusive),
        "n_folds": n_folds,
        "dev_calibration_raw": _calibration(probs, gold, exclusive),
        "dev_calibration_cross_fitted": _calibration(oof, gold, exclusive),
        "raw_global_threshold": raw_global,
        "thresholds": decision.thresholds,
        "global_threshold": decision.global_threshold,
        "abstain": decision.fit_info.get("abstain"),
    }
    decision.fit_info["raw_global_threshold"] = raw_global
    save_atomically(nlp, output_dir)
    srsly.write_json(output_dir / "tune_summary.json", summary)
    return summary


def _calibration(probs: np.ndarray, gold: np.ndarray, exclusive: bool) -> dict[str, float]:
    return {
        "top_label_ece": metrics.top_label_ece(probs, gold),
        "classwise_ece": metrics.classwise_ece(probs, gold),
        "brier": metrics.brier_score(probs, gold, exclusive=exclusive),
        "log_loss": metrics.log_loss(probs, gold, exclusive=exclusive),
    }


def save_atomically(nlp: Language, output_dir: Path) -> None:
    """Write ``nlp`` next to ``output_dir`` and swap it in only once it is complete."""
    output_dir = Path(output_dir)
    output_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{output_dir.name}-", dir=output_dir.parent))
    try:
        nlp.to_disk(tmp)
        if output_dir.exists():
            old = output_dir.with_name(f".{output_dir.name}-old")
            shutil.rmtree(old, ignore_errors=True)
            output_dir.rename(old)
            tmp.rename(output_dir)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(output_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise

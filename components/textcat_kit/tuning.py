"""``textcat-kit tune``: fit the calibrator and the thresholds on held-out data.

Order and data matter here:

1. Raw scores of the trained classifier on the dev split (the test split is never
   read).
2. The calibrator is **cross-fitted**: dev is cut into folds; each fold's calibrated
   scores come from a calibrator fitted on the other folds. The thresholds are then
   tuned on these out-of-fold scores, so the threshold search never sees a score from
   a calibrator that was fitted on the same example. The calibrator that ships is
   fitted on all of dev.
3. Our classifiers keep both in their own state (applied in ``set_annotations``); other
   classifiers get the standalone calibrator and decision components after them
   (:mod:`textcat_kit.pipeline.tuned`). The pipeline is written to a temporary directory
   next to the output, then moved into place, so an interrupted run never leaves a
   half-written pipeline behind.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import spacy
import srsly
from spacy.language import Language

from .diagnostics import diagnose
from .errors import ConfigError, DataError, Errors, OutputError, Warnings
from .evaluation import (
    cats_matrix,
    check_exclusive_gold,
    find_textcat,
    is_exclusive,
    load_gold,
)
from .maths import metrics
from .maths.thresholds import best_global_threshold
from .pipeline.calibrator import Calibration
from .pipeline.decision import Decision
from .pipeline.tuned import CALIBRATOR, DECISION, attach_fitted_state, clear_fitted_state
from .safe_write import atomic_dir, check_target

__all__ = ["CALIBRATOR", "DECISION", "tune_pipeline"]


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


def effective_folds(n_docs: int, n_folds: int) -> int:
    """Folds actually used for cross-fitting: never more than docs; 0 means no cross-fitting."""
    if n_folds < 2:
        raise ConfigError(Errors.E026.format(n_folds=n_folds))
    usable = min(n_folds, n_docs // 2)
    return usable if usable >= 2 else 0


def tune_pipeline(
    model: str | Path,
    dev_path: Path,
    output_dir: Path,
    *,
    calibration: str = "auto",
    decision_config: dict[str, Any] | None = None,
    n_folds: int = 5,
    seed: int = 0,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Add a fitted calibrator and decision component to ``model`` and save it to ``output_dir``.

    ``output_dir`` is written through :func:`textcat_kit.safe_write.atomic_dir`: a directory
    textcat-kit did not write is never replaced, an earlier tuned pipeline only with
    ``overwrite``, and never one that contains ``model``.
    """
    output_dir = Path(output_dir)
    model_path = Path(model)
    if model_path.exists() and _contains(output_dir, model_path):
        raise OutputError(Errors.E027.format(output=output_dir, model=model_path))
    check_target(output_dir, overwrite=overwrite)
    nlp = spacy.load(model)
    textcat_name, textcat = find_textcat(nlp)
    clear_fitted_state(nlp, textcat_name)
    labels = list(textcat.labels)
    exclusive = is_exclusive(textcat)
    gold_docs = load_gold(nlp, dev_path)
    if not gold_docs:
        raise DataError(Errors.E028.format(path=dev_path))
    gold = cats_matrix(gold_docs, labels)
    if exclusive:
        check_exclusive_gold(gold_docs, gold, labels, dev_path)
    probs = raw_scores(nlp, [doc.text for doc in gold_docs], labels, [])
    folds = effective_folds(len(gold_docs), n_folds)
    if folds < n_folds:
        warnings.warn(
            Warnings.W010.format(path=dev_path, n_docs=len(gold_docs), n_folds=n_folds, used=folds),
            stacklevel=2,
        )

    calibrator = Calibration(nlp.vocab, CALIBRATOR, method=calibration)

    def make() -> Calibration:
        return Calibration(nlp.vocab, method=calibration, min_positives=calibrator.min_positives)

    if folds:
        oof = cross_fit_calibration(make, probs, gold, labels, exclusive, folds, seed)
    else:
        oof = probs.copy()
    calibrator.fit(probs, gold, labels, exclusive)
    config = dict(decision_config or {})
    config["n_folds"] = max(2, min(int(config.get("n_folds", folds or 2)), folds or 2))
    decision = Decision(nlp.vocab, DECISION, **config)
    decision.fit(oof, gold, labels, exclusive)

    # The pipeline's own decisions on the cross-fitted scores: judged by the diagnosis
    # (multi-label; exclusive models are judged by argmax, abstentions aside) and described
    # by the monitor's reference profile.
    decided = decision.decide(oof)
    diagnosis = diagnose(
        oof, gold, labels, exclusive, None if exclusive else decided, where=f"dev ({dev_path})"
    )
    raw_global = best_global_threshold(probs, gold) if not exclusive else None
    summary: dict[str, Any] = {
        "model": str(model),
        "dev": str(dev_path),
        "n_dev_docs": len(gold_docs),
        "task": "exclusive" if exclusive else "multilabel",
        "calibration_method": calibrator.resolved_method(exclusive),
        "n_folds": folds,
        "dev_calibration_raw": _calibration(probs, gold, exclusive),
        "dev_calibration_cross_fitted": _calibration(oof, gold, exclusive),
        "raw_global_threshold": raw_global,
        "thresholds": decision.thresholds,
        "global_threshold": decision.global_threshold,
        "abstain": decision.fit_info.get("abstain"),
        "diagnosis": diagnosis.to_dict(),
    }
    decision.fit_info["raw_global_threshold"] = raw_global
    attach_fitted_state(nlp, textcat_name, calibrator, decision, config)
    with atomic_dir(output_dir, overwrite=overwrite, command="textcat-kit tune") as tmp:
        nlp.to_disk(tmp)
        srsly.write_json(tmp / "tune_summary.json", summary)
        # Reference profile of the monitor (serve / monitor), from the cross-fitted scores.
        from .monitoring.profile import build_reference_profile, write_reference_profile

        profile = build_reference_profile(
            oof,
            labels=labels,
            exclusive=exclusive,
            decided=decided,
            gold=gold,
            source=f"{dev_path} (cross-fitted)",
        )
        write_reference_profile(tmp, profile)
    return summary


def _contains(parent: Path, child: Path) -> bool:
    parent, child = parent.resolve(), child.resolve()
    return parent == child or parent in child.parents


def _calibration(probs: np.ndarray, gold: np.ndarray, exclusive: bool) -> dict[str, float]:
    return {
        "top_label_ece": metrics.top_label_ece(probs, gold),
        "classwise_ece": metrics.classwise_ece(probs, gold),
        "brier": metrics.brier_score(probs, gold, exclusive=exclusive),
        "log_loss": metrics.log_loss(probs, gold, exclusive=exclusive),
    }

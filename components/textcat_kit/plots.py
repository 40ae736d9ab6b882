"""PNG figures of the evaluation report (needs matplotlib, the ``report`` extra)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from .maths import metrics  # noqa: E402
from .maths.thresholds import coverage_accuracy_curve  # noqa: E402

if TYPE_CHECKING:
    from .evaluation import EvaluationResult


def _reliability(ax: Any, probs: np.ndarray, gold: np.ndarray, label: str) -> None:
    top = probs.argmax(axis=1)
    confidence = probs[np.arange(len(probs)), top]
    correct = (gold[np.arange(len(gold)), top] >= 0.5).astype(float)
    curve = metrics.reliability_curve(confidence, correct, n_bins=15, strategy="uniform")
    ece = metrics.ece(confidence, correct, n_bins=15, strategy="uniform")
    ax.plot(curve.bin_confidence, curve.bin_accuracy, "o-", label=f"{label} (ECE {ece:.3f})")


def write_plots(result: dict[str, Any], arrays: EvaluationResult, out: Path) -> list[str]:
    """Reliability diagram (before/after), confusion matrix, coverage-accuracy curve."""
    written = []
    probs, gold = arrays.probs, arrays.gold
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot([0, 1], [0, 1], "k--", linewidth=1, label="perfect")
    if arrays.raw_probs is not None:
        _reliability(ax, arrays.raw_probs, gold, "raw")
        _reliability(ax, probs, gold, "calibrated")
    else:
        _reliability(ax, probs, gold, "scores")
    ax.set(
        xlabel="confidence of top label",
        ylabel="accuracy of top label",
        title="Reliability diagram (15 equal-width bins)",
        xlim=(0, 1),
        ylim=(0, 1),
    )
    ax.legend(loc="upper left")
    fig.tight_layout()
    fig.savefig(out / "reliability.png", dpi=100)
    plt.close(fig)
    written.append("reliability.png")
    if result["task"] == "exclusive" and len(probs):
        n = probs.shape[1]
        matrix = np.zeros((n, n))
        np.add.at(matrix, (gold.argmax(axis=1), probs.argmax(axis=1)), 1)
        fig, ax = plt.subplots(figsize=(8, 8))
        ax.imshow(matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1), cmap="Blues")
        ax.set(xlabel="predicted", ylabel="gold", title="Confusion matrix (row-normalised)")
        if n <= 30:
            ax.set_xticks(range(n), result["labels"], rotation=90, fontsize=6)
            ax.set_yticks(range(n), result["labels"], fontsize=6)
        fig.tight_layout()
        fig.savefig(out / "confusion_matrix.png", dpi=100)
        plt.close(fig)
        written.append("confusion_matrix.png")
        correct = (probs.argmax(axis=1) == gold.argmax(axis=1)).astype(float)
        coverage, accuracy, _ = coverage_accuracy_curve(probs.max(axis=1), correct)
        fig, ax = plt.subplots(figsize=(5, 4))
        ax.plot(coverage, accuracy)
        if "abstain" in result:
            ab = result["abstain"]
            ax.plot([ab["coverage"]], [ab["precision"]], "ro", label="tuned abstain threshold")
            ax.legend()
        ax.set(
            xlabel="coverage (share of docs answered)",
            ylabel="accuracy on answered docs",
            title="Coverage vs accuracy",
        )
        fig.tight_layout()
        fig.savefig(out / "coverage_accuracy.png", dpi=100)
        plt.close(fig)
        written.append("coverage_accuracy.png")
    return written

"""Validate ``textcat-kit monitor`` on constructed shifts of Banking77.

The pipeline runs once over the Banking77 test texts (gold labels known) and over
GoEmotions texts (Reddit comments: another dataset, no banking label is right); the
streams below are resamples of those outputs, compared with the pipeline's reference
profile (``monitor_reference.json``, written by ``textcat-kit tune`` from cross-fitted dev
scores) by :func:`textcat_kit.monitoring.compare`, exactly as ``monitor`` and ``serve`` do.

* **in-distribution**: test docs resampled to the training label prior (the dev split
  the reference comes from is a stratified split of train; the test split is balanced,
  so it is reweighted by class). ``--resamples`` streams; every alert is a false alarm.
* **label-prior shift**: a share ``f`` of the stream drawn from ``--n-shift-labels``
  labels only (fixed, random), the rest in-distribution; ``f`` in steps of 0.1;
* **label-prior shift to hard labels**: the same towards the labels with the lowest
  test accuracy, so the true accuracy falls and the estimate has to follow it.
* **dataset shift**: a share ``f`` of GoEmotions texts, the rest in-distribution; they
  count as errors in the true accuracy.

For each step: alert rate over resamples (overall and per figure), mean expected
accuracy (CBPE) vs mean true accuracy, and the share of resamples whose estimate is
within 3 points of the truth.

Run::

    python -m benchmarks monitor_validation MODEL --window 1000 --resamples 20
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from textcat_kit.monitoring import MonitorSettings, compare, read_reference_profile
from textcat_kit.serving.runtime import ClassifierRuntime

from ._common import shared_data, write_results

SHARED = shared_data()


def read_banking(path: Path) -> tuple[list[str], list[str]]:
    with open(path, newline="", encoding="utf8") as f:
        rows = [(r["text"], r["category"]) for r in csv.DictReader(f)]
    return [t for t, _ in rows], [c for _, c in rows]


def read_goemotions(path: Path, limit: int) -> list[str]:
    out = []
    with open(path, newline="", encoding="utf8") as f:
        for row in csv.reader(f, delimiter="\t"):
            out.append(row[0])
            if len(out) >= limit:
                break
    return out


def run_outputs(runtime: ClassifierRuntime, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    probs, decided = [], []
    for start in range(0, len(texts), 1000):
        out = runtime.run(texts[start : start + 1000])
        probs.append(out.probs)
        decided.append(runtime.decided_matrix(out.decided))
    return np.concatenate(probs), np.concatenate(decided)


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks monitor_validation",
        description=(__doc__ or "").split("\n\n")[0],
    )
    parser.add_argument("model")
    parser.add_argument("--window", type=int, default=1000)
    parser.add_argument("--resamples", type=int, default=20)
    parser.add_argument("--n-shift-labels", type=int, default=10)
    parser.add_argument("--n-goemotions", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    t_start = time.perf_counter()

    runtime = ClassifierRuntime.load(args.model)
    profile = read_reference_profile(runtime.model_path or args.model)
    labels = runtime.labels
    index = {label: j for j, label in enumerate(labels)}
    test_texts, test_labels = read_banking(SHARED / "banking77" / "test.csv")
    _, train_labels = read_banking(SHARED / "banking77" / "train.csv")
    gold = np.array([index[c] for c in test_labels])
    ood_texts = read_goemotions(SHARED / "goemotions" / "test.tsv", args.n_goemotions)
    probs, decided = run_outputs(runtime, test_texts)
    ood_probs, ood_decided = run_outputs(runtime, ood_texts)
    correct = probs.argmax(axis=1) == gold

    train_prior = np.bincount([index[c] for c in train_labels], minlength=len(labels))
    train_prior = train_prior / train_prior.sum()
    test_prior = np.bincount(gold, minlength=len(labels)) / len(gold)
    weights = train_prior[gold] / test_prior[gold]
    weights /= weights.sum()
    rng = np.random.default_rng(args.seed)
    shift_labels = rng.choice(len(labels), args.n_shift_labels, replace=False)
    in_shift = np.isin(gold, shift_labels)
    shift_weights = in_shift / in_shift.sum()
    # The labels the model gets most wrong: a prior shift towards them lowers accuracy.
    per_label_acc = np.array([correct[gold == j].mean() for j in range(len(labels))])
    hard_labels = np.argsort(per_label_acc)[: args.n_shift_labels]
    in_hard = np.isin(gold, hard_labels)
    hard_weights = in_hard / in_hard.sum()
    settings = MonitorSettings(n_draws=100)
    n = args.window

    def evaluate(idx: np.ndarray, ood_idx: np.ndarray) -> dict[str, Any]:
        p = np.concatenate([probs[idx], ood_probs[ood_idx]])
        d = np.concatenate([decided[idx], ood_decided[ood_idx]])
        report = compare(profile, p, d, settings)
        true_acc = float(correct[idx].sum() / (len(idx) + len(ood_idx)))
        return {
            "alert": report["alert"],
            "alerts": report["alerts"],
            "expected_accuracy": report["figures"]["expected_accuracy"]["value"],
            "band": report["figures"]["expected_accuracy"]["band"],
            "true_accuracy": true_acc,
        }

    def step(kind: str, f: float) -> dict[str, Any]:
        runs = []
        for _ in range(args.resamples):
            n_shift = int(round(f * n))
            base = rng.choice(len(gold), n - n_shift, p=weights)
            if kind in ("label_prior", "label_prior_hard"):
                w = shift_weights if kind == "label_prior" else hard_weights
                extra = rng.choice(len(gold), n_shift, p=w)
                runs.append(evaluate(np.concatenate([base, extra]), np.array([], dtype=int)))
            elif kind == "dataset":
                ood = rng.choice(len(ood_texts), n_shift, replace=False)
                runs.append(evaluate(base, ood))
            else:
                runs.append(evaluate(base, np.array([], dtype=int)))
        exp = np.array([r["expected_accuracy"] for r in runs])
        true = np.array([r["true_accuracy"] for r in runs])
        figures: dict[str, int] = {}
        for r in runs:
            for name in r["alerts"]:
                figures[name] = figures.get(name, 0) + 1
        return {
            "kind": kind,
            "shift": f,
            "alert_rate": float(np.mean([r["alert"] for r in runs])),
            "alerts_by_figure": figures,
            "expected_accuracy": float(exp.mean()),
            "true_accuracy": float(true.mean()),
            "mean_abs_error": float(np.abs(exp - true).mean()),
            "within_3pt": float((np.abs(exp - true) <= 0.03).mean()),
            "band_covers_truth": float(
                np.mean([r["band"][0] <= r["true_accuracy"] <= r["band"][1] for r in runs])
            ),
        }

    results: dict[str, Any] = {
        "model": str(args.model),
        "window": n,
        "resamples": args.resamples,
        "reference": {
            "source": profile.source,
            "n_docs": profile.n_docs,
            "expected_accuracy": profile.expected_accuracy,
            "observed_accuracy": profile.observed_accuracy,
        },
        "shift_labels": [labels[j] for j in shift_labels],
        "hard_labels": [labels[j] for j in hard_labels],
        "settings": {"alpha": settings.alpha, "max_drop": settings.max_drop},
        "steps": [],
    }
    in_dist = step("in_distribution", 0.0)
    in_dist["resamples"] = args.resamples
    results["in_distribution"] = in_dist
    print(
        f"in-distribution ({args.resamples} streams of {n}): false alarms "
        f"{in_dist['alert_rate'] * args.resamples:.0f}/{args.resamples} "
        f"{in_dist['alerts_by_figure']}; expected acc {in_dist['expected_accuracy']:.4f} vs "
        f"true {in_dist['true_accuracy']:.4f} (mean |err| {in_dist['mean_abs_error']:.4f}, "
        f"within 3 pt {in_dist['within_3pt']:.2f}, band covers {in_dist['band_covers_truth']:.2f})",
        flush=True,
    )
    print("| shift | share | alert rate | expected acc | true acc | mean abs err | within 3 pt |")
    print("|---|---|---|---|---|---|---|")
    for kind in ("label_prior", "label_prior_hard", "dataset"):
        for f in np.round(np.arange(0.0, 1.01, 0.1), 2):
            row = step(kind, float(f))
            results["steps"].append(row)
            print(
                f"| {kind} | {f:.1f} | {row['alert_rate']:.2f} | {row['expected_accuracy']:.4f} | "
                f"{row['true_accuracy']:.4f} | {row['mean_abs_error']:.4f} | "
                f"{row['within_3pt']:.2f} |",
                flush=True,
            )
    for kind in ("label_prior", "label_prior_hard", "dataset"):
        fired = [
            r["shift"] for r in results["steps"] if r["kind"] == kind and r["alert_rate"] >= 0.95
        ]
        results[f"{kind}_fires_at"] = min(fired) if fired else None
        print(f"{kind}: alert in >= 95% of streams from share {results[f'{kind}_fires_at']}")
    results["seconds"] = time.perf_counter() - t_start
    out = write_results(
        "monitor_validation", results, ["python -m benchmarks monitor_validation", *argv]
    )
    print(f"wrote {out}")


if __name__ == "__main__":
    main()

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
  labels only (fixed, random), the rest in-distribution;
* **label-prior shift to hard labels**: the same towards the labels the model gets most
  wrong, so the true accuracy falls and the estimate has to follow it. The test split is
  halved (stratified, ``--seed``): the hard labels are the least accurate ones on one
  half, and these streams are drawn from the other half only. Picking the labels on the
  docs the streams are drawn from would pick docs that happen to be wrong more often than
  their probabilities say (a winner's curse no estimator can see);
  ``--same-set-hard`` adds that variant for comparison.
* **dataset shift**: a share ``f`` of GoEmotions texts, the rest in-distribution; they
  count as errors in the true accuracy.

For each step (shares ``--shares``): alert rate over resamples (overall and per figure);
mean expected accuracy, before (plain CBPE) and after the label-prior correction (EM
re-estimation of the window's priors, :mod:`textcat_kit.monitoring.prior_shift`), against
the mean true accuracy; the share of streams whose corrected estimate is within 3 points
of the truth; the same for macro-F1.

Run::

    python -m benchmarks monitor_validation MODEL --window 1000 --resamples 20 \
        --docs docs/monitoring.md

``--docs`` rewrites the tables between the ``monitor_validation`` markers of that file.
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from ._common import shared_data, write_results

START, END = "<!-- monitor_validation:start -->", "<!-- monitor_validation:end -->"
KIND_NAMES = {
    "in_distribution": "in-distribution",
    "label_prior": "random labels",
    "label_prior_hard": "hardest labels",
    "label_prior_hard_same": "hardest labels (picked on the same docs)",
    "dataset": "GoEmotions texts",
}
TABLE_SHARES = (0.0, 0.25, 0.5, 0.75, 1.0)


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


def run_outputs(runtime: Any, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    probs, decided = [], []
    for start in range(0, len(texts), 1000):
        out = runtime.run(texts[start : start + 1000])
        probs.append(out.probs)
        decided.append(runtime.decided_matrix(out.decided))
    return np.concatenate(probs), np.concatenate(decided)


def stratified_half(gold: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Boolean mask holding half of each label's docs (the selection half)."""
    mask = np.zeros(len(gold), dtype=bool)
    for label in np.unique(gold):
        idx = rng.permutation(np.flatnonzero(gold == label))
        mask[idx[: len(idx) // 2]] = True
    return mask


def parse_shares(text: str) -> list[float]:
    shares = sorted({round(float(x), 4) for x in text.split(",") if x.strip()})
    if not shares or not all(0.0 <= s <= 1.0 for s in shares):
        raise SystemExit(f"--shares must be comma-separated numbers in [0, 1], got {text!r}")
    return shares


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
    parser.add_argument("--shares", default="0,0.1,0.2,0.25,0.3,0.5,0.75,1")
    parser.add_argument(
        "--prior-strength",
        type=float,
        default=None,
        help="Pseudo-documents of the EM prior smoothing (default: the monitor's).",
    )
    parser.add_argument("--same-set-hard", action="store_true")
    parser.add_argument("--docs", type=Path, default=None, help="Markdown file to update.")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    shares = parse_shares(args.shares)

    from textcat_kit.monitoring import MonitorSettings, compare, read_reference_profile
    from textcat_kit.monitoring.stats import realised_macro_f1
    from textcat_kit.serving.runtime import ClassifierRuntime

    t_start = time.perf_counter()
    shared = shared_data()
    runtime = ClassifierRuntime.load(args.model)
    profile = read_reference_profile(runtime.model_path or args.model)
    if profile.label_prior is None:
        raise SystemExit(
            f"{args.model}: the reference profile has no label_prior; rebuild it with "
            "`textcat-kit tune` (or `textcat-kit monitor-reference`) first"
        )
    labels = runtime.labels
    index = {label: j for j, label in enumerate(labels)}
    test_texts, test_labels = read_banking(shared / "banking77" / "test.csv")
    _, train_labels = read_banking(shared / "banking77" / "train.csv")
    gold = np.array([index[c] for c in test_labels])
    ood_texts = read_goemotions(shared / "goemotions" / "test.tsv", args.n_goemotions)
    probs, decided = run_outputs(runtime, test_texts)
    ood_probs, ood_decided = run_outputs(runtime, ood_texts)
    gold_matrix = np.zeros(probs.shape, dtype=bool)
    gold_matrix[np.arange(len(gold)), gold] = True
    correct = probs.argmax(axis=1) == gold

    n_labels = len(labels)
    train_prior = np.bincount([index[c] for c in train_labels], minlength=n_labels)
    train_prior = train_prior / train_prior.sum()
    test_prior = np.bincount(gold, minlength=n_labels) / len(gold)
    rng = np.random.default_rng(args.seed)

    def reweighted(pool: np.ndarray) -> np.ndarray:
        """Sampling weights over test docs: ``pool`` docs at the training label prior."""
        w = np.where(pool, train_prior[gold] / test_prior[gold], 0.0)
        return w / w.sum()

    everything = np.ones(len(gold), dtype=bool)
    weights = reweighted(everything)
    shift_labels = rng.choice(n_labels, args.n_shift_labels, replace=False)
    selection = stratified_half(gold, rng)
    evaluation = ~selection
    # The labels the model gets most wrong, on the selection half; streams come from the
    # evaluation half.
    acc_sel = np.array([correct[selection & (gold == j)].mean() for j in range(n_labels)])
    hard_labels = np.argsort(acc_sel, kind="stable")[: args.n_shift_labels]
    acc_all = np.array([correct[gold == j].mean() for j in range(n_labels)])
    hard_same = np.argsort(acc_all, kind="stable")[: args.n_shift_labels]

    def uniform_over(mask: np.ndarray) -> np.ndarray:
        return mask / mask.sum()

    # kind -> (base weights, shift weights over test docs)
    kinds: dict[str, tuple[np.ndarray, np.ndarray | None]] = {
        "label_prior": (weights, uniform_over(np.isin(gold, shift_labels))),
        "label_prior_hard": (
            reweighted(evaluation),
            uniform_over(evaluation & np.isin(gold, hard_labels)),
        ),
        "dataset": (weights, None),
    }
    if args.same_set_hard:
        kinds["label_prior_hard_same"] = (weights, uniform_over(np.isin(gold, hard_same)))
    settings = MonitorSettings(n_draws=100)
    if args.prior_strength is not None:
        settings = MonitorSettings(n_draws=100, prior_strength=args.prior_strength)
    n = args.window

    def evaluate(idx: np.ndarray, ood_idx: np.ndarray) -> dict[str, Any]:
        p = np.concatenate([probs[idx], ood_probs[ood_idx]])
        d = np.concatenate([decided[idx], ood_decided[ood_idx]])
        g = np.concatenate([gold_matrix[idx], np.zeros((len(ood_idx), n_labels), dtype=bool)])
        report = compare(profile, p, d, settings)
        acc = report["figures"]["expected_accuracy"]
        f1 = report["figures"]["expected_macro_f1"]
        return {
            "alert": report["alert"],
            "alerts": report["alerts"],
            "expected_accuracy": acc["unadjusted"],
            "corrected_accuracy": acc["value"],
            "band": acc["band"],
            "true_accuracy": float(correct[idx].sum() / (len(idx) + len(ood_idx))),
            "expected_macro_f1": f1["unadjusted"],
            "corrected_macro_f1": f1["value"],
            "true_macro_f1": realised_macro_f1(d, g),
            "prior_distance": report["prior_shift"]["distance"],
            "em_iterations": report["prior_shift"]["n_iter"],
        }

    def step(kind: str, f: float) -> dict[str, Any]:
        runs = []
        base_w, shift_w = kinds.get(kind, (weights, None))
        for _ in range(args.resamples):
            n_shift = int(round(f * n))
            base = rng.choice(len(gold), n - n_shift, p=base_w)
            if shift_w is not None:
                extra = rng.choice(len(gold), n_shift, p=shift_w)
                runs.append(evaluate(np.concatenate([base, extra]), np.array([], dtype=int)))
            elif kind == "dataset":
                ood = rng.choice(len(ood_texts), n_shift, replace=False)
                runs.append(evaluate(base, ood))
            else:
                runs.append(evaluate(base, np.array([], dtype=int)))

        def col(name: str) -> np.ndarray:
            return np.array([r[name] for r in runs], dtype=float)

        true, before, after = (
            col("true_accuracy"),
            col("expected_accuracy"),
            col("corrected_accuracy"),
        )
        true_f1 = col("true_macro_f1")
        figures: dict[str, int] = {}
        for r in runs:
            for name in r["alerts"]:
                figures[name] = figures.get(name, 0) + 1
        return {
            "kind": kind,
            "shift": f,
            "alert_rate": float(np.mean([r["alert"] for r in runs])),
            "alerts_by_figure": figures,
            "true_accuracy": float(true.mean()),
            "expected_accuracy": float(before.mean()),
            "corrected_accuracy": float(after.mean()),
            "mean_abs_error": float(np.abs(before - true).mean()),
            "corrected_mean_abs_error": float(np.abs(after - true).mean()),
            "within_3pt": float((np.abs(before - true) <= 0.03).mean()),
            "corrected_within_3pt": float((np.abs(after - true) <= 0.03).mean()),
            "band_covers_truth": float(
                np.mean([r["band"][0] <= r["true_accuracy"] <= r["band"][1] for r in runs])
            ),
            "true_macro_f1": float(true_f1.mean()),
            "expected_macro_f1": float(col("expected_macro_f1").mean()),
            "corrected_macro_f1": float(col("corrected_macro_f1").mean()),
            "prior_distance": float(col("prior_distance").mean()),
            "em_iterations": float(col("em_iterations").mean()),
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
        "hard_labels_same_set": [labels[j] for j in hard_same],
        "settings": {
            "alpha": settings.alpha,
            "max_drop": settings.max_drop,
            "prior_strength": settings.prior_strength,
            "prior_max_iter": settings.prior_max_iter,
        },
        "steps": [],
    }
    in_dist = step("in_distribution", 0.0)
    results["in_distribution"] = in_dist
    print(
        f"in-distribution ({args.resamples} streams of {n}): false alarms "
        f"{in_dist['alert_rate'] * args.resamples:.0f}/{args.resamples} "
        f"{in_dist['alerts_by_figure']}; true acc {in_dist['true_accuracy']:.4f}, expected "
        f"{in_dist['expected_accuracy']:.4f} (CBPE) / {in_dist['corrected_accuracy']:.4f} "
        f"(prior-corrected; within 3 pt {in_dist['corrected_within_3pt']:.2f}, band covers "
        f"{in_dist['band_covers_truth']:.2f})",
        flush=True,
    )
    print(
        "| shift | share | alert rate | true acc | CBPE | corrected | "
        "corrected within 3 pt | true F1 | CBPE F1 | corrected F1 |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for kind in kinds:
        for f in shares:
            row = step(kind, f)
            results["steps"].append(row)
            print(
                f"| {kind} | {f:.2f} | {row['alert_rate']:.2f} | {row['true_accuracy']:.4f} | "
                f"{row['expected_accuracy']:.4f} | {row['corrected_accuracy']:.4f} | "
                f"{row['corrected_within_3pt']:.2f} | {row['true_macro_f1']:.4f} | "
                f"{row['expected_macro_f1']:.4f} | {row['corrected_macro_f1']:.4f} |",
                flush=True,
            )
    for kind in kinds:
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
    if args.docs is not None:
        update_docs(args.docs, results, argv)
        print(f"updated {args.docs}")


def markdown(results: dict[str, Any], argv: list[str]) -> str:
    """The validation tables for docs/monitoring.md."""
    ind = results["in_distribution"]
    r = results["resamples"]
    steps = results["steps"]
    zero = [row for row in steps if row["shift"] == 0.0] + [ind]
    n_streams = r * len(zero)
    n_alarms = round(sum(row["alert_rate"] * r for row in zero))
    counted: dict[str, int] = {}
    for row in zero:
        for name, count in row["alerts_by_figure"].items():
            counted[name] = counted.get(name, 0) + count
    alarm_figures = ", ".join(f"{name} {count}" for name, count in counted.items())
    lines = [
        "Generated by `python -m benchmarks monitor_validation "
        + " ".join(argv)
        + "` (figures also in `benchmarks/results/monitor_validation.json`).",
        "",
        f"Reference: {results['reference']['n_docs']} dev docs, expected accuracy "
        f"{results['reference']['expected_accuracy']:.4f} (cross-fitted), realised "
        f"{results['reference']['observed_accuracy']}. Streams of {results['window']} "
        f"predictions, {r} resamples per step; EM smoothing "
        f"{results['settings']['prior_strength']:g} pseudo-documents.",
        "",
        f"**In-distribution: {ind['alert_rate'] * r:.0f}/{r} false alarms**; true accuracy "
        f"{ind['true_accuracy']:.4f}, expected {ind['expected_accuracy']:.4f} (plain CBPE) and "
        f"{ind['corrected_accuracy']:.4f} (prior-corrected); {ind['corrected_within_3pt'] * r:.0f}"
        f"/{r} corrected estimates within ±3 points, the 95 % band held the true accuracy in "
        f"{ind['band_covers_truth'] * r:.0f}/{r}. The 0 % step of every shift below is "
        f"another in-distribution stream set: {n_alarms}/{n_streams} streams with an alert "
        f"over all of them ({alarm_figures or 'none'}).",
        "",
        "### Expected vs true accuracy under label-prior shift",
        "",
        "Mean over the streams of a step; *error* is corrected − true in points; *within ±3* "
        "counts the streams whose corrected estimate is within 3 points of their true accuracy.",
        "",
        "| shift towards | share | true acc | CBPE | prior-corrected | error (pt) | "
        "within ±3 | alert rate |",
        "|---|---|---|---|---|---|---|---|",
    ]
    prior_kinds = [k for k in KIND_NAMES if k.startswith("label_prior")]
    for kind in prior_kinds:
        for row in steps:
            if row["kind"] != kind or not _in_table(row["shift"]):
                continue
            lines.append(
                f"| {KIND_NAMES[kind]} | {row['shift']:.0%} | {row['true_accuracy']:.4f} | "
                f"{row['expected_accuracy']:.4f} | {row['corrected_accuracy']:.4f} | "
                f"{(row['corrected_accuracy'] - row['true_accuracy']) * 100:+.1f} | "
                f"{row['corrected_within_3pt'] * r:.0f}/{r} | {row['alert_rate']:.2f} |"
            )
    lines += [
        "",
        "### Expected vs true macro-F1",
        "",
        "Macro-F1 of the decisions (abstentions are no decision), over the labels that are "
        "decided or present in the gold labels of the stream.",
        "",
        "| shift towards | share | true macro-F1 | CBPE | prior-corrected |",
        "|---|---|---|---|---|",
    ]
    for kind in prior_kinds:
        for row in steps:
            if row["kind"] == kind and _in_table(row["shift"]):
                lines.append(
                    f"| {KIND_NAMES[kind]} | {row['shift']:.0%} | {row['true_macro_f1']:.4f} | "
                    f"{row['expected_macro_f1']:.4f} | {row['corrected_macro_f1']:.4f} |"
                )
    lines += [
        "",
        "### When the alert fires",
        "",
        "| shift | share | alert rate | figures alerting most (streams) | true acc | CBPE | "
        "prior-corrected |",
        "|---|---|---|---|---|---|---|",
    ]
    for kind in [*prior_kinds, "dataset"]:
        for row in steps:
            if row["kind"] != kind or row["shift"] == 0.0:
                continue
            top = sorted(row["alerts_by_figure"].items(), key=lambda kv: -kv[1])[:3]
            named = ", ".join(f"{name} {count}/{r}" for name, count in top) or "–"
            lines.append(
                f"| {KIND_NAMES[kind]} | {row['shift']:.0%} | {row['alert_rate']:.2f} | {named} | "
                f"{row['true_accuracy']:.4f} | {row['expected_accuracy']:.4f} | "
                f"{row['corrected_accuracy']:.4f} |"
            )
    lines.append("")
    for kind in [*prior_kinds, "dataset"]:
        if f"{kind}_fires_at" in results:
            at = results[f"{kind}_fires_at"]
            lines.append(
                f"* {KIND_NAMES[kind]}: alert in ≥ 95 % of streams from a "
                f"{'share of ' + format(at, '.0%') if at is not None else 'share not reached'}."
            )
    return "\n".join(lines) + "\n"


def _in_table(share: float) -> bool:
    return any(abs(share - s) < 1e-9 for s in TABLE_SHARES)


def update_docs(path: Path, results: dict[str, Any], argv: list[str]) -> None:
    """Replace the text between the markers of ``path`` with :func:`markdown`."""
    text = path.read_text(encoding="utf8")
    if START not in text or END not in text:
        raise SystemExit(f"{path} has no {START} ... {END} markers")
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    path.write_text(head + START + "\n" + markdown(results, argv) + END + tail, encoding="utf8")


if __name__ == "__main__":
    main()

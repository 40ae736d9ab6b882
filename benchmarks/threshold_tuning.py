"""Held-out macro-F1 of threshold strategies: fixed 0.5, global, naive per-label, tuned.

Thresholds are fitted on a tuning split and scored on a separate test split, which is the
only honest way to compare them (every strategy wins on the data it was fitted on).

* Synthetic scenarios (seconds): ``rare`` has 3 frequent and 9 rare labels of equal
  difficulty (the rare labels' per-label optimum is noise); ``mixed`` has 12 labels whose
  scores are miscalibrated differently, so per-label thresholds genuinely differ.
* ``--goemotions-dir DIR`` (about a minute on one core) adds GoEmotions dev -> test with a
  TF-IDF + one-vs-rest logistic regression baseline, a stand-in for a trained pipeline.

Run: ``python benchmarks/threshold_tuning.py --seeds 10 [--goemotions-dir assets/goemotions]``
"""

from __future__ import annotations

import csv
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import typer
from scipy.special import expit

from textcat_kit.maths.metrics import decide, prf_per_label
from textcat_kit.maths.thresholds import best_global_threshold, best_threshold, tune_thresholds

Split = tuple[np.ndarray, np.ndarray]


def rare_labels_problem(seed: int, n_tune: int = 3000, n_test: int = 20000) -> tuple[Split, Split]:
    """Calibrated scores; 3 frequent labels and 9 with ~15 tuning positives, equal difficulty."""
    rng = np.random.default_rng(seed)
    prevalence = np.array([0.2, 0.1, 0.05] + [0.005] * 9)
    prior = np.log(prevalence / (1 - prevalence))

    def sample(n_docs: int) -> Split:
        gold = rng.random((n_docs, prevalence.size)) < prevalence
        evidence = rng.normal(size=gold.shape) + 2.0 * gold
        return expit(prior + 2.0 * evidence - 2.0), gold.astype(float)

    return sample(n_tune), sample(n_test)


def mixed_labels_problem(seed: int, n_tune: int = 3000, n_test: int = 20000) -> tuple[Split, Split]:
    """12 labels (prevalence 25% .. 0.3%) with per-label separability and miscalibration."""
    rng = np.random.default_rng(seed)
    prevalence = np.array(
        [0.25, 0.15, 0.1, 0.08, 0.05, 0.03, 0.02, 0.01, 0.006, 0.004, 0.004, 0.003]
    )
    separation = rng.uniform(1.0, 3.0, prevalence.size)
    slope = np.exp(rng.uniform(-0.5, 0.5, prevalence.size))
    shift = rng.uniform(-1.0, 1.0, prevalence.size)
    prior = np.log(prevalence / (1 - prevalence))

    def sample(n_docs: int) -> Split:
        gold = rng.random((n_docs, prevalence.size)) < prevalence
        evidence = rng.normal(size=gold.shape) + separation * gold
        posterior_logit = prior + separation * evidence - separation**2 / 2
        return expit(slope * posterior_logit + shift), gold.astype(float)

    return sample(n_tune), sample(n_test)


def read_goemotions(path: Path, n_labels: int = 28) -> tuple[list[str], np.ndarray]:
    """Texts and multi-hot gold of a GoEmotions TSV (text, comma-separated ids, comment id)."""
    texts, rows = [], []
    with path.open(encoding="utf-8", newline="") as handle:
        for row in csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE):
            gold = np.zeros(n_labels)
            gold[[int(i) for i in row[1].split(",")]] = 1.0
            texts.append(row[0])
            rows.append(gold)
    return texts, np.array(rows)


def goemotions_problem(data_dir: Path) -> tuple[Split, Split]:
    """Dev and test probabilities of a TF-IDF + logistic regression model trained on train."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    (train_x, train_y), (dev_x, dev_y), (test_x, test_y) = (
        read_goemotions(data_dir / f"{split}.tsv") for split in ("train", "dev", "test")
    )
    vectorizer = TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True)
    train_m = vectorizer.fit_transform(train_x)
    dev_m, test_m = vectorizer.transform(dev_x), vectorizer.transform(test_x)
    dev_p, test_p = np.zeros_like(dev_y), np.zeros_like(test_y)
    for j in range(train_y.shape[1]):
        model = LogisticRegression(C=4.0, solver="liblinear").fit(train_m, train_y[:, j])
        dev_p[:, j] = model.predict_proba(dev_m)[:, 1]
        test_p[:, j] = model.predict_proba(test_m)[:, 1]
    return (dev_p, dev_y), (test_p, test_y)


def strategies(tune: Split, seed: int) -> dict[str, np.ndarray | float]:
    """Thresholds of each strategy, fitted on the tuning split only."""
    probs, gold = tune
    labels = [str(j) for j in range(probs.shape[1])]
    naive = [best_threshold(probs[:, j], gold[:, j]).threshold for j in range(probs.shape[1])]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tuned = tune_thresholds(probs, gold, labels, seed=seed)
    return {
        "fixed 0.5": 0.5,
        "global (grid)": best_global_threshold(probs, gold),
        "naive per-label": np.array(naive),
        "tuned (default)": tuned.as_array(labels),
    }


def evaluate(make: Callable[[int], tuple[Split, Split]], seeds: range) -> dict[str, list[float]]:
    scores: dict[str, list[float]] = {}
    for seed in seeds:
        tune, (test_probs, test_gold) = make(seed)
        for name, thresholds in strategies(tune, seed).items():
            macro_f = prf_per_label(decide(test_probs, thresholds), test_gold).macro_f
            scores.setdefault(name, []).append(macro_f)
    return scores


def print_table(title: str, scores: dict[str, list[float]]) -> None:
    naive = np.array(scores["naive per-label"])
    print(f"\n{title} ({len(naive)} run(s)): held-out macro-F1")
    print(f"{'strategy':18s} {'mean':>7s} {'vs naive':>9s} {'wins':>5s}")
    for name, values in scores.items():
        diff = np.array(values) - naive
        print(f"{name:18s} {np.mean(values):7.4f} {diff.mean():+9.4f} {int((diff > 0).sum()):5d}")


def main(
    seeds: int = typer.Option(10, help="Synthetic repetitions per scenario."),
    goemotions_dir: Path | None = typer.Option(None, help="Folder with GoEmotions TSVs."),
) -> None:
    print_table(
        "rare: 9 rare labels of equal difficulty", evaluate(rare_labels_problem, range(seeds))
    )
    print_table("mixed: per-label miscalibration", evaluate(mixed_labels_problem, range(seeds)))
    if goemotions_dir is not None:
        problem = goemotions_problem(goemotions_dir)
        print_table("GoEmotions dev -> test, TF-IDF + LR", evaluate(lambda _: problem, range(1)))


if __name__ == "__main__":
    typer.run(main)

"""Quality and speed of the bow pipeline (train -> tune) against TF-IDF + logistic regression.

``python -m benchmarks compare CORPUS_DIR --name banking77`` reads ``train/dev/test.spacy``
from ``CORPUS_DIR`` (what ``textcat-kit corpus`` writes), then

* ``bow``: ``spacy train`` with ``--config`` (default ``configs/textcat_bow.cfg``, or the
  multi-label one), ``textcat-kit tune`` on dev, predicted on test with ``nlp.pipe``;
* ``tfidf_lr``: scikit-learn's ``TfidfVectorizer(sublinear_tf=True, ngram_range=(1, 2))``
  and logistic regression (one-vs-rest for multi-label), ``C`` chosen on dev.

Both are scored on test by the package's own metrics (:mod:`textcat_kit.maths.metrics`):
accuracy and macro-F1 of the argmax (exclusive) or at 0.5 (multi-label), the pipeline's
own decisions for bow (abstention / tuned thresholds), top-label ECE (15 equal-width
bins, as ``textcat-kit evaluate``), macro AUC, training seconds and docs/s of prediction.
Writes ``benchmarks/results/compare_<name>.json``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import numpy as np

from ._common import REPO_ROOT, write_results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks compare", description=__doc__)
    parser.add_argument("corpus", type=Path, help="directory with train/dev/test.spacy")
    parser.add_argument("--name", required=True, help="results name, e.g. banking77")
    parser.add_argument("--config", type=Path, default=None, help="bow config (by task)")
    parser.add_argument("--work-dir", type=Path, default=Path("training/bench"))
    parser.add_argument("--systems", default="bow,tfidf_lr")
    parser.add_argument("--max-epochs", type=int, default=None, help="override (smoke tests)")
    args = parser.parse_args(argv)

    import spacy
    from spacy.tokens import DocBin

    from textcat_kit.evaluation import cats_matrix

    nlp = spacy.blank("en")
    splits = {
        s: list(DocBin().from_disk(args.corpus / f"{s}.spacy").get_docs(nlp.vocab))
        for s in ("train", "dev", "test")
    }
    labels = sorted({label for doc in splits["train"] for label in doc.cats})
    gold = {s: cats_matrix(docs, labels) for s, docs in splits.items()}
    exclusive = bool(np.all(gold["train"].sum(axis=1) == 1))
    texts = {s: [doc.text for doc in docs] for s, docs in splits.items()}
    work = args.work_dir / args.name
    results: dict[str, Any] = {
        "corpus": str(args.corpus),
        "labels": len(labels),
        "task": "exclusive" if exclusive else "multilabel",
        "n_docs": {s: len(d) for s, d in splits.items()},
        "systems": {},
    }
    for system in args.systems.split(","):
        run = {"bow": _bow, "tfidf_lr": _tfidf_lr}[system]
        probs, decided, seconds, docs_per_second = run(args, work, texts, gold, labels, exclusive)
        results["systems"][system] = {
            **_scores(probs, decided, gold["test"], exclusive),
            "train_seconds": round(seconds, 1),
            "docs_per_second": round(docs_per_second),
        }
    header = (
        f"{'system':10s} {'macro-F1':>9s} {'decided F1':>10s} {'ECE':>7s} {'AUC':>7s} "
        f"{'train s':>8s} {'docs/s':>8s}"
    )
    print(header)
    for system, row in results["systems"].items():
        print(
            f"{system:10s} {row['macro_f']:9.4f} {row['decided_macro_f']:10.4f} "
            f"{row['top_label_ece']:7.4f} {row['macro_auc']:7.4f} {row['train_seconds']:8.1f} "
            f"{row['docs_per_second']:8d}"
        )
    command = ["python -m benchmarks compare", *(argv if argv is not None else [])]
    print(f"wrote {write_results(f'compare_{args.name}', results, command)}")


def _scores(
    probs: np.ndarray, decided: np.ndarray, gold: np.ndarray, exclusive: bool
) -> dict[str, float]:
    from textcat_kit.maths import metrics

    if exclusive:
        plain = np.zeros_like(probs)
        plain[np.arange(len(probs)), probs.argmax(axis=1)] = 1.0
    else:
        plain = metrics.decide(probs, 0.5)
    chosen = metrics.prf_per_label(decided, gold)
    scores = {
        "macro_f": metrics.prf_per_label(plain, gold).macro_f,
        "decided_macro_f": chosen.macro_f,
        "coverage": float((decided.sum(axis=1) > 0).mean()),
        "top_label_ece": metrics.top_label_ece(probs, gold, n_bins=15, strategy="uniform"),
        "macro_auc": metrics.macro_auc(probs, gold),
    }
    if exclusive:
        scores["accuracy"] = metrics.accuracy(probs, gold)
    return {key: round(float(value), 4) for key, value in scores.items()}


def _bow(
    args: argparse.Namespace,
    work: Path,
    texts: dict[str, list[str]],
    gold: dict[str, np.ndarray],
    labels: list[str],
    exclusive: bool,
) -> tuple[np.ndarray, np.ndarray, float, float]:
    import spacy
    from spacy.cli.train import train

    from textcat_kit.evaluation import cats_matrix
    from textcat_kit.tuning import tune_pipeline

    default = "textcat_bow.cfg" if exclusive else "textcat_multilabel_bow.cfg"
    config = args.config or REPO_ROOT / "configs" / default
    overrides: dict[str, Any] = {
        "paths.train": str(args.corpus / "train.spacy"),
        "paths.dev": str(args.corpus / "dev.spacy"),
    }
    if args.max_epochs is not None:
        overrides["training.max_epochs"] = args.max_epochs
    start = time.perf_counter()
    train(config, work / "bow", overrides=overrides)
    tune_pipeline(
        work / "bow" / "model-best",
        args.corpus / "dev.spacy",
        work / "bow" / "model-tuned",
        overwrite=True,
    )
    seconds = time.perf_counter() - start
    nlp = spacy.load(work / "bow" / "model-tuned")
    start = time.perf_counter()
    docs = list(nlp.pipe(texts["test"], batch_size=1000))
    docs_per_second = len(docs) / (time.perf_counter() - start)
    decided = np.array(
        [[label in (doc._.decided_labels or []) for label in labels] for doc in docs],
        dtype=np.float64,
    )
    return cats_matrix(docs, labels), decided, seconds, docs_per_second


def _tfidf_lr(
    args: argparse.Namespace,
    work: Path,
    texts: dict[str, list[str]],
    gold: dict[str, np.ndarray],
    labels: list[str],
    exclusive: bool,
) -> tuple[np.ndarray, np.ndarray, float, float]:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.multiclass import OneVsRestClassifier

    from textcat_kit.maths import metrics

    start = time.perf_counter()
    vectorizer = TfidfVectorizer(sublinear_tf=True, ngram_range=(1, 2), min_df=1)
    x_train = vectorizer.fit_transform(texts["train"])
    x_dev = vectorizer.transform(texts["dev"])

    def fit(c: float) -> Any:
        if exclusive:
            return LogisticRegression(C=c, max_iter=2000).fit(x_train, gold["train"].argmax(1))
        return OneVsRestClassifier(LogisticRegression(C=c, max_iter=2000)).fit(
            x_train, gold["train"] >= 0.5
        )

    def predict(model: Any, x: Any) -> np.ndarray:
        """Probabilities in ``labels`` order (a class absent from train scores 0)."""
        probs = np.zeros((x.shape[0], len(labels)))
        probs[:, model.classes_ if exclusive else slice(None)] = model.predict_proba(x)
        return probs

    def dev_f1(model: Any) -> float:
        probs = predict(model, x_dev)
        return _scores(probs, metrics.decide(probs, 0.5), gold["dev"], exclusive)["macro_f"]

    model = max((fit(c) for c in (1.0, 10.0, 100.0)), key=dev_f1)
    seconds = time.perf_counter() - start
    start = time.perf_counter()
    probs = predict(model, vectorizer.transform(texts["test"]))
    docs_per_second = len(probs) / (time.perf_counter() - start)
    if exclusive:
        decided = np.zeros_like(probs)
        decided[np.arange(len(probs)), probs.argmax(axis=1)] = 1.0
    else:
        decided = metrics.decide(probs, 0.5)
    return np.asarray(probs, dtype=np.float64), decided, seconds, docs_per_second

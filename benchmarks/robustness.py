"""Robustness benchmark: do the shipped bow defaults hold on data nobody tuned them on?

Tasks are derived from Banking77 and GoEmotions (``../shared/data`` or ``--data-dir``) so that
they cover what users bring: a skewed binary one-vs-rest task with short texts, few-shot
classes, coarse merged classes, a 1:20 imbalanced multi-class set, long texts made of several
joined examples, multi-label sets with many labels under 10 examples (short and long docs), and
the full sets. For each task and seed the bag-of-words model is trained through
:func:`textcat_kit.training.train_textcat` (the code path of ``textcat-kit train``: same
config choice, same data-scaled schedule and learning rate), and TF-IDF + LogisticRegression
(word 1-2-grams, sublinear tf; ``C`` chosen on dev; one-vs-rest for multi-label) is fitted in
the same run on the same splits.

Reported per task (mean over seeds): test macro-F1 of both systems (exclusive: argmax;
multi-label: one global threshold per system chosen on dev for macro-F1), the difference, and
for multi-label tasks macro ROC AUC; collapsed runs (the model predicts one class, or the same
label set, for every test doc) and runs :func:`textcat_kit.diagnostics.diagnose` calls
degenerate. Must hold: bow >= LR - 0.5 point of macro-F1 on every task, no collapsed run,
multi-label macro AUC within 0.02 of LR.

Run (from the repository root; ~30-40 min on 2 busy cores)::

    nice -n 10 python -m benchmarks.robustness run
    python -m benchmarks.robustness report      # table -> docs/robustness.md from the JSON

``run --tasks b77-binary,goemo-rare --seeds 0`` runs a subset; ``--resume`` keeps runs
already in the results file. Results: ``benchmarks/results/robustness.json``.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import contextlib  # noqa: E402
import csv  # noqa: E402
import json  # noqa: E402
import random  # noqa: E402
import shutil  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable, Sequence  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA = ROOT.parent / "shared" / "data"
RESULTS = ROOT / "benchmarks" / "results" / "robustness.json"
DOC = ROOT / "docs" / "robustness.md"
C_GRID = (1.0, 4.0, 16.0, 64.0, 256.0)
C_GRID_LARGE = (4.0, 16.0, 64.0)
F1_MARGIN = 0.005
AUC_MARGIN = 0.02

Example = tuple[str, list[str]]


@dataclass
class Task:
    name: str
    description: str
    exclusive: bool
    labels: list[str]
    train: list[Example]
    dev: list[Example]
    test: list[Example]


# --- data --------------------------------------------------------------------------------------


def load_banking77(data_dir: Path) -> tuple[list[Example], list[Example]]:
    def read(name: str) -> list[Example]:
        with open(data_dir / "banking77" / name, newline="", encoding="utf8") as f:
            rows = list(csv.DictReader(f))
        return [(r["text"].strip(), [r["category"]]) for r in rows]

    return read("train.csv"), read("test.csv")


def load_goemotions(data_dir: Path) -> tuple[list[Example], list[Example], list[Example]]:
    names = (data_dir / "goemotions" / "emotions.txt").read_text(encoding="utf8").split()

    def read(name: str) -> list[Example]:
        with open(data_dir / "goemotions" / name, newline="", encoding="utf8") as f:
            return [
                (row[0], [names[int(i)] for i in row[1].split(",")])
                for row in csv.reader(f, delimiter="\t")
            ]

    return read("train.tsv"), read("dev.tsv"), read("test.tsv")


def _labels_of(*splits: Sequence[Example]) -> list[str]:
    return sorted({label for split in splits for _, labels in split for label in labels})


def _by_label(examples: Sequence[Example]) -> dict[str, list[Example]]:
    out: dict[str, list[Example]] = {}
    for example in examples:
        out.setdefault(example[1][0], []).append(example)
    return out


def _sample(rng: random.Random, items: Sequence[Any], n: int) -> list[Any]:
    return rng.sample(list(items), min(n, len(items)))


def coarse_banking77(intent: str) -> str:
    """Six coarse groups of the 77 Banking77 intents, by the words in the intent name."""
    rules = (
        ("top_up", "top_up"),
        ("transfer", "transfer"),
        ("exchange", "currency"),
        ("currenc", "currency"),
        ("fiat", "currency"),
        ("cash", "cash"),
        ("atm", "cash"),
        ("card", "card"),
        ("pin", "card"),
        ("contactless", "card"),
    )
    for word, group in rules:
        if word in intent:
            return group
    return "account"


class Builder:
    """Builds every task from the two data sets for a given seed."""

    def __init__(self, data_dir: Path) -> None:
        self.b77_train, self.b77_test = load_banking77(data_dir)
        self.ge_train, self.ge_dev, self.ge_test = load_goemotions(data_dir)

    def _b77_split(self, rng: random.Random, n_train: int, n_dev: int) -> tuple[list, list]:
        pool = list(self.b77_train)
        rng.shuffle(pool)
        return pool[:n_train], pool[n_train : n_train + n_dev]

    def b77_binary(self, seed: int) -> Task:
        rng = random.Random(1000 + seed)
        intents = _labels_of(self.b77_train)
        positive = set(rng.sample(intents, 8))

        def relabel(split: Sequence[Example]) -> list[Example]:
            return [(t, ["positive" if ls[0] in positive else "other"]) for t, ls in split]

        train, dev = self._b77_split(rng, 3000, 600)
        test = _sample(rng, self.b77_test, 1200)
        return Task(
            "b77-binary",
            "Banking77, 8 random intents vs the rest (~10% positive), 3,000 train",
            True,
            ["positive", "other"],
            relabel(train),
            relabel(dev),
            relabel(test),
        )

    def b77_fewshot(self, seed: int) -> Task:
        rng = random.Random(2000 + seed)
        train, dev = [], []
        for _label, examples in sorted(_by_label(self.b77_train).items()):
            picked = _sample(rng, examples, 30)
            train += picked[:20]
            dev += picked[20:]
        test = _sample(rng, self.b77_test, 1540)
        return Task(
            "b77-fewshot",
            "Banking77, 20 train / 10 dev texts per class (77 classes)",
            True,
            _labels_of(self.b77_train),
            train,
            dev,
            test,
        )

    def b77_coarse(self, seed: int) -> Task:
        rng = random.Random(3000 + seed)

        def relabel(split: Sequence[Example]) -> list[Example]:
            return [(t, [coarse_banking77(ls[0])]) for t, ls in split]

        train, dev = self._b77_split(rng, 3000, 600)
        test = _sample(rng, self.b77_test, 1200)
        return Task(
            "b77-coarse",
            "Banking77 merged into 6 coarse classes (card, transfer, top_up, cash, currency, "
            "account), 3,000 train",
            True,
            sorted({coarse_banking77(label) for label in _labels_of(self.b77_train)}),
            relabel(train),
            relabel(dev),
            relabel(test),
        )

    def b77_imbalanced(self, seed: int) -> Task:
        rng = random.Random(4000 + seed)
        by_label = _by_label(self.b77_train)
        intents = rng.sample(sorted(by_label), 20)
        # geometric counts from 120 down to 6 per class: 1:20
        counts = [round(120 * (6 / 120) ** (i / 19)) for i in range(20)]
        train, dev = [], []
        for intent, n in zip(intents, counts, strict=True):
            picked = _sample(rng, by_label[intent], n + max(2, n // 5))
            train += picked[:n]
            dev += picked[n:]
        test = [ex for ex in self.b77_test if ex[1][0] in set(intents)]
        return Task(
            "b77-imbalanced",
            "Banking77, 20 intents with 120 down to 6 train texts each (1:20), balanced test",
            True,
            sorted(intents),
            train,
            dev,
            test,
        )

    def _long_docs(
        self, rng: random.Random, pool: dict[str, list[Example]], n_docs: int, labels: list[str]
    ) -> list[Example]:
        docs = []
        for _ in range(n_docs):
            label = rng.choice(labels)
            k = rng.randint(2, 5)
            parts = [rng.choice(pool[label])[0] for _ in range(k)]
            other = rng.choice(labels)
            parts.insert(rng.randrange(k + 1), rng.choice(pool[other])[0])
            docs.append((" ".join(parts), [label]))
        return docs

    def b77_long(self, seed: int) -> Task:
        rng = random.Random(5000 + seed)
        pool = list(self.b77_train)
        rng.shuffle(pool)
        train_pool, dev_pool = _by_label(pool[:8000]), _by_label(pool[8000:])
        test_pool = _by_label(self.b77_test)
        labels = sorted(train_pool)
        return Task(
            "b77-long",
            "Banking77, docs of 2-5 texts of one intent plus one distractor text of a random "
            "intent (77 classes), 1,500 train docs",
            True,
            labels,
            self._long_docs(rng, train_pool, 1500, labels),
            self._long_docs(rng, dev_pool, 400, labels),
            self._long_docs(rng, test_pool, 800, labels),
        )

    def _multi_long_docs(
        self,
        rng: random.Random,
        pool: dict[str, list[Example]],
        n_docs: int,
        labels: list[str],
        weights: list[float],
    ) -> list[Example]:
        docs = []
        for _ in range(n_docs):
            n_labels = rng.choice((1, 1, 2, 2, 3))
            chosen: list[str] = []
            while len(chosen) < n_labels:
                label = rng.choices(labels, weights)[0]
                if label not in chosen:
                    chosen.append(label)
            parts = [rng.choice(pool[label])[0] for label in chosen for _ in range(2)]
            rng.shuffle(parts)
            docs.append((" ".join(parts), sorted(chosen)))
        return docs

    def b77_multilabel_long(self, seed: int) -> Task:
        rng = random.Random(6000 + seed)
        pool = list(self.b77_train)
        rng.shuffle(pool)
        train_pool, dev_pool = _by_label(pool[:8000]), _by_label(pool[8000:])
        test_pool = _by_label(self.b77_test)
        # 40 of the intents (one-vs-rest over 77 labels costs twice the time on 2 cores)
        labels = sorted(rng.sample(sorted(train_pool), 40))
        order = labels[:]
        rng.shuffle(order)
        # Zipf-like label frequencies: a few common topics, many labels under 10 docs
        weights = [1.0 / (rank + 1) ** 1.6 for rank in range(len(order))]
        return Task(
            "b77-multilabel-long",
            "Banking77 multi-label: docs joining 2 texts each of 1-3 of 40 intents drawn with "
            "Zipf frequencies (many labels under 10 train docs), 1,200 train docs",
            False,
            labels,
            self._multi_long_docs(rng, train_pool, 1200, order, weights),
            self._multi_long_docs(rng, dev_pool, 500, order, weights),
            self._multi_long_docs(rng, test_pool, 1500, order, weights),
        )

    def goemo_rare(self, seed: int) -> Task:
        rng = random.Random(7000 + seed)
        return Task(
            "goemo-rare",
            "GoEmotions multi-label, 1,500 random train comments (28 labels, several under 10 "
            "examples)",
            False,
            _labels_of(self.ge_train),
            _sample(rng, self.ge_train, 1500),
            _sample(rng, self.ge_dev, 1000),
            _sample(rng, self.ge_test, 2500),
        )

    def b77_full(self, seed: int) -> Task:
        rng = random.Random(8000)  # one split for every seed: only training varies
        pool = list(self.b77_train)
        rng.shuffle(pool)
        return Task(
            "b77-full",
            "Banking77 full: 9,003 train / 1,000 dev (from train) / 3,080 test",
            True,
            _labels_of(self.b77_train),
            pool[1000:],
            pool[:1000],
            list(self.b77_test),
        )

    def goemo_full(self, seed: int) -> Task:
        rng = random.Random(9000)  # one split for every seed: only training varies
        return Task(
            "goemo-full",
            "GoEmotions full train (43,410) / official dev (2,000 sampled) / test (3,000 sampled)",
            False,
            _labels_of(self.ge_train),
            list(self.ge_train),
            _sample(rng, self.ge_dev, 2000),
            _sample(rng, self.ge_test, 3000),
        )


TASKS: dict[str, Callable[[Builder, int], Task]] = {
    "b77-binary": Builder.b77_binary,
    "b77-fewshot": Builder.b77_fewshot,
    "b77-coarse": Builder.b77_coarse,
    "b77-imbalanced": Builder.b77_imbalanced,
    "b77-long": Builder.b77_long,
    "b77-multilabel-long": Builder.b77_multilabel_long,
    "goemo-rare": Builder.goemo_rare,
    "b77-full": Builder.b77_full,
    "goemo-full": Builder.goemo_full,
}
FIXED_SPLIT = {"b77-full", "goemo-full"}


# --- metrics -----------------------------------------------------------------------------------


def gold_matrix(examples: Sequence[Example], labels: Sequence[str]) -> np.ndarray:
    index = {label: i for i, label in enumerate(labels)}
    gold = np.zeros((len(examples), len(labels)), dtype=bool)
    for row, (_, example_labels) in enumerate(examples):
        for label in example_labels:
            gold[row, index[label]] = True
    return gold


def macro_f1(decided: np.ndarray, gold: np.ndarray) -> float:
    """Macro-F1 over the labels with at least one gold positive."""
    present = gold.sum(axis=0) > 0
    tp = (decided & gold).sum(axis=0)
    fp = (decided & ~gold).sum(axis=0)
    fn = (~decided & gold).sum(axis=0)
    denom = 2 * tp + fp + fn
    f1 = np.where(denom > 0, 2 * tp / np.maximum(denom, 1), 0.0)
    return float(f1[present].mean())


def macro_auc(scores: np.ndarray, gold: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    aucs = [
        roc_auc_score(gold[:, j], scores[:, j])
        for j in range(gold.shape[1])
        if 0 < gold[:, j].sum() < len(gold)
    ]
    return float(np.mean(aucs))


def decide(scores: np.ndarray, exclusive: bool, threshold: float = 0.5) -> np.ndarray:
    if exclusive:
        decided = np.zeros(scores.shape, dtype=bool)
        decided[np.arange(len(scores)), scores.argmax(axis=1)] = True
        return decided
    return scores >= threshold


def best_threshold(scores: np.ndarray, gold: np.ndarray) -> float:
    """The global threshold with the best dev macro-F1 (multi-label)."""
    grid = np.linspace(0.02, 0.9, 45)
    values = [macro_f1(scores >= t, gold) for t in grid]
    return float(grid[int(np.argmax(values))])


def collapsed(decided: np.ndarray) -> bool:
    """Every doc gets the same decision (one class / one label set) although gold varies."""
    return len({row.tobytes() for row in decided}) <= 1


def score_system(
    task: Task, dev_scores: np.ndarray, test_scores: np.ndarray, **extra: Any
) -> dict[str, Any]:
    from textcat_kit.diagnostics import diagnose

    dev_gold = gold_matrix(task.dev, task.labels)
    test_gold = gold_matrix(task.test, task.labels)
    threshold = 0.5 if task.exclusive else best_threshold(dev_scores, dev_gold)
    decided = decide(test_scores, task.exclusive, threshold)
    diagnosis = diagnose(
        test_scores, test_gold, task.labels, task.exclusive, decisions=decided, where="test"
    )
    out = {
        "macro_f1": macro_f1(decided, test_gold),
        "collapsed": collapsed(decided),
        "degenerate": bool(diagnosis.degenerate),
        "n_predicted_classes": int(decided.any(axis=0).sum()),
        **extra,
    }
    if not task.exclusive:
        out["macro_auc"] = macro_auc(test_scores, test_gold)
        out["threshold"] = threshold
    return out


# --- systems -----------------------------------------------------------------------------------


def write_corpus(task: Task, directory: Path) -> None:
    import spacy
    from spacy.tokens import DocBin

    nlp = spacy.blank("en")
    directory.mkdir(parents=True, exist_ok=True)
    for split_name, split in (("train", task.train), ("dev", task.dev), ("test", task.test)):
        db = DocBin(store_user_data=False)
        for text, labels in split:
            doc = nlp.make_doc(text)
            doc.cats = {label: float(label in labels) for label in task.labels}
            db.add(doc)
        db.to_disk(directory / f"{split_name}.spacy")
    meta = {"dataset": task.name, "labels": task.labels, "multilabel": not task.exclusive}
    (directory / "data.json").write_text(json.dumps(meta), encoding="utf8")


def run_bow(task: Task, seed: int, workdir: Path, configs_dir: Path) -> dict[str, Any]:
    """Train through ``textcat-kit train``'s code path; scores on dev and test."""
    from textcat_kit.training import predict_split, train_textcat

    corpus = workdir / "corpus"
    write_corpus(task, corpus)
    log_path = workdir / "train.log"
    start = time.perf_counter()
    with open(log_path, "w", encoding="utf8") as log, contextlib.redirect_stdout(log):
        result = train_textcat(
            corpus,
            workdir / "training",
            variant="bow",
            configs_dir=configs_dir,
            seed=seed,
            overwrite=True,
            log=log,
        )
    train_s = time.perf_counter() - start
    model = workdir / "training" / "model-best"
    dev_scores, _ = predict_split(model, corpus / "dev.spacy", task.labels)
    test_scores, _ = predict_split(model, corpus / "test.spacy", task.labels)
    schedule = result.schedule
    return score_system(
        task,
        dev_scores,
        test_scores,
        train_s=round(train_s, 1),
        config=os.path.relpath(result.config_path, ROOT),
        learn_rate=schedule.learn_rate,
        batch_size=schedule.batch_size,
        selected=result.selection.get("model", "model-best"),
        max_epochs=schedule.max_epochs,
        eval_frequency=schedule.eval_frequency,
        patience=schedule.patience,
    )


def run_tfidf_lr(task: Task) -> dict[str, Any]:
    """TF-IDF (word 1-2-grams, sublinear tf) + LogisticRegression, C chosen on dev macro-F1."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    start = time.perf_counter()
    vectorizer = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True)
    x_train = vectorizer.fit_transform([t for t, _ in task.train])
    x_dev = vectorizer.transform([t for t, _ in task.dev])
    x_test = vectorizer.transform([t for t, _ in task.test])
    train_gold = gold_matrix(task.train, task.labels)
    dev_gold = gold_matrix(task.dev, task.labels)

    def fit_predict(c: float) -> tuple[np.ndarray, np.ndarray]:
        if task.exclusive:
            y = train_gold.argmax(axis=1)
            model = LogisticRegression(C=c, max_iter=1000).fit(x_train, y)
            dev_s = np.zeros((x_dev.shape[0], len(task.labels)))
            test_s = np.zeros((x_test.shape[0], len(task.labels)))
            dev_s[:, model.classes_] = model.predict_proba(x_dev)
            test_s[:, model.classes_] = model.predict_proba(x_test)
            return dev_s, test_s
        dev_s = np.zeros((x_dev.shape[0], len(task.labels)))
        test_s = np.zeros((x_test.shape[0], len(task.labels)))
        for j in range(len(task.labels)):
            y = train_gold[:, j]
            if y.all() or not y.any():
                dev_s[:, j] = test_s[:, j] = float(y.mean())
                continue
            model = LogisticRegression(C=c, solver="liblinear").fit(x_train, y)
            dev_s[:, j] = model.predict_proba(x_dev)[:, 1]
            test_s[:, j] = model.predict_proba(x_test)[:, 1]
        return dev_s, test_s

    by_c: dict[str, float] = {}
    best: tuple[float, float, np.ndarray, np.ndarray] | None = None
    # one-vs-rest on tens of thousands of docs: the middle of the grid (time on 2 cores)
    grid = C_GRID_LARGE if len(task.train) > 20_000 else C_GRID
    for c in grid:
        dev_s, test_s = fit_predict(c)
        threshold = 0.5 if task.exclusive else best_threshold(dev_s, dev_gold)
        value = macro_f1(decide(dev_s, task.exclusive, threshold), dev_gold)
        by_c[str(c)] = round(value, 4)
        if best is None or value > best[0]:
            best = (value, c, dev_s, test_s)
    assert best is not None
    return score_system(
        task,
        best[2],
        best[3],
        train_s=round(time.perf_counter() - start, 1),
        C=best[1],
        dev_macro_f1_by_C=by_c,
    )


# --- why a fixed learning rate collapses a skewed binary task ----------------------------------


def _initialized_bow(task: Any, length: int, loss: dict[str, Any]) -> tuple[Any, Any, list[Any]]:
    """A blank English pipeline with the exclusive tfidf bow classifier of
    configs/textcat_bow.cfg (``length`` buckets, ``loss``), initialised on ``task.train``;
    returns (nlp, the classifier, the training examples)."""
    import spacy
    from spacy.training import Example as SpacyExample

    nlp = spacy.blank("en")
    textcat = nlp.add_pipe(
        "textcat_kit_textcat",
        name="textcat",
        config={
            "model": {
                "@architectures": "textcat_kit.TextCatBOW.v1",
                "exclusive_classes": True,
                "ngram_size": 2,
                "no_output_layer": False,
                "length": length,
                "attr": "LOWER",
                "feature_values": "tfidf",
            },
            "loss": loss,
        },
    )
    examples = [
        SpacyExample.from_dict(
            nlp.make_doc(text), {"cats": {lb: float(lb in labels) for lb in task.labels}}
        )
        for text, labels in task.train
    ]
    nlp.initialize(lambda: examples)
    return nlp, textcat, examples


def why_collapse(args: argparse.Namespace) -> None:
    """Train the exclusive bow config on b77-binary (seed 0) at learning rate 1.0 and at the
    rate ``textcat-kit train`` computes, with the unweighted loss, printing the two biases
    after the first updates and the share of dev docs predicted positive after each epoch."""
    from thinc.api import SGD

    from textcat_kit.training import sgd_learn_rate

    lines: list[str] = []

    def say(line: str) -> None:
        print(line, flush=True)
        lines.append(line)

    task = Builder(args.data_dir).b77_binary(0)
    counts = gold_matrix(task.train, task.labels).sum(axis=0)
    auto_rate, reason = sgd_learn_rate(counts, len(task.train), 64, exclusive=True)
    for rate in (1.0, auto_rate):
        loss = {"@misc": "textcat_kit.CrossEntropyLoss.v1"}
        nlp, textcat, examples = _initialized_bow(task, 65536, loss)
        # as in configs/textcat_bow.cfg: no gradient clipping, no L2
        optimizer = SGD(rate, use_averages=True, L2=0.0, grad_clip=0.0, L2_is_weight_decay=True)
        linear = next(n for n in textcat.model.walk() if n.name.startswith("sparse_linear"))
        say(f"learn_rate {rate:.3g}" + (f" ({reason})" if rate == auto_rate else ""))
        rng = random.Random(0)
        step = 0
        for epoch in range(args.epochs):
            rng.shuffle(examples)
            for start in range(0, len(examples), 64):
                nlp.update(examples[start : start + 64], sgd=optimizer, drop=0.0)
                step += 1
                if epoch == 0 and step in (1, 2, 3, 4, 5, 10, 50):
                    bias = linear.get_param("b")
                    say(f"  update {step:3d}: biases {[round(float(b), 2) for b in bias]}")
            with nlp.use_params(optimizer.averages):
                docs = list(nlp.pipe(text for text, _ in task.dev))
            scores = np.array([[doc.cats[lb] for lb in task.labels] for doc in docs])
            gold = gold_matrix(task.dev, task.labels)
            decided = decide(scores, True)
            say(
                f"  epoch {epoch}: dev share predicted positive "
                f"{decided[:, 0].mean():.3f} (gold {gold[:, 0].mean():.3f}), "
                f"macro-F1 {macro_f1(decided, gold):.3f}"
            )
    _replace_block(args.doc, "why-collapse", "```\n" + "\n".join(lines) + "\n```")


def why_few_classes(args: argparse.Namespace) -> None:
    """Train the exclusive bow config on b77-coarse (6 classes, seed 0) in batches of 64 at
    the rate of the first-step bound alone, in batches of 64 at the rate that keeps an update
    within one Newton step, and in the batch and rate ``textcat-kit train`` computes,
    printing per epoch the largest move of a class's bias in one update and the dev / test
    macro-F1 of the averaged parameters."""
    import spacy
    from thinc.api import SGD

    from textcat_kit.maths.losses import balanced_class_weights
    from textcat_kit.training import (
        bias_curvature,
        bow_hash_length,
        sgd_batch_and_rate,
        sgd_learn_rate,
    )

    lines: list[str] = []

    def say(line: str) -> None:
        print(line, flush=True)
        lines.append(line)

    task = Builder(args.data_dir).b77_coarse(0)
    counts = gold_matrix(task.train, task.labels).sum(axis=0).astype(float)
    weights = balanced_class_weights(counts, exclusive=True, max_weight=10.0)
    n = len(task.train)
    h = bias_curvature(counts, n, weights)
    batch, rate, _ = sgd_batch_and_rate(counts, n, 64, exclusive=True, class_weights=weights)
    blank = spacy.blank("en")
    ngrams: set[Any] = set()
    for text, _labels in task.train:
        lower = [t.lower_ for t in blank.make_doc(text)]
        ngrams.update(lower)
        ngrams.update(zip(lower, lower[1:], strict=False))
    length = bow_hash_length(len(ngrams), len(task.labels), 65536)
    dev_gold = gold_matrix(task.dev, task.labels)
    test_gold = gold_matrix(task.test, task.labels)
    settings = [
        # the first-step bound alone, at the config's batch (the previous default)
        (64, sgd_learn_rate(counts, n, 64, exclusive=True)[0]),
        # one Newton step per update by lowering the rate, batch kept
        (
            64,
            sgd_batch_and_rate(
                counts, n, 64, exclusive=True, class_weights=weights, can_resize_batch=False
            )[1],
        ),
        # one Newton step per update by shrinking the batch (what `textcat-kit train` does)
        (batch, rate),
    ]
    for size, lr in settings:
        loss = {"@misc": "textcat_kit.ClassWeightedLoss.v1", "weights": "balanced"}
        nlp, textcat, examples = _initialized_bow(task, length, loss)
        optimizer = SGD(lr, use_averages=True, L2=0.0, grad_clip=0.0, L2_is_weight_decay=True)
        linear = next(m for m in textcat.model.walk() if m.name.startswith("sparse_linear"))
        say(
            f"batch {size}, learn_rate {lr:.3g}: {lr * size * h:.2f} Newton steps per update "
            f"(bias curvature per doc {h:.3f})"
        )
        rng = random.Random(0)
        for epoch in range(args.epochs):
            rng.shuffle(examples)
            swing = 0.0
            for start in range(0, len(examples), size):
                before = np.array(linear.get_param("b"), copy=True)
                nlp.update(examples[start : start + size], sgd=optimizer, drop=0.0)
                swing = max(swing, float(np.abs(linear.get_param("b") - before).max()))
            with nlp.use_params(optimizer.averages):
                scores = []
                for split, gold in ((task.dev, dev_gold), (task.test, test_gold)):
                    docs = nlp.pipe(text for text, _ in split)
                    s = np.array([[doc.cats[lb] for lb in task.labels] for doc in docs])
                    scores.append(macro_f1(decide(s, True), gold))
            say(
                f"  epoch {epoch + 1:2d}: largest bias move in one update {swing:5.2f}, "
                f"dev macro-F1 {scores[0]:.3f}, test {scores[1]:.3f}"
            )
    _replace_block(args.doc, "why-few-classes", "```\n" + "\n".join(lines) + "\n```")


def _replace_block(doc_path: Path, name: str, body: str) -> None:
    """Replace the text between this command's START / END markers in ``doc_path``."""
    start_tag = f"<!-- GENERATED BY python -m benchmarks.robustness {name}: START -->"
    end_tag = f"<!-- GENERATED BY python -m benchmarks.robustness {name}: END -->"
    if not doc_path.is_file():
        return
    doc = doc_path.read_text(encoding="utf8")
    start, end = doc.find(start_tag), doc.find(end_tag)
    if start >= 0 and end >= 0:
        doc = doc[:start] + start_tag + "\n" + body + "\n" + doc[end:]
        doc_path.write_text(doc, encoding="utf8")


# --- running and reporting ---------------------------------------------------------------------


def _load_results(path: Path) -> dict[str, Any]:
    if path.is_file():
        return json.loads(path.read_text(encoding="utf8"))
    return {"runs": {}, "tasks": {}}


def _save_results(path: Path, results: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(results, indent=1, sort_keys=True) + "\n", encoding="utf8")
    os.replace(tmp, path)


def task_stats(task: Task) -> dict[str, Any]:
    train_gold = gold_matrix(task.train, task.labels)
    counts = train_gold.sum(axis=0)
    words = [len(t.split()) for t, _ in task.train]
    return {
        "description": task.description,
        "exclusive": task.exclusive,
        "n_labels": len(task.labels),
        "n_train": len(task.train),
        "n_dev": len(task.dev),
        "n_test": len(task.test),
        "labels_under_10_train": int(((counts > 0) & (counts < 10)).sum()),
        "min_max_label_count": [int(counts[counts > 0].min()), int(counts.max())],
        "median_words": float(np.median(words)),
    }


def run(args: argparse.Namespace) -> None:
    results = _load_results(args.results) if args.resume else {"runs": {}, "tasks": {}}
    results["command"] = "python -m benchmarks.robustness " + " ".join(sys.argv[1:])
    builder = Builder(args.data_dir)
    tasks = args.tasks.split(",") if args.tasks else list(TASKS)
    seeds = [int(s) for s in args.seeds.split(",")]
    for name in tasks:
        for seed in seeds:
            key = f"{name}/{seed}"
            if key in results["runs"] and args.resume:
                continue
            task = TASKS[name](builder, seed)
            results["tasks"][name] = task_stats(task)
            lr_key = f"{name}/{0 if name in FIXED_SPLIT else seed}"
            cached = results["runs"].get(lr_key, {}).get("tfidf_lr")
            lr = cached if name in FIXED_SPLIT and cached else run_tfidf_lr(task)
            workdir = Path(tempfile.mkdtemp(prefix=f"robustness-{name}-{seed}-"))
            try:
                bow = run_bow(task, seed, workdir, args.configs_dir)
            finally:
                if not args.keep:
                    shutil.rmtree(workdir, ignore_errors=True)
            results["runs"][key] = {"task": name, "seed": seed, "bow": bow, "tfidf_lr": lr}
            _save_results(args.results, results)
            line = (
                f"{key}: bow {bow['macro_f1']:.4f} (lr {bow['learn_rate']}, {bow['train_s']} s) "
                f"| LR {lr['macro_f1']:.4f} (C {lr['C']})"
            )
            if not task.exclusive:
                line += f" | AUC bow {bow['macro_auc']:.4f} LR {lr['macro_auc']:.4f}"
            if bow["collapsed"]:
                line += " | BOW COLLAPSED"
            print(line, flush=True)
    report(args)


def summarise(results: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for name in TASKS:
        runs = [r for r in results["runs"].values() if r["task"] == name]
        if not runs:
            continue
        stats = results["tasks"][name]
        bow_f = [r["bow"]["macro_f1"] for r in runs]
        lr_f = [r["tfidf_lr"]["macro_f1"] for r in runs]
        row: dict[str, Any] = {
            "task": name,
            "stats": stats,
            "seeds": sorted(r["seed"] for r in runs),
            "bow_f1": float(np.mean(bow_f)),
            "bow_f1_min": float(np.min(bow_f)),
            "lr_f1": float(np.mean(lr_f)),
            "collapsed": sum(r["bow"]["collapsed"] for r in runs),
            "degenerate": sum(r["bow"]["degenerate"] for r in runs),
            "bow_s": float(np.mean([r["bow"]["train_s"] for r in runs])),
            "learn_rate": runs[0]["bow"]["learn_rate"],
            "batch_size": runs[0]["bow"].get("batch_size"),
            "final_selected": sum(r["bow"].get("selected") == "model-last" for r in runs),
        }
        row["f1_ok"] = row["bow_f1"] >= row["lr_f1"] - F1_MARGIN
        if not stats["exclusive"]:
            row["bow_auc"] = float(np.mean([r["bow"]["macro_auc"] for r in runs]))
            row["lr_auc"] = float(np.mean([r["tfidf_lr"]["macro_auc"] for r in runs]))
            row["auc_ok"] = row["bow_auc"] >= row["lr_auc"] - AUC_MARGIN
        rows.append(row)
    return rows


def table(results: dict[str, Any]) -> str:
    rows = summarise(results)
    lines = [
        "| task | labels | train docs | labels < 10 train | bow macro-F1 | TF-IDF+LR macro-F1 "
        "| bow − LR | bow AUC | LR AUC | collapsed runs | holds |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for row in rows:
        s = row["stats"]
        kind = "excl." if s["exclusive"] else "multi"
        auc = (f"{row['bow_auc']:.3f}", f"{row['lr_auc']:.3f}") if "bow_auc" in row else ("", "")
        holds = row["f1_ok"] and row.get("auc_ok", True) and row["collapsed"] == 0
        lines.append(
            f"| {row['task']} | {s['n_labels']} {kind} | {s['n_train']:,} | "
            f"{s['labels_under_10_train']} | {row['bow_f1']:.3f} | {row['lr_f1']:.3f} | "
            f"{100 * (row['bow_f1'] - row['lr_f1']):+.1f} pt | {auc[0]} | {auc[1]} | "
            f"{row['collapsed']}/{len(row['seeds'])} | {'yes' if holds else 'NO'} |"
        )
    return "\n".join(lines)


def _merged_results(path: Path) -> dict[str, Any]:
    """``path`` plus its siblings ``<stem>-*.json`` (parts run in parallel processes)."""
    merged: dict[str, Any] = {"runs": {}, "tasks": {}, "commands": []}
    for part in [path, *sorted(path.parent.glob(f"{path.stem}-*.json"))]:
        if not part.is_file():
            continue
        results = _load_results(part)
        merged["runs"].update(results["runs"])
        merged["tasks"].update(results["tasks"])
        if "command" in results:
            merged["commands"].append(results["command"])
    return merged


def report(args: argparse.Namespace) -> None:
    results = _merged_results(args.results)
    text = table(results)
    print(text)
    rows = summarise(results)
    details = [
        "",
        "Tasks (test sets subsampled where noted; seeds: "
        f"{', '.join(str(s) for s in rows[0]['seeds']) if rows else '-'}):",
        "",
    ]
    for row in rows:
        s = row["stats"]
        details.append(
            f"- **{row['task']}**: {s['description']}; dev {s['n_dev']:,}, test {s['n_test']:,}; "
            f"train label counts {s['min_max_label_count'][0]}-{s['min_max_label_count'][1]}, "
            f"median {s['median_words']:.0f} words; bow SGD learn rate "
            f"{row['learn_rate']:.3g}"
            + (f", batch {row['batch_size']}" if row["batch_size"] else "")
            + (
                f", final model kept as model-best in {row['final_selected']} of "
                f"{len(row['seeds'])} runs"
                if s["exclusive"] and row["batch_size"]
                else ""
            )
            + f", {row['bow_s']:.0f} s per training run"
        )
    block = (
        "<!-- GENERATED BY python -m benchmarks.robustness report: START -->\n"
        + "Commands: "
        + ", ".join(f"`{c}`" for c in results["commands"])
        + f"\n\n{text}\n"
        + "\n".join(details)
        + "\n<!-- GENERATED BY python -m benchmarks.robustness report: END -->"
    )
    if args.doc.is_file():
        doc = args.doc.read_text(encoding="utf8")
        start = doc.find("<!-- GENERATED BY python -m benchmarks.robustness report: START -->")
        end_tag = "<!-- GENERATED BY python -m benchmarks.robustness report: END -->"
        end = doc.find(end_tag)
        if start >= 0 and end >= 0:
            doc = doc[:start] + block + doc[end + len(end_tag) :]
            args.doc.write_text(doc, encoding="utf8")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.robustness", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    why = sub.add_parser("why-collapse", help=why_collapse.__doc__)
    why.add_argument("--data-dir", type=Path, default=DEFAULT_DATA)
    why.add_argument("--epochs", type=int, default=3)
    why.add_argument("--doc", type=Path, default=DOC)
    few = sub.add_parser("why-few-classes", help=why_few_classes.__doc__)
    few.add_argument("--data-dir", type=Path, default=DEFAULT_DATA)
    few.add_argument("--epochs", type=int, default=12)
    few.add_argument("--doc", type=Path, default=DOC)
    for name in ("run", "report"):
        p = sub.add_parser(name)
        p.add_argument("--results", type=Path, default=RESULTS)
        p.add_argument("--doc", type=Path, default=DOC)
        if name == "run":
            p.add_argument("--data-dir", type=Path, default=DEFAULT_DATA)
            p.add_argument("--configs-dir", type=Path, default=ROOT / "configs")
            p.add_argument("--tasks", default="", help=f"comma-separated, from {list(TASKS)}")
            p.add_argument("--seeds", default="0,1,2")
            p.add_argument("--resume", action="store_true")
            p.add_argument("--keep", action="store_true", help="keep the work dirs")
    args = parser.parse_args(argv)
    if args.command == "run":
        run(args)
    elif args.command == "why-collapse":
        why_collapse(args)
    elif args.command == "why-few-classes":
        why_few_classes(args)
    else:
        report(args)


if __name__ == "__main__":
    main()

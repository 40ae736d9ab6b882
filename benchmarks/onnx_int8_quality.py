"""Macro-F1 of the ONNX fp32 and int8 exports vs the trained spacy-transformers pipeline.

Not a test: prints a table. Trains a small transformer textcat on Banking77 here (a
WordPiece vocabulary and a randomly initialised BERT built with
:func:`textcat_kit.testing.tiny_transformer.build_tiny_transformer`, fine-tuned with
``configs/textcat_transformer.cfg`` via ``spacy train``), exports it to ONNX fp32 and int8,
and scores all three on the Banking77 test split (3,080 texts): accuracy, macro-F1, the
largest |Δ doc.cats| against the torch pipeline and how often the decided label agrees.

With ``--model`` it skips the training and exports a pipeline trained elsewhere (e.g. the
fine-tuned all-MiniLM-L6-v2 of ``python -m benchmarks encoders run --systems transformer``),
scores it on ``--test`` (a ``.spacy`` file; exclusive or multi-label), and also times the
three pipelines side by side (interleaved rounds, best of, CPU time of this process, one
thread each: ``nlp.pipe`` in batches of 64 and one text at a time), writing
``benchmarks/results/onnx_quality_<name>.json`` (``python -m benchmarks encoders report``
puts it into docs/encoders.md).

Usage::

    python benchmarks/onnx_int8_quality.py --size 4x256 --epochs 4
    python -m benchmarks onnx_int8_quality --model MODEL_DIR --test corpus/banking77/test.spacy \
        --name banking77-minilm
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
CONFIG = REPO_ROOT / "configs" / "textcat_transformer.cfg"
DATA = Path(os.environ.get("TEXTCAT_KIT_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))
BANKING = DATA / "banking77"


def read_split(split: str) -> list[tuple[str, str]]:
    with (BANKING / f"{split}.csv").open(newline="", encoding="utf8") as file:
        return [(row["text"].strip(), row["category"]) for row in csv.DictReader(file)]


def write_corpora(work_dir: Path, dev_fraction: float, seed: int) -> tuple[Path, Path, list[str]]:
    from textcat_kit.data.records import Record, write_records

    labels = list(json.loads((BANKING / "categories.json").read_text(encoding="utf8")))
    train = read_split("train")
    random.Random(seed).shuffle(train)
    n_dev = int(len(train) * dev_fraction)
    dev, train = train[:n_dev], train[n_dev:]
    train_path, dev_path = work_dir / "train.spacy", work_dir / "dev.spacy"
    write_records([Record(text, [label]) for text, label in train], train_path, labels)
    write_records([Record(text, [label]) for text, label in dev], dev_path, labels)
    return train_path, dev_path, labels


def train(args: argparse.Namespace, work_dir: Path) -> Path:
    from spacy.cli.train import train as spacy_train

    from textcat_kit.testing.tiny_transformer import build_tiny_transformer

    model_dir = work_dir / "training" / "model-best"
    if model_dir.exists():
        return model_dir
    train_path, dev_path, _ = write_corpora(work_dir, dev_fraction=0.1, seed=args.seed)
    hf_dir = build_tiny_transformer(
        work_dir / "hf",
        [text for text, _ in read_split("train")],
        size=args.size,
        vocab_size=8000,
        seed=args.seed,
    )
    overrides = {
        "paths.train": str(train_path),
        "paths.dev": str(dev_path),
        "paths.transformer_name": str(hf_dir),
        "training.max_epochs": args.epochs,
        "training.eval_frequency": args.eval_frequency,
        "training.patience": 0,
        "training.optimizer.learn_rate.initial_rate": args.learn_rate,
        "training.optimizer.learn_rate.warmup_steps": 200,
        "training.optimizer.learn_rate.total_steps": args.total_steps,
        "training.seed": args.seed,
    }
    spacy_train(CONFIG, work_dir / "training", overrides=overrides)
    return model_dir


def scores(nlp_dir: Path, texts: list[str], labels: list[str], onnx: bool) -> np.ndarray:
    import spacy

    if onnx:
        import textcat_kit.onnx.component  # noqa: F401  (registers the factory)
    nlp = spacy.load(nlp_dir)
    return np.array([[doc.cats[label] for label in labels] for doc in nlp.pipe(texts)])


def pipeline_decisions(
    docs: list[Any], labels: list[str], probs: np.ndarray, exclusive: bool
) -> tuple[np.ndarray, str]:
    """0/1 decisions as the pipeline makes them: its decision component's labels (tuned
    thresholds, exported with the pipeline) when it has one, else the argmax (exclusive)
    or 0.5 (multi-label)."""
    from spacy.tokens import Doc

    from textcat_kit.maths import metrics

    if docs and Doc.has_extension("decided_labels") and docs[0]._.decided_labels is not None:
        index = {label: j for j, label in enumerate(labels)}
        decided = np.zeros(probs.shape, dtype=np.int64)
        for i, doc in enumerate(docs):
            for label in doc._.decided_labels:
                decided[i, index[label]] = 1
        return decided, "decision component"
    if exclusive:
        return np.eye(len(labels), dtype=np.int64)[probs.argmax(axis=1)], "argmax"
    return metrics.decide(probs, 0.5).astype(np.int64), "threshold 0.5"


def real_model(args: argparse.Namespace) -> None:
    """Export ``args.model`` (fp32, int8), score the three pipelines on ``args.test``, time them."""
    import spacy
    import torch

    import textcat_kit.onnx.component  # noqa: F401  (registers the factory)
    from textcat_kit.evaluation import cats_matrix, load_gold
    from textcat_kit.maths import metrics
    from textcat_kit.onnx.export import Quantization, export_onnx_pipeline

    from ._common import interleaved_best, write_results

    torch.set_num_threads(1)
    model_dir, work_dir = Path(args.model), Path(args.work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    exports = {"onnx fp32": work_dir / "onnx-fp32", "onnx int8": work_dir / "onnx-int8"}
    summaries = {}
    for name, quantize in (("onnx fp32", None), ("onnx int8", Quantization.int8)):
        if not exports[name].exists():
            start = time.perf_counter()
            report = export_onnx_pipeline(model_dir, exports[name], quantize=quantize)
            summaries[name] = {
                "export_s": time.perf_counter() - start,
                "model_mb": report.model_bytes / 1e6,
                "check_max_abs_diff": report.max_abs_diff,
            }
            print(report.summary(), flush=True)
    onnx_threads: dict[str, Any] = {"components": {}}
    pipelines = {"spacy-transformers": spacy.load(model_dir)}
    for name, path in exports.items():
        textcat = next(
            n
            for n, c in spacy.util.load_config(path / "config.cfg")["components"].items()
            if c.get("factory") == "textcat_kit_onnx_textcat"
        )
        onnx_threads["components"] = {textcat: {"num_threads": 1}}
        pipelines[name] = spacy.load(path, config=onnx_threads)
    reference_nlp = pipelines["spacy-transformers"]
    gold_docs = load_gold(reference_nlp, Path(args.test))
    texts = [doc.text for doc in gold_docs]
    textcat_pipe = next(
        pipe for _, pipe in reference_nlp.pipeline if hasattr(pipe, "labels") and pipe.labels
    )
    labels = list(textcat_pipe.labels)
    gold = cats_matrix(gold_docs, labels)
    exclusive = bool(np.all((gold >= 0.5).sum(axis=1) == 1))
    probs, decisions = {}, {}
    for name, nlp in pipelines.items():
        docs = list(nlp.pipe(texts))
        probs[name] = cats_matrix(docs, labels)
        decisions[name], rule = pipeline_decisions(docs, labels, probs[name], exclusive)
    reference = probs["spacy-transformers"]
    rows: dict[str, dict[str, Any]] = {}
    for name, p in probs.items():
        decided = decisions[name]
        same = float(np.mean(np.all(decided == decisions["spacy-transformers"], axis=1)))
        prf = metrics.prf_per_label(decided, gold)
        rows[name] = {
            "macro_f": prf.macro_f,
            "micro_f": prf.micro_f,
            "max_abs_diff": float(np.abs(p - reference).max()),
            "same_decision": same,
            "decision_rule": rule,
            **summaries.get(name, {}),
        }
    speed_texts = texts[: args.speed_texts]
    single = texts[: max(1, args.speed_texts // 5)]

    def batched(nlp: Any) -> Callable[[], object]:
        return lambda: list(nlp.pipe(speed_texts, batch_size=64))

    def one_by_one(nlp: Any) -> Callable[[], object]:
        return lambda: [nlp(text) for text in single]

    runs: dict[str, Callable[[], object]] = {}
    for name, nlp in pipelines.items():
        runs[f"{name}|batch64"] = batched(nlp)
        runs[f"{name}|batch1"] = one_by_one(nlp)
    best = interleaved_best(
        runs,
        rounds=args.rounds,
    )
    for key, seconds in best.items():
        name, mode = key.split("|")
        n = len(speed_texts) if mode == "batch64" else len(single)
        rows[name][f"docs_per_cpu_s_{mode}"] = n / seconds
    print(f"\n{args.test} ({len(texts)} texts), {model_dir}")
    print(
        f"{'pipeline':20s} {'macro-F1':>9s} {'max|Δcats|':>11s} {'same':>8s} "
        f"{'b64 d/s':>8s} {'b1 d/s':>7s}"
    )
    for name, row in rows.items():
        print(
            f"{name:20s} {row['macro_f']:9.4f} {row['max_abs_diff']:11.2e} "
            f"{row['same_decision']:8.2%} {row['docs_per_cpu_s_batch64']:8.1f} "
            f"{row['docs_per_cpu_s_batch1']:7.1f}"
        )
    delta = 100 * (rows["onnx int8"]["macro_f"] - rows["onnx fp32"]["macro_f"])
    print(f"\nint8 - fp32 macro-F1: {delta:+.2f} points")
    command = [
        "python -m benchmarks onnx_int8_quality",
        f"--model {args.model} --test {args.test} --name {args.name}",
        f"--speed-texts {args.speed_texts} --rounds {args.rounds}",
    ]
    results = {
        "model": str(args.model),
        "test": str(args.test),
        "n_test": len(texts),
        "n_speed_batch64": len(speed_texts),
        "n_speed_batch1": len(single),
        "threads": 1,
        "clock": "process CPU time, best of interleaved rounds",
        "int8_minus_fp32_macro_f_points": delta,
        "pipelines": rows,
    }
    print(f"wrote {write_results(f'onnx_quality_{args.name}', results, command)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="A trained transformer textcat pipeline")
    parser.add_argument("--test", default="corpus/banking77/test.spacy")
    parser.add_argument("--name", default="model", help="Results file tag (with --model)")
    parser.add_argument("--speed-texts", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--size", default="4x256")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--learn-rate", type=float, default=5e-4)
    parser.add_argument("--total-steps", type=int, default=1000)
    parser.add_argument("--eval-frequency", type=int, default=400)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work-dir", default="/tmp/textcat-kit-onnx-quality")
    args = parser.parse_args()
    if args.model:
        real_model(args)
        return

    import torch
    from sklearn.metrics import accuracy_score, f1_score

    from textcat_kit.onnx.export import Quantization, export_onnx_pipeline

    torch.set_num_threads(2)
    work_dir = Path(args.work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    model_dir = train(args, work_dir)
    print(f"trained in {time.perf_counter() - start:.0f} s: {model_dir}", flush=True)
    exports = {"onnx fp32": work_dir / "onnx-fp32", "onnx int8": work_dir / "onnx-int8"}
    for name, quantize in (("onnx fp32", None), ("onnx int8", Quantization.int8)):
        if not exports[name].exists():
            print(export_onnx_pipeline(model_dir, exports[name], quantize=quantize).summary())

    test = read_split("test")
    texts = [text for text, _ in test]
    labels = list(json.loads((BANKING / "categories.json").read_text(encoding="utf8")))
    gold = np.array([labels.index(label) for _, label in test])
    results = {"spacy-transformers": scores(model_dir, texts, labels, onnx=False)}
    for name, path in exports.items():
        results[name] = scores(path, texts, labels, onnx=True)
    reference = results["spacy-transformers"]
    print(f"\nBanking77 test ({len(texts)} texts), encoder {args.size}, {args.epochs} epochs")
    print(
        f"{'pipeline':20s} {'accuracy':>9s} {'macro-F1':>9s} {'max|Δcats|':>11s} "
        f"{'same label':>11s}"
    )
    f1 = {}
    for name, probs in results.items():
        predicted = probs.argmax(axis=1)
        f1[name] = 100 * f1_score(gold, predicted, average="macro", labels=range(len(labels)))
        accuracy = 100 * accuracy_score(gold, predicted)
        diff = float(np.abs(probs - reference).max())
        agree = 100 * float(np.mean(predicted == reference.argmax(axis=1)))
        print(f"{name:20s} {accuracy:9.2f} {f1[name]:9.2f} {diff:11.2e} {agree:10.2f}%")
    print(f"\nint8 - fp32 macro-F1: {f1['onnx int8'] - f1['onnx fp32']:+.2f} points")


if __name__ == "__main__":
    main()

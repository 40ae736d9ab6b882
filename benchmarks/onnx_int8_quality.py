"""Macro-F1 of the ONNX fp32 and int8 exports vs the trained spacy-transformers pipeline.

Not a test: prints a table. Trains a small transformer textcat on Banking77 here (a
WordPiece vocabulary and a randomly initialised BERT built with
:func:`textcat_kit.testing.tiny_transformer.build_tiny_transformer`, fine-tuned with
``configs/textcat_transformer.cfg`` via ``spacy train``), exports it to ONNX fp32 and int8,
and scores all three on the Banking77 test split (3,080 texts): accuracy, macro-F1, the
largest |Δ doc.cats| against the torch pipeline and how often the decided label agrees.

Usage::

    python benchmarks/onnx_int8_quality.py --size 4x256 --epochs 4
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import time
from pathlib import Path

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="4x256")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--learn-rate", type=float, default=5e-4)
    parser.add_argument("--total-steps", type=int, default=1000)
    parser.add_argument("--eval-frequency", type=int, default=400)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work-dir", default="/tmp/textcat-kit-onnx-quality")
    args = parser.parse_args()

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

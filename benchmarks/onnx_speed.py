"""Docs/s of spacy-transformers vs the ONNX Runtime export (fp32, int8) on CPU; footprint; RSS.

Not a test: prints a table. For each encoder size (``tiny`` = 2x64 and ``6x768``, random
weights: speed does not depend on their values), it builds a spacy-transformers textcat
pipeline from ``configs/textcat_transformer.cfg`` (77 Banking77 labels, random output
layer), exports it with ``textcat-kit export-onnx`` (fp32 and ``--quantize int8``), and
times ``nlp.pipe`` on short (~20 words) and long (~300 words) texts made of Banking77 test
sentences, at batch sizes 1 and 64, with 1 and 2 threads.

Each (backend, threads) pair runs in its own worker process, so that the ONNX workers never
import torch and each worker's peak RSS is its own. Measurements of the three backends are
interleaved round by round, and each cell reports the median over rounds, because the
machine may be shared; ratios are medians of per-round ratios.

Usage::

    python benchmarks/onnx_speed.py                       # full table (tens of minutes)
    python benchmarks/onnx_speed.py --sizes tiny --rounds 1   # a quick look
    python benchmarks/onnx_speed.py --sizes 6x768 --lengths long --batch-sizes 64
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Iterable
from importlib import metadata
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
CONFIG = REPO_ROOT / "configs" / "textcat_transformer.cfg"
BANKING = Path(os.environ.get("TEXTCAT_KIT_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))
BANKING = BANKING / "banking77"
BACKENDS = ("trf", "onnx-fp32", "onnx-int8")


def docs_for(length: str, batch_size: int) -> int:
    """Docs timed per cell: at least one full batch, modest on a 2-core machine."""
    return max(64, 4 * batch_size) if length == "short" else max(8, batch_size)


# --------------------------------------------------------------------------- data


def banking_texts(split: str) -> list[str]:
    with (BANKING / f"{split}.csv").open(newline="", encoding="utf8") as file:
        return [row["text"].strip() for row in csv.DictReader(file)]


def banking_labels() -> list[str]:
    return list(json.loads((BANKING / "categories.json").read_text(encoding="utf8")))


def make_texts(n_docs: int, n_words: int, seed: int) -> list[str]:
    """Texts of at least ``n_words`` words, made of random Banking77 test sentences."""
    pool = banking_texts("test")
    rng = random.Random(seed)
    texts = []
    for _ in range(n_docs):
        parts: list[str] = []
        n = 0
        while n < n_words:
            sentence = rng.choice(pool)
            parts.append(sentence)
            n += len(sentence.split())
        texts.append(" ".join(parts))
    return texts


# --------------------------------------------------------------------------- setup


def prepare(work_dir: Path, size: str) -> dict[str, Path]:
    """Model dir, spacy-transformers pipeline and both exports for ``size`` (cached)."""
    import numpy as np

    from textcat_kit.onnx.export import Quantization, export_onnx_pipeline
    from textcat_kit.testing.pipelines import build_transformer_textcat
    from textcat_kit.testing.tiny_transformer import build_tiny_transformer

    root = work_dir / size
    paths = {
        "hf": root / "hf",
        "trf": root / "trf",
        "onnx-fp32": root / "onnx-fp32",
        "onnx-int8": root / "onnx-int8",
    }
    if not paths["hf"].exists():
        build_tiny_transformer(paths["hf"], banking_texts("train"), size=size, vocab_size=8000)
    if not paths["trf"].exists():
        labels = banking_labels()
        # One example per label is enough to initialise the output layer.
        examples = [(f"{label.replace('_', ' ')} please", [label]) for label in labels]
        nlp = build_transformer_textcat(CONFIG, paths["hf"], examples, labels=labels, train_steps=0)
        textcat: Any = nlp.get_pipe("textcat")
        output = textcat.model.get_ref("output_layer")
        weights = np.random.default_rng(0).normal(0, 0.05, output.get_param("W").shape)
        output.set_param("W", weights.astype("float32"))
        nlp.to_disk(paths["trf"])
    for backend, quantize in (("onnx-fp32", None), ("onnx-int8", Quantization.int8)):
        if not paths[backend].exists():
            report = export_onnx_pipeline(paths["trf"], paths[backend], quantize=quantize)
            print(report.summary(), flush=True)
    return paths


# --------------------------------------------------------------------------- worker


def worker(backend: str, model_dir: Path, threads: int, texts_file: Path) -> None:
    """Serve timing requests on stdin (one JSON object per line) until EOF.

    ONNX workers block torch, transformers and spacy-transformers before importing spaCy,
    so they run (and use memory) as in an install without them.
    """
    if backend != "trf":
        from textcat_kit.testing.import_blocker import block_imports

        block_imports()
    import spacy

    texts: dict[str, list[str]] = json.loads(texts_file.read_text(encoding="utf8"))
    if backend == "trf":
        import torch

        torch.set_num_threads(threads)
        nlp = spacy.load(model_dir)
    else:
        import textcat_kit.onnx.component  # noqa: F401  (registers the factory)

        nlp = spacy.load(model_dir, config={"components": {"textcat": {"num_threads": threads}}})
    list(nlp.pipe(texts["short"][:4]))
    list(nlp.pipe(texts["long"][:2]))
    print(json.dumps({"ready": True, "torch": "torch" in sys.modules}), flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        docs = texts[request["length"]][: request["n_docs"]]
        # Warm-up on a few docs of this shape, then time the whole list.
        list(nlp.pipe(docs[: min(len(docs), 2)], batch_size=request["batch_size"]))
        start = time.perf_counter()
        for _ in nlp.pipe(docs, batch_size=request["batch_size"]):
            pass
        seconds = time.perf_counter() - start
        print(
            json.dumps({"docs_per_s": len(docs) / seconds, "peak_rss_mb": peak_rss_mb()}),
            flush=True,
        )


def peak_rss_mb() -> float:
    """This process's peak resident memory (``VmHWM``).

    Not ``getrusage``: on Linux its ``ru_maxrss`` survives ``exec`` and would report the
    parent's peak for a freshly started worker.
    """
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class Worker:
    def __init__(self, backend: str, model_dir: Path, threads: int, texts_file: Path) -> None:
        env = dict(os.environ, OMP_NUM_THREADS=str(threads))
        self.process = subprocess.Popen(
            [
                sys.executable,
                __file__,
                "--worker",
                backend,
                str(model_dir),
                str(threads),
                str(texts_file),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        self.hello = self._read()

    def _read(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"worker exited with {self.process.wait()}")
        return dict(json.loads(line))

    def measure(self, length: str, batch_size: int, n_docs: int) -> dict[str, Any]:
        assert self.process.stdin is not None
        request = {"length": length, "batch_size": batch_size, "n_docs": n_docs}
        self.process.stdin.write(json.dumps(request) + "\n")
        self.process.stdin.flush()
        return self._read()

    def close(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        self.process.wait()


# --------------------------------------------------------------------------- footprint


def _requirement_names(dist: metadata.Distribution) -> list[str]:
    from packaging.requirements import Requirement

    names = []
    for text in dist.requires or []:
        requirement = Requirement(text)
        if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
            names.append(requirement.name)
    return names


def closure(roots: Iterable[str]) -> dict[str, int]:
    """Installed size in bytes of each distribution needed by ``roots`` (transitively)."""
    sizes: dict[str, int] = {}
    todo = list(roots)
    while todo:
        name = todo.pop()
        key = name.lower().replace("_", "-")
        if key in sizes:
            continue
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        total = 0
        for file in dist.files or []:
            located = Path(str(file.locate()))
            if located.is_file():
                total += located.stat().st_size
        sizes[key] = total
        todo.extend(_requirement_names(dist))
    return sizes


def footprint() -> list[tuple[str, float, int]]:
    """(install path, MB, distributions) of the torch path and the ONNX path."""
    core = ["spacy", "numpy", "scipy", "scikit-learn", "typer", "srsly"]
    torch_path = closure(core + ["spacy-transformers", "torch", "transformers"])
    onnx_path = closure(core + ["onnxruntime", "tokenizers"])
    return [
        ("spaCy + spacy-transformers + torch", sum(torch_path.values()) / 1e6, len(torch_path)),
        ("spaCy + onnxruntime + tokenizers", sum(onnx_path.values()) / 1e6, len(onnx_path)),
    ]


# --------------------------------------------------------------------------- main


def run(args: argparse.Namespace) -> None:
    work_dir = Path(args.work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    texts_file = work_dir / "texts.json"
    n_max = max(docs_for(length, b) for length in ("short", "long") for b in args.batch_sizes)
    texts = {"short": make_texts(n_max, 20, seed=1), "long": make_texts(n_max, 300, seed=2)}
    texts_file.write_text(json.dumps(texts), encoding="utf8")
    rows = []
    rss: dict[tuple[str, str], float] = {}
    for size in args.sizes:
        paths = prepare(work_dir, size)
        for threads in args.threads:
            workers = {b: Worker(b, paths[b], threads, texts_file) for b in BACKENDS}
            for backend, running in workers.items():
                if backend != "trf" and running.hello["torch"]:
                    raise RuntimeError(f"{backend} worker imported torch")
            cells = [(length, batch) for length in args.lengths for batch in args.batch_sizes]
            results: dict[tuple[str, int], dict[str, list[float]]] = {
                cell: {b: [] for b in BACKENDS} for cell in cells
            }
            for _ in range(args.rounds):
                for length, batch in cells:
                    n_docs = docs_for(length, batch)
                    for backend in BACKENDS:
                        result = workers[backend].measure(length, batch, n_docs)
                        results[(length, batch)][backend].append(result["docs_per_s"])
                        key = (size, backend)
                        rss[key] = max(rss.get(key, 0.0), result["peak_rss_mb"])
            for worker_ in workers.values():
                worker_.close()
            for (length, batch), speeds in results.items():
                ratios = {
                    b: statistics.median(
                        x / t for x, t in zip(speeds[b], speeds["trf"], strict=True)
                    )
                    for b in BACKENDS
                }
                rows.append(
                    (
                        size,
                        length,
                        batch,
                        threads,
                        docs_for(length, batch),
                        {b: statistics.median(speeds[b]) for b in BACKENDS},
                        ratios,
                    )
                )
            print_table(rows)
    print("\nPeak RSS of each worker process (MB), over all its runs:")
    for (size, backend), mb in sorted(rss.items()):
        print(f"  {size:7s} {backend:10s} {mb:8.0f}")
    print("\nModel files:")
    for size in args.sizes:
        root = work_dir / size
        trf_weights = sum(f.stat().st_size for f in (root / "hf").glob("*.safetensors"))
        fp32 = (root / "onnx-fp32" / "textcat" / "model.onnx").stat().st_size
        int8 = (root / "onnx-int8" / "textcat" / "model.onnx").stat().st_size
        print(
            f"  {size:7s} torch weights {trf_weights / 1e6:7.1f} MB   onnx fp32 "
            f"{fp32 / 1e6:7.1f} MB   onnx int8 {int8 / 1e6:7.1f} MB"
        )
    print("\nInstall footprint (sum of installed files of the distributions each path needs):")
    for name, mb, n in footprint():
        print(f"  {name:38s} {mb:8.0f} MB  ({n} distributions)")


def print_table(rows: list[tuple[Any, ...]]) -> None:
    print()
    print(
        f"{'size':7s} {'text':5s} {'batch':>5s} {'thr':>3s} {'docs':>5s} | "
        f"{'trf docs/s':>10s} | {'onnx fp32':>10s} {'x':>5s} | {'onnx int8':>10s} {'x':>5s}"
    )
    for size, length, batch, threads, n_docs, speeds, ratios in rows:
        print(
            f"{size:7s} {length:5s} {batch:5d} {threads:3d} {n_docs:5d} | "
            f"{speeds['trf']:10.2f} | {speeds['onnx-fp32']:10.2f} {ratios['onnx-fp32']:5.2f} | "
            f"{speeds['onnx-int8']:10.2f} {ratios['onnx-int8']:5.2f}",
            flush=True,
        )


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        backend, model_dir, threads, texts_file = sys.argv[2:6]
        worker(backend, Path(model_dir), int(threads), Path(texts_file))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=lambda s: s.split(","), default=["tiny", "6x768"])
    parser.add_argument("--threads", type=lambda s: [int(x) for x in s.split(",")], default=[1, 2])
    parser.add_argument(
        "--batch-sizes", type=lambda s: [int(x) for x in s.split(",")], default=[1, 64]
    )
    parser.add_argument("--lengths", type=lambda s: s.split(","), default=["short", "long"])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--work-dir", default=str(Path("/tmp") / "textcat-kit-onnx-bench"))
    run(parser.parse_args())


if __name__ == "__main__":
    main()

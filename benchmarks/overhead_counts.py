"""The calibrator + decision overhead in ``nlp.pipe``, counted in CPU instructions.

Not a test: prints a table. Wall-clock and even CPU-time ratios on a shared virtual machine
move by ±10% from round to round (see ``speed_pipeline.py``), which is larger than the
effect measured here. ``perf stat`` counts the instructions of one process, which do not
depend on what else the machine runs (its cycle count does, on a virtual machine: 2-55%
for the same runs here, so it is not reported). Each run is
a fresh process that loads the pipeline and then does one of:

* ``load``: nothing more (the cost of starting Python and loading the pipeline);
* ``textcat``: ``nlp.pipe`` over the texts with our two components disabled;
* ``full``: ``nlp.pipe`` over the texts with the whole pipeline.

overhead = (full - textcat) / (textcat - load), per counter; the median over ``--repeats``
interleaved runs. Needs Linux ``perf`` with hardware counters (``perf stat -e instructions
true`` tells).

Usage::

    python benchmarks/overhead_counts.py training/bench/banking77/bow/model-tuned \\
        corpus/banking77 --n-docs 20000
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
from pathlib import Path

OURS = ["textcat_kit_calibrator", "textcat_kit_decision"]
COUNTERS = ("instructions",)
MODES = ("load", "textcat", "full")


def run_mode(model: str, corpus: str, n_docs: int, mode: str) -> None:
    """The measured process: load, then run ``mode`` once."""
    import spacy
    from spacy.tokens import DocBin

    nlp = spacy.load(model)
    texts = [
        doc.text for doc in DocBin().from_disk(Path(corpus) / "test.spacy").get_docs(nlp.vocab)
    ]
    texts = (texts * (n_docs // len(texts) + 1))[:n_docs]
    if mode == "textcat":
        with nlp.select_pipes(disable=[name for name in OURS if name in nlp.pipe_names]):
            for _ in nlp.pipe(texts):
                pass
    elif mode == "full":
        for _ in nlp.pipe(texts):
            pass


def count(model: str, corpus: str, n_docs: int, mode: str) -> dict[str, float]:
    command = ["perf", "stat", "-x", ",", "-e", ",".join(COUNTERS), sys.executable, __file__]
    command += ["--run", mode, model, corpus, "--n-docs", str(n_docs)]
    # A fixed hash seed makes the runs execute the same instructions (set and dict order).
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    result = subprocess.run(command, capture_output=True, text=True, check=True, env=env)
    counts = {}
    for line in result.stderr.splitlines():
        fields = line.split(",")
        if len(fields) > 2 and fields[2] in COUNTERS and re.fullmatch(r"\d+", fields[0]):
            counts[fields[2]] = float(fields[0])
    if set(counts) != set(COUNTERS):
        raise SystemExit(f"perf stat gave no counters; stderr:\n{result.stderr}")
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("corpus_dir")
    parser.add_argument("--n-docs", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--run", choices=MODES, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run:
        run_mode(args.model, args.corpus_dir, args.n_docs, args.run)
        return
    runs: dict[str, list[dict[str, float]]] = {mode: [] for mode in MODES}
    for repeat in range(args.repeats):
        for mode in MODES:
            runs[mode].append(count(args.model, args.corpus_dir, args.n_docs, mode))
        print(f"repeat {repeat + 1}/{args.repeats} done", flush=True)
    print(
        f"\n`python benchmarks/overhead_counts.py {args.model} {args.corpus_dir} "
        f"--n-docs {args.n_docs} --repeats {args.repeats}`\n"
    )
    print("| counter | textcat per doc | calibrator + decision per doc | overhead |")
    print("|---|---:|---:|---:|")
    for counter in COUNTERS:
        per_run = []
        for load, textcat, full in zip(runs["load"], runs["textcat"], runs["full"], strict=True):
            pipeline = textcat[counter] - load[counter]
            ours = full[counter] - textcat[counter]
            per_run.append((pipeline / args.n_docs, ours / args.n_docs, 100 * ours / pipeline))
        pipeline, ours, percent = (statistics.median(values) for values in zip(*per_run))
        spread = ", ".join(f"{run[2]:.1f}%" for run in per_run)
        print(f"| {counter} | {pipeline:,.0f} | {ours:,.0f} | **{percent:.1f}%** ({spread}) |")


if __name__ == "__main__":
    main()

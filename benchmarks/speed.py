"""Throughput of a tuned pipeline next to spaCy's tokenizer alone, and its load time.

``python -m benchmarks speed MODEL TEST.spacy [--name banking77-bow]`` times, taking turns
in every round (best of ``--rounds``) so that other load on the machine hits all alike:

* ``tokenizer``: ``spacy.blank(lang).pipe(texts)``, the floor of any spaCy pipeline;
* ``raw``: the pipeline with its fitted calibration and decisions switched off
  (``textcat_kit.pipeline.fitted.raw_scores``): tokenizer + classifier + doc.cats;
* ``full``: the tuned pipeline as shipped (calibrated doc.cats, doc._.decided_labels);
* ``pipe_scores``: :func:`textcat_kit.parallel.pipe_scores` with ``--processes`` workers;
* ``spacy.load(MODEL)`` against ``spacy.blank(lang)`` in the same process.

In-process runs are timed in CPU time of this process (time spent waiting for a core
while other processes run does not count); ``pipe_scores`` against ``full`` in wall time.
Read the ratios (``full_vs_tokenizer``: share of the tokenizer's throughput that the full
pipeline keeps; ``fitted_state_overhead``: extra time of calibration + decisions over
``raw``), not the absolute docs/s, on a shared machine. Writes
``benchmarks/results/speed_<name>.json``; ``--update-doc FILE`` also renders the figures
between ``<!-- speed <name>: begin/end -->`` in FILE (``--from-json``: from saved results).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from ._common import interleaved_best, replace_block, write_results


def render(results: dict, source: str) -> str:
    """The figures block of ``--update-doc``."""
    rate = results["docs_per_second"]
    load = results["load_seconds"]
    lines = [
        f"Regenerate with `{results['command']}` (figures from `{source}`; "
        f"{results['when']}, {results['machine']['cpus']} CPU cores, load average "
        f"{results['machine']['load_average'][0]:.1f}; compiled kernels: "
        f"{'yes' if results.get('compiled_kernels') else 'no'}).",
        "",
        "| | docs/s | share of the tokenizer's |",
        "|---|---:|---:|",
    ]
    for key, label in (
        ("tokenizer", "tokenizer (`spacy.blank`)"),
        ("raw", "classifier, fitted state off"),
        ("full", "tuned pipeline as shipped"),
    ):
        lines.append(f"| {label} | {rate[key]:,} | {rate[key] / rate['tokenizer']:.3f} |")
    lines += [
        "",
        f"Calibration + decisions add {100 * results['fitted_state_overhead']:+.1f}% to the "
        f"classifier's time; `spacy.load` {load['load']:.3f} s against `spacy.blank` "
        f"{load['blank']:.3f} s.",
    ]
    return "\n".join(lines)


def update_doc(path: Path, results: dict, source: str, name: str) -> None:
    text = replace_block(path.read_text(encoding="utf8"), f"speed {name}", render(results, source))
    if text is None:
        raise SystemExit(f"{path}: no <!-- speed {name}: begin --> marker")
    path.write_text(text, encoding="utf8")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks speed", description=__doc__)
    parser.add_argument("model", type=Path, help="tuned pipeline directory")
    parser.add_argument("test", type=Path, help=".spacy file with the texts")
    parser.add_argument("--name", default=None, help="results name (default: model dir)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--processes", type=int, default=2, help="pipe_scores workers (0: skip)")
    parser.add_argument("--update-doc", type=Path, default=None, help="render the figures here")
    parser.add_argument("--from-json", type=Path, default=None, help="render saved results")
    args = parser.parse_args(argv)
    tag = args.name or args.model.resolve().parent.name
    if args.from_json is not None:
        if args.update_doc is None:
            parser.error("--from-json needs --update-doc")
        update_doc(
            args.update_doc, json.loads(args.from_json.read_text()), str(args.from_json), tag
        )
        return

    import spacy
    from spacy.tokens import DocBin

    from textcat_kit.evaluation import find_textcat
    from textcat_kit.parallel import pipe_scores
    from textcat_kit.pipeline.fitted import raw_scores

    nlp = spacy.load(args.model)
    lang = nlp.lang
    texts = [doc.text for doc in DocBin().from_disk(args.test).get_docs(nlp.vocab)]
    blank = spacy.blank(lang)
    name, _ = find_textcat(nlp)
    size = args.batch_size

    def full() -> None:
        for _ in nlp.pipe(texts, batch_size=size):
            pass

    def raw() -> None:
        with raw_scores(nlp, name):
            for _ in nlp.pipe(texts, batch_size=size):
                pass

    runs = {
        "tokenizer": lambda: [None for _ in blank.pipe(texts, batch_size=size)],
        "raw": raw,
        "full": full,
    }
    full()  # warm up (first-call imports and caches)
    seconds = interleaved_best(runs, rounds=args.rounds)  # CPU time of this process
    if args.processes > 1:
        parallel = {
            "full": full,
            "pipe_scores": lambda: list(
                pipe_scores(nlp, texts, n_process=args.processes, batch_size=size)
            ),
        }
        wall = interleaved_best(parallel, rounds=args.rounds, clock="wall")
        seconds["pipe_scores"] = wall["pipe_scores"]
        pipe_scores_vs_full = wall["full"] / wall["pipe_scores"]
    docs_per_second = {key: len(texts) / value for key, value in seconds.items()}

    load = {"blank": float("inf"), "load": float("inf")}
    for _ in range(args.rounds):
        start = time.perf_counter()
        spacy.blank(lang)
        load["blank"] = min(load["blank"], time.perf_counter() - start)
        start = time.perf_counter()
        spacy.load(args.model)
        load["load"] = min(load["load"], time.perf_counter() - start)

    from textcat_kit import speedups

    results = {
        "compiled_kernels": speedups.KERNELS is not None,
        "model": str(args.model),
        "test": str(args.test),
        "n_docs": len(texts),
        "pipe_names": nlp.pipe_names,
        "docs_per_second": {key: round(value) for key, value in docs_per_second.items()},
        "full_vs_tokenizer": seconds["tokenizer"] / seconds["full"],
        "fitted_state_overhead": seconds["full"] / seconds["raw"] - 1.0,
        "load_seconds": load,
    }
    if args.processes > 1:
        results["pipe_scores_vs_full_wall"] = pipe_scores_vs_full
    for key, value in docs_per_second.items():
        print(f"{key:12s} {value:9.0f} docs/s")
    print(f"full pipeline / tokenizer throughput: {results['full_vs_tokenizer']:.3f}")
    print(f"calibration + decisions add: {100 * results['fitted_state_overhead']:+.1f}%")
    print(f"spacy.load {load['load']:.3f} s, spacy.blank {load['blank']:.3f} s (best of rounds)")
    command = ["python -m benchmarks speed", *(argv if argv is not None else [])]
    saved = write_results(f"speed_{tag}", results, command)
    print(f"wrote {saved}")
    if args.update_doc is not None:
        update_doc(args.update_doc, json.loads(saved.read_text()), str(saved), tag)

"""Per-doc cost of each step of the bow pipeline, to find where our components spend time.

``speed_pipeline.py`` gives the totals; this script splits them into the steps that
run per batch, timed on the same pre-scored docs, in CPU time of this process, best of
``--repeats`` (the least disturbed run on a shared machine):

* spaCy: tokenizer, ``textcat.predict``, ``textcat.set_annotations``;
* calibrator: read ``doc.cats`` into an array, transform, write ``doc.cats`` back;
* decision: read ``doc.cats``, decide, set ``doc._.decided_labels``.

The ``ours:`` rows time the helpers the components use (``cats_to_array``,
``write_cats``); ``whole _process`` is everything a component does per batch.

Run::

    python benchmarks/speed_components.py training/bench/banking77/bow/model-tuned \\
        corpus/banking77
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
import srsly  # noqa: E402
import typer  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))

from compare_systems import OUR_COMPONENTS, REPO_ROOT, block_torch, read_split  # noqa: E402

Step = Callable[[list[Any]], object]


def best_us_per_doc(step: Step, batches: list[list[Any]], repeats: int) -> float:
    """Least CPU time of ``repeats`` runs of ``step`` over all batches, in µs per doc."""
    n_docs = sum(len(batch) for batch in batches)
    best = float("inf")
    for _ in range(repeats):
        start = time.process_time()
        for batch in batches:
            step(batch)
        best = min(best, time.process_time() - start)
    return best / n_docs * 1e6


def component_steps(nlp: Any, texts: list[str]) -> tuple[dict[str, Step], list[list[Any]]]:
    """Every step as a function of a batch of docs, and the scored batches to run it on."""
    from textcat_kit.evaluation import find_textcat
    from textcat_kit.pipeline.fitted import cats_to_array, write_cats

    extra = [name for name in OUR_COMPONENTS if name in nlp.pipe_names]
    textcat = find_textcat(nlp)[1]
    labels = list(textcat.labels)
    with nlp.select_pipes(disable=extra):
        docs = list(nlp.pipe(texts))
    size = nlp.batch_size
    batches = [docs[i : i + size] for i in range(0, len(docs), size)]
    calibrator = nlp.get_pipe("textcat_kit_calibrator") if extra else None
    decision = nlp.get_pipe("textcat_kit_decision") if len(extra) == 2 else None
    texts_of = {id(batch): [doc.text for doc in batch] for batch in batches}
    scores_of = {id(batch): textcat.predict(batch) for batch in batches}
    probs_of = {id(batch): cats_to_array(batch, labels) for batch in batches}

    from spacy.tokens import Doc

    message = srsly.msgpack_dumps({"cats": {"label": 0.5}})

    def round_trip(batch: list[Any]) -> None:
        for doc in batch:
            Doc(nlp.vocab).from_bytes(doc.to_bytes())

    steps: dict[str, Step] = {
        "spaCy: tokenizer": lambda b: list(nlp.tokenizer.pipe(texts_of[id(b)])),
        "spaCy: textcat.predict": textcat.predict,
        "spaCy: textcat.set_annotations": lambda b: textcat.set_annotations(b, scores_of[id(b)]),
        "ours: read doc.cats (cats_to_array)": lambda b: cats_to_array(b, labels),
        "ours: write doc.cats (write_cats)": lambda b: write_cats(
            b, labels, np.asarray(scores_of[id(b)])
        ),
        # What nlp.pipe(n_process>1) adds per doc: the worker serialises each doc and
        # the parent deserialises it; each srsly.msgpack_loads asks catalogue for the
        # registered decoders, which scans the installed entry points on every call.
        "n_process>1 adds: Doc.to_bytes + Doc.from_bytes": round_trip,
        "  of which one srsly.msgpack_loads call": lambda b: [
            srsly.msgpack_loads(message) for _ in b
        ],
    }
    if calibrator is not None and calibrator.calibrator is not None:
        fitted = calibrator.calibrator
        steps.update(
            {
                "calibrator: transform": lambda b: fitted.transform(probs_of[id(b)]),
                "calibrator: whole _process": calibrator._process,
            }
        )
    if decision is not None:
        steps.update(
            {
                "decision: decide": lambda b: decision.decide(probs_of[id(b)]),
                "decision: whole _process": decision._process,
            }
        )
    return steps, batches


def run_component_breakdown(
    model: Path, corpus_dir: Path, *, n_docs: int = 10_000, repeats: int = 7
) -> dict[str, Any]:
    block_torch()
    import spacy

    from compare_systems import speed_texts
    from textcat_kit.evaluation import find_textcat

    nlp = spacy.load(model)
    labels = list(find_textcat(nlp)[1].labels)
    test, _ = read_split(corpus_dir / "test.spacy", labels)
    texts = speed_texts(test.texts, n_docs)
    steps, batches = component_steps(nlp, texts)
    load_before = os.getloadavg()[0]
    timings = {}
    for name, step in steps.items():
        timings[name] = best_us_per_doc(step, batches, repeats)
        print(f"{name:50s} {timings[name]:8.2f} µs/doc", flush=True)
    return {
        "model": str(model),
        "n_docs": len(texts),
        "n_labels": len(labels),
        "repeats": repeats,
        "us_per_doc": timings,
        "load_before": load_before,
        "load_after": os.getloadavg()[0],
    }


def main(
    model: Path = typer.Argument(..., help="A tuned pipeline (with calibrator + decision)."),
    corpus_dir: Path = typer.Argument(..., help="Corpus directory holding test.spacy."),
    n_docs: int = typer.Option(10_000),
    repeats: int = typer.Option(7),
    output: Path | None = typer.Option(
        None, help="Result JSON (default benchmarks/results/components_<corpus name>.json)."
    ),
) -> None:
    """Print and save µs/doc of every step."""
    report = run_component_breakdown(model, corpus_dir, n_docs=n_docs, repeats=repeats)
    report["command"] = "python benchmarks/speed_components.py " + " ".join(sys.argv[1:])
    output = output or REPO_ROOT / "benchmarks" / "results" / f"components_{corpus_dir.name}.json"
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(report, indent=2), encoding="utf8")


if __name__ == "__main__":
    typer.run(main)

"""Where the time goes in ``nlp.pipe`` for a tuned bag-of-words pipeline, in one run.

Stages, each timed over the same texts (test texts repeated to ``--n-docs``) in
interleaved rounds so that a burst of load on the shared machine hits all of them alike:

* ``tokenizer``: ``nlp.tokenizer.pipe`` alone, the limit for any spaCy pipeline;
* ``textcat``: the pipeline without our two components;
* ``full``: the pipeline with ``textcat_kit_calibrator`` + ``textcat_kit_decision``;
* ``components``: the two components alone, over docs the classifier already scored;
* ``tfidf_lr`` / ``fasttext`` (when ``--baselines-dir`` holds models from
  ``compare.py``): scikit-learn's TF-IDF transform + ``predict_proba``, fastText;
* ``full, n_process=2``: the full pipeline with two processes.

The overhead of our components is ``full / textcat - 1`` per round (median reported);
the multi-process speed-up is ``n_process=2 / full`` in the same round.

Run::

    python benchmarks/speed_pipeline.py training/bench/banking77/bow/model-tuned \\
        corpus/banking77 --baselines-dir training/bench/banking77
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import json  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import typer  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))

from compare_systems import (  # noqa: E402
    OUR_COMPONENTS,
    REPO_ROOT,
    FastText,
    TfidfLogReg,
    block_torch,
    read_split,
    speed_texts,
)

Stage = Callable[[], int]

STAGE_LABELS = {
    "tokenizer": "`nlp.tokenizer.pipe` (tokenizer alone)",
    "textcat": "`nlp.pipe`, tokenizer + textcat (our components disabled)",
    "full": "`nlp.pipe`, full pipeline (+ calibrator + decision)",
    "components": "calibrator + decision alone, on scored docs",
    "tfidf_lr": "scikit-learn TF-IDF transform + `predict_proba`",
    "fasttext": "fastText `predict` (all labels)",
    "full_2proc": "`nlp.pipe(n_process=2)`, full pipeline",
}


def time_stage(stage: Stage) -> float:
    """docs/s of one run of ``stage``."""
    start = time.perf_counter()
    n_docs = stage()
    return n_docs / (time.perf_counter() - start)


def overhead_percent(full_docs_per_s: float, without_docs_per_s: float) -> float:
    """Extra time of the full pipeline over the pipeline without our components, in %."""
    return (without_docs_per_s / full_docs_per_s - 1.0) * 100.0


def pipeline_stages(nlp: Any, texts: list[str], n_process: int) -> dict[str, Stage]:
    """The spaCy stages over ``texts``; ``components`` reruns our two on pre-scored docs."""
    extra = [name for name in OUR_COMPONENTS if name in nlp.pipe_names]
    with nlp.select_pipes(disable=extra):
        scored = list(nlp.pipe(texts))

    def tokenizer() -> int:
        return sum(1 for _ in nlp.tokenizer.pipe(texts, batch_size=nlp.batch_size))

    def textcat() -> int:
        with nlp.select_pipes(disable=extra):
            return sum(1 for _ in nlp.pipe(texts))

    def full() -> int:
        return sum(1 for _ in nlp.pipe(texts))

    def components() -> int:
        # Re-calibrating calibrated scores costs the same as calibrating raw ones.
        docs: Any = iter(scored)
        for name in extra:
            docs = nlp.get_pipe(name).pipe(docs, batch_size=nlp.batch_size)
        return sum(1 for _ in docs)

    def full_multi() -> int:
        return sum(1 for _ in nlp.pipe(texts, n_process=n_process))

    stages = {"tokenizer": tokenizer, "textcat": textcat, "full": full}
    if extra:
        stages["components"] = components
    if n_process > 1:
        stages["full_2proc"] = full_multi
    return stages


def baseline_stages(
    baselines_dir: Path | None, labels: list[str], exclusive: bool, texts: list[str]
) -> dict[str, Stage]:
    """TF-IDF + LR and fastText over ``texts``, for the models ``compare.py`` left there."""
    stages: dict[str, Stage] = {}
    if baselines_dir is None:
        return stages
    for system in (TfidfLogReg(), FastText()):
        workdir = baselines_dir / system.name
        if system.available() is None and system.model_path(workdir).exists():
            predictor = system.load(labels, exclusive, workdir)
            stages[system.name] = lambda p=predictor: p.run(texts, 1)
        else:
            print(f"no {system.name} model under {workdir}; skipped", flush=True)
    return stages


def measure(stages: dict[str, Stage], rounds: int) -> dict[str, list[float]]:
    """docs/s of every stage in each of ``rounds`` interleaved rounds (after a warm-up)."""
    runs: dict[str, list[float]] = {name: [] for name in stages}
    for name, stage in stages.items():
        if name != "full_2proc":
            stage()
    for round_index in range(rounds):
        for name, stage in stages.items():
            runs[name].append(time_stage(stage))
        summary = ", ".join(f"{n} {r[-1]:,.0f}" for n, r in runs.items())
        print(f"round {round_index + 1}/{rounds}: {summary} docs/s", flush=True)
    return runs


def speed_report(runs: dict[str, list[float]]) -> dict[str, Any]:
    """Medians, the per-round overhead of our components and the multi-process ratio."""
    report: dict[str, Any] = {
        "stages": {
            name: {
                "label": STAGE_LABELS.get(name, name),
                "docs_per_s": statistics.median(values),
                "runs": values,
            }
            for name, values in runs.items()
        }
    }
    if "full" in runs and "textcat" in runs:
        per_round = [
            overhead_percent(full, without)
            for full, without in zip(runs["full"], runs["textcat"], strict=True)
        ]
        report["overhead"] = {
            "percent": statistics.median(per_round),
            "per_round_percent": per_round,
        }
    if "full_2proc" in runs:
        ratios = [m / s for m, s in zip(runs["full_2proc"], runs["full"], strict=True)]
        report["multiprocess"] = {
            "docs_per_s_1proc": statistics.median(runs["full"]),
            "docs_per_s_2proc": statistics.median(runs["full_2proc"]),
            "ratio": statistics.median(ratios),
            "per_round_ratio": ratios,
        }
    return report


def machine_load() -> dict[str, float]:
    load = os.getloadavg()
    return {"loadavg_1m": round(load[0], 2), "loadavg_5m": round(load[1], 2)}


def run_speed_breakdown(
    model: Path,
    corpus_dir: Path,
    *,
    baselines_dir: Path | None = None,
    n_docs: int = 50_000,
    rounds: int = 5,
    n_process: int = 2,
) -> dict[str, Any]:
    """Measure every stage on ``n_docs`` test texts of ``corpus_dir``; the result dict."""
    block_torch()
    import spacy

    from textcat_kit.evaluation import find_textcat, is_exclusive

    nlp = spacy.load(model)
    _, textcat = find_textcat(nlp)
    labels, exclusive = list(textcat.labels), is_exclusive(textcat)
    test, _ = read_split(corpus_dir / "test.spacy", labels)
    texts = speed_texts(test.texts, n_docs)
    stages = pipeline_stages(nlp, texts, n_process)
    stages.update(baseline_stages(baselines_dir, labels, exclusive, texts))
    load_before = machine_load()
    runs = measure(stages, rounds)
    report = speed_report(runs)
    report.update(
        {
            "model": str(_relative(model)),
            "pipeline": nlp.pipe_names,
            "batch_size": nlp.batch_size,
            "n_docs": len(texts),
            "rounds": rounds,
            "load_before": load_before,
            "load_after": machine_load(),
        }
    )
    return report


def _relative(path: Path) -> Path:
    path = path.resolve()
    return path.relative_to(REPO_ROOT) if path.is_relative_to(REPO_ROOT) else path


def main(
    model: Path = typer.Argument(..., help="A tuned pipeline (with calibrator + decision)."),
    corpus_dir: Path = typer.Argument(..., help="Corpus directory holding test.spacy."),
    baselines_dir: Path | None = typer.Option(
        None, help="compare.py's workdir for this dataset (tfidf_lr/, fasttext/ inside)."
    ),
    n_docs: int = typer.Option(50_000),
    rounds: int = typer.Option(5),
    n_process: int = typer.Option(2),
    output: Path | None = typer.Option(
        None, help="Result JSON (default benchmarks/results/speed_<corpus name>.json)."
    ),
) -> None:
    """Print and save docs/s of every stage and the overhead of our components."""
    report = run_speed_breakdown(
        model, corpus_dir, baselines_dir=baselines_dir, n_docs=n_docs, rounds=rounds,
        n_process=n_process,
    )
    report["command"] = "python " + " ".join(
        [str(_relative(Path(sys.argv[0])))] + [str(a) for a in sys.argv[1:]]
    )
    output = output or REPO_ROOT / "benchmarks" / "results" / f"speed_{corpus_dir.name}.json"
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(report, indent=2), encoding="utf8")
    from compare_report import speed_section

    print(speed_section(report))


if __name__ == "__main__":
    typer.run(main)

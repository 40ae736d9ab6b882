"""Where the time goes in ``nlp.pipe`` for a tuned bag-of-words pipeline, in one run.

Stages, each timed over the same texts (test texts repeated to ``--n-docs``) in
interleaved rounds so that a burst of load on the shared machine hits all of them alike:

* ``tokenizer``: ``nlp.tokenizer.pipe`` alone, the limit for any spaCy pipeline;
* ``textcat``: the pipeline without our two components;
* ``full``: the pipeline with ``textcat_kit_calibrator`` + ``textcat_kit_decision``;
* ``components``: the two components alone, over docs the classifier already scored;
* ``tfidf_lr`` / ``fasttext`` (when ``--baselines-dir`` holds models from
  ``compare.py``): scikit-learn's TF-IDF transform + ``predict_proba``, fastText;
* ``full_2proc``: ``nlp.pipe(n_process=2)``, docs come back to the parent;
* ``full_pool2``: :func:`textcat_kit.parallel.pipe_scores` with ``n_process=2``: forked
  processes run ``nlp.pipe`` over batches and send back score arrays and decided labels.

The machine is shared, so every single-process stage is timed twice: wall clock and the
CPU time of this process (``time.process_time``), which waiting for a core does not
inflate. The overhead of our components is ``textcat docs/s / full docs/s - 1`` in CPU
time, per round (median reported, best-of-rounds beside it); the multi-process
speed-ups are wall-clock ratios to the single-process full pipeline in the same round.

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
    "full_2proc": "`nlp.pipe(n_process=2)`, full pipeline, docs back",
    "full_pool2": "`textcat_kit.parallel.pipe_scores(n_process=2)`, scores + decided labels back",
}
#: Stages whose work happens in other processes: only their wall clock means anything.
MULTIPROCESS_STAGES = ("full_2proc", "full_pool2")


def time_stage(stage: Stage) -> tuple[float, float]:
    """docs/s of one run of ``stage``: by wall clock and by this process's CPU time."""
    wall, cpu = time.perf_counter(), time.process_time()
    n_docs = stage()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return n_docs / wall, n_docs / max(cpu, 1e-9)


def overhead_percent(full_docs_per_s: float, without_docs_per_s: float) -> float:
    """Extra time of the full pipeline over the pipeline without our components, in %."""
    return (without_docs_per_s / full_docs_per_s - 1.0) * 100.0


def pipeline_stages(nlp: Any, texts: list[str], n_process: int) -> dict[str, Stage]:
    """The spaCy stages over ``texts``; ``components`` reruns our two on pre-scored docs."""
    from textcat_kit.parallel import pipe_scores

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

    def full_pool() -> int:
        batches = pipe_scores(nlp, texts, n_process=n_process, batch_size=nlp.batch_size)
        return sum(len(batch.scores) for batch in batches)

    stages = {"tokenizer": tokenizer, "textcat": textcat, "full": full}
    if extra:
        stages["components"] = components
    if n_process > 1:
        stages["full_2proc"] = full_multi
        stages["full_pool2"] = full_pool
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
            stages[system.name] = _single_process(system.load(labels, exclusive, workdir), texts)
        else:
            print(f"no {system.name} model under {workdir}; skipped", flush=True)
    return stages


def _single_process(predictor: Any, texts: list[str]) -> Stage:
    def stage() -> int:
        return int(predictor.run(texts, 1))

    return stage


def measure(
    stages: dict[str, Stage], rounds: int, multiprocess_rounds: int | None = None
) -> dict[str, dict[str, list[float]]]:
    """Wall and CPU docs/s of every stage in each of ``rounds`` interleaved rounds.

    Multi-process stages run in the first ``multiprocess_rounds`` rounds only (default:
    all), because spaCy's ``n_process`` path can take minutes per run here.
    """
    if multiprocess_rounds is None:
        multiprocess_rounds = rounds
    runs: dict[str, dict[str, list[float]]] = {n: {"wall": [], "cpu": []} for n in stages}
    for name, stage in stages.items():
        if name not in MULTIPROCESS_STAGES:
            stage()  # warm-up: caches, lexemes, lazy imports
    for round_index in range(rounds):
        for name, stage in stages.items():
            if name in MULTIPROCESS_STAGES and round_index >= multiprocess_rounds:
                continue
            wall, cpu = time_stage(stage)
            runs[name]["wall"].append(wall)
            runs[name]["cpu"].append(cpu)
        summary = ", ".join(f"{n} {r['wall'][-1]:,.0f}" for n, r in runs.items() if r["wall"])
        print(f"round {round_index + 1}/{rounds} (wall docs/s): {summary}", flush=True)
    return runs


def speed_report(runs: dict[str, dict[str, list[float]]]) -> dict[str, Any]:
    """Medians per stage, our components' overhead (CPU time) and multi-process ratios."""
    stages: dict[str, Any] = {}
    for name, values in runs.items():
        stage: dict[str, Any] = {
            "label": STAGE_LABELS.get(name, name),
            "docs_per_s": statistics.median(values["wall"]),
            "runs": values["wall"],
        }
        if name not in MULTIPROCESS_STAGES:
            stage["cpu_docs_per_s"] = statistics.median(values["cpu"])
            stage["cpu_runs"] = values["cpu"]
        stages[name] = stage
    report: dict[str, Any] = {"stages": stages}
    if "full" in runs and "textcat" in runs:
        full, without = runs["full"]["cpu"], runs["textcat"]["cpu"]
        per_round = [overhead_percent(f, w) for f, w in zip(full, without, strict=True)]
        report["overhead"] = {
            "percent": statistics.median(per_round),
            "best_of_rounds_percent": overhead_percent(max(full), max(without)),
            "per_round_percent": per_round,
            "clock": "CPU time of this process",
        }
    for name in MULTIPROCESS_STAGES:
        if name in runs:
            # Multi-process stages may have run in the first rounds only.
            single = runs["full"]["wall"][: len(runs[name]["wall"])]
            ratios = [m / s for m, s in zip(runs[name]["wall"], single, strict=True)]
            report[f"{name}_ratio"] = {
                "docs_per_s_1proc": statistics.median(single),
                "docs_per_s_multi": statistics.median(runs[name]["wall"]),
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
    multiprocess_rounds: int | None = None,
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
    runs = measure(stages, rounds, multiprocess_rounds)
    report = speed_report(runs)
    report.update(
        {
            "model": str(_relative(model)),
            "pipeline": nlp.pipe_names,
            "batch_size": nlp.batch_size,
            "n_docs": len(texts),
            "rounds": rounds,
            "multiprocess_rounds": multiprocess_rounds or rounds,
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
    multiprocess_rounds: int | None = typer.Option(
        None, help="Run the multi-process stages in the first N rounds only (default: all)."
    ),
    output: Path | None = typer.Option(
        None, help="Result JSON (default benchmarks/results/speed_<corpus name>.json)."
    ),
) -> None:
    """Print and save docs/s of every stage and the overhead of our components."""
    report = run_speed_breakdown(
        model,
        corpus_dir,
        baselines_dir=baselines_dir,
        n_docs=n_docs,
        rounds=rounds,
        n_process=n_process,
        multiprocess_rounds=multiprocess_rounds,
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

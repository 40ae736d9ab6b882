"""Compare this project's pipelines with what users would pick instead, on the same splits.

For each dataset (a ``textcat-kit corpus`` directory) and each system (see
:mod:`compare_systems`) three phases run, each in a fresh Python process so that its
peak RSS and timings belong to it alone:

1. ``train``: train (choosing the baselines' setting on dev), timed, and the peak RSS
   of the process (which read the ``.spacy`` corpus with spaCy, whatever the system);
2. ``predict``: dev and test probabilities (and, for our pipelines, calibrated scores and
   the decision component's decisions via :func:`textcat_kit.evaluation.evaluate`),
   saved as ``.npy``;
3. ``speed``: load the model, then docs/s over ``--n-speed-docs`` texts made by repeating
   the test texts, single process (best of ``--repeats``; peak RSS read here) and with
   ``n_process=2`` (one run).

The scores are then computed here with the same dev-fitted decision rules for every
system (:mod:`compare_metrics`) and written to ``benchmarks/results/<dataset>.json``;
``python benchmarks/compare.py report`` turns all result files into ``RESULTS.md``.

Run (Banking77, all systems but the slow quickstart, then the quickstart alone, when the
machine is quiet)::

    python benchmarks/compare.py run --dataset banking77 --systems bow,tfidf_lr,fasttext
    python benchmarks/compare.py run --dataset banking77 --systems quickstart
    python benchmarks/compare.py report

Threads: BLAS / OpenMP pools are pinned to one thread (before NumPy is imported) so that
"single process" means one core for every system and ``n_process=2`` means two.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import json  # noqa: E402
import platform  # noqa: E402
import resource  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import TYPE_CHECKING, Any  # noqa: E402

import numpy as np  # noqa: E402
import typer  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))

# compare_metrics / compare_report (scikit-learn, textcat_kit) are imported where used:
# the speed phase of a baseline must not carry spaCy's or scikit-learn's memory.
from compare_systems import (  # noqa: E402
    REPO_ROOT,
    SYSTEM_NAMES,
    Corpus,
    System,
    Timer,
    block_torch,
    directory_size,
    make_system,
    read_corpus,
    speed_texts,
)

if TYPE_CHECKING:
    from compare_metrics import ScoreRow

DATASETS = {"banking77": "corpus/banking77", "goemotions": "corpus/goemotions"}
PHASES = ("train", "predict", "speed")

app = typer.Typer(add_completion=False, help=__doc__.split("\n\n")[0])


# --- measurement helpers ---------------------------------------------------------------------


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, in MiB.

    ``VmHWM`` of ``/proc/self/status``, not ``ru_maxrss``: Linux carries ``ru_maxrss``
    over from the parent through fork and exec, so every worker would report at least
    the orchestrator's size. Falls back to ``ru_maxrss`` where there is no ``/proc``.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def machine_load() -> dict[str, Any]:
    """What else the machine was doing: load averages and the busiest other processes."""
    load = os.getloadavg()
    busy = []
    try:
        out = subprocess.run(
            ["ps", "-eo", "pid,pcpu,etime,args", "--sort=-pcpu", "--no-headers"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.splitlines()
        mine = {os.getpid(), os.getppid()}
        for line in out[:8]:
            pid, pcpu, _, args = line.split(None, 3)
            if int(pid) not in mine and float(pcpu) >= 20.0 and not args.startswith("ps "):
                busy.append(f"{float(pcpu):.0f}% {args[:60]}")
    except (OSError, ValueError):
        pass
    return {"loadavg_1m": round(load[0], 2), "loadavg_5m": round(load[1], 2), "busy": busy}


def run_isolated(command: list[str]) -> int:
    """Run ``command`` in a fresh Python process and return its exit code."""
    return subprocess.run(command, check=False).returncode


def machine_info() -> dict[str, Any]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "threads_per_process": os.environ.get("OMP_NUM_THREADS"),
    }


# --- the phases ------------------------------------------------------------------------------


def system_dir(workdir: Path, corpus_name: str, system: str) -> Path:
    return workdir / corpus_name / system


def train_phase(system: System, corpus: Corpus, workdir: Path) -> dict[str, Any]:
    load_before = machine_load()
    report = system.train(corpus, workdir)
    report["peak_rss_mb"] = peak_rss_mb()
    report["load_before"] = load_before
    report["load_after"] = machine_load()
    report["model_bytes"] = directory_size(system.model_path(workdir))
    return report


def predict_phase(system: System, corpus: Corpus, workdir: Path) -> dict[str, Any]:
    predictor = system.load(corpus.labels, corpus.exclusive, workdir)
    arrays = {f"dev_{k}": v for k, v in predictor.predict(corpus.dev.texts).items()}
    test = predictor.predict(corpus.test.texts, corpus.test.gold)
    arrays.update({f"test_{k}": v for k, v in test.items()})
    out = workdir / "predictions"
    out.mkdir(parents=True, exist_ok=True)
    for name, array in arrays.items():
        np.save(out / f"{name}.npy", array, allow_pickle=False)
    report: dict[str, Any] = {"arrays": sorted(arrays)}
    summary = getattr(predictor, "evaluate_summary", None)
    if summary:
        report["evaluate"] = summary
    return report


def speed_phase(
    system: System,
    labels: list[str],
    exclusive: bool,
    workdir: Path,
    texts: list[str],
    repeats: int,
    n_processes: tuple[int, ...] = (2,),
) -> dict[str, Any]:
    """docs/s of full inference; single process best of ``repeats``, then multi-process."""
    with Timer() as loading:
        predictor = system.load(labels, exclusive, workdir)
    predictor.run(texts[:2000], 1)
    load_before = machine_load()
    single = []
    for _ in range(repeats):
        with Timer() as timer:
            n_docs = predictor.run(texts, 1)
        single.append(n_docs / timer.seconds)
    report: dict[str, Any] = {
        "n_docs": len(texts),
        "load_s": loading.seconds,
        "docs_per_s": max(single),
        "docs_per_s_runs": single,
        "peak_rss_mb": peak_rss_mb(),
    }
    for n_process in n_processes:
        # One run: spaCy's n_process path can be slow here (see RESULTS.md), and the
        # ratio that matters is measured again, interleaved, by speed_pipeline.py.
        with Timer() as timer:
            n_docs = predictor.run(texts, n_process)
        report[f"docs_per_s_{n_process}proc"] = n_docs / timer.seconds
    report["load_before"] = load_before
    report["load_after"] = machine_load()
    return report


# --- scoring ---------------------------------------------------------------------------------


def load_predictions(directory: Path) -> dict[str, np.ndarray]:
    return {
        path.stem: np.load(path, allow_pickle=False)
        for path in sorted((directory / "predictions").glob("*.npy"))
    }


def score_rows(name: str, arrays: dict[str, np.ndarray], corpus: Corpus) -> list[ScoreRow]:
    """All rows of one system: its raw scores under every rule, plus ours after tuning."""
    from compare_metrics import argmax_decisions, score_decided, score_system
    from textcat_kit.maths.metrics import decide

    dev, test, exclusive = corpus.dev.gold, corpus.test.gold, corpus.exclusive
    rows = score_system(name, "raw", arrays["dev_raw"], dev, arrays["test_raw"], test, exclusive)
    calibrated = arrays.get("test_calibrated")
    if calibrated is not None:
        rule, decided = (
            ("argmax", argmax_decisions(calibrated))
            if exclusive
            else ("0.5", decide(calibrated, 0.5))
        )
        rows.append(score_decided(name, "calibrated", rule, calibrated, decided, test, exclusive))
    if calibrated is not None and "test_decided" in arrays:
        rule = "decision component" + (" (abstain)" if exclusive else " (per-label)")
        rows.append(
            score_decided(
                name, "calibrated", rule, calibrated, arrays["test_decided"], test, exclusive
            )
        )
    return rows


# --- commands --------------------------------------------------------------------------------


def _corpus_dir(dataset: str | None, corpus_dir: Path | None) -> tuple[str, Path]:
    if corpus_dir is not None:
        return corpus_dir.name, corpus_dir
    if dataset not in DATASETS:
        raise typer.BadParameter(f"[E173] Unknown dataset {dataset!r}; pass --corpus-dir.")
    return dataset, REPO_ROOT / DATASETS[dataset]


def _parse_overrides(pairs: list[str]) -> dict[str, Any]:
    """``key=value`` pairs; values are JSON where they parse (as ``spacy train`` does)."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, _, value = pair.partition("=")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


@app.command("phase", hidden=True)
def phase_command(
    phase: str = typer.Argument(..., help="train | predict | speed"),
    system_name: str = typer.Option(..., "--system"),
    corpus_dir: Path = typer.Option(...),
    workdir: Path = typer.Option(...),
    n_speed_docs: int = typer.Option(50_000),
    repeats: int = typer.Option(3),
    override: list[str] = typer.Option([], help="spaCy config override key=value"),
    reuse_model: Path | None = typer.Option(None),
) -> None:
    """One phase of one system, run in its own process; writes ``<workdir>/<phase>.json``."""
    # No system here uses torch; without the block thinc would import it into every
    # process that imports spaCy (to read the corpus) and inflate the RSS of all of them.
    block_torch()
    system = make_system(system_name, overrides=_parse_overrides(override), reuse_model=reuse_model)
    report = run_phase(phase, system, corpus_dir, workdir, n_speed_docs, repeats)
    (workdir / f"{phase}.json").write_text(json.dumps(report, indent=2), encoding="utf8")


def run_phase(
    phase: str,
    system: System,
    corpus_dir: Path,
    workdir: Path,
    n_speed_docs: int,
    repeats: int,
    corpus: Corpus | None = None,
) -> dict[str, Any]:
    """Run ``phase``; ``corpus`` saves reading ``corpus_dir`` again when run in-process."""
    started = time.strftime("%Y-%m-%d %H:%M:%S")
    workdir.mkdir(parents=True, exist_ok=True)
    speed_input = workdir / "speed_input.json"
    if phase == "speed":
        # Texts from a JSON file, not the corpus: a serving process holds no training
        # data and imports nothing it does not need.
        meta = json.loads(speed_input.read_text(encoding="utf8"))
        report = speed_phase(
            system, meta["labels"], meta["exclusive"], workdir, meta["texts"], repeats
        )
    elif phase == "train":
        report = train_phase(system, corpus or read_corpus(corpus_dir), workdir)
    elif phase == "predict":
        corpus = corpus or read_corpus(corpus_dir)
        texts = speed_texts(corpus.test.texts, n_speed_docs)
        meta = {"labels": corpus.labels, "exclusive": corpus.exclusive, "texts": texts}
        speed_input.write_text(json.dumps(meta), encoding="utf8")
        report = predict_phase(system, corpus, workdir)
    else:
        raise typer.BadParameter(f"Unknown phase {phase!r}; choose from {', '.join(PHASES)}.")
    return {"started": started, **report}


def benchmark_system(
    name: str,
    corpus: Corpus,
    workdir: Path,
    *,
    n_speed_docs: int,
    repeats: int,
    isolate: bool,
    overrides: dict[str, Any],
    reuse_model: Path | None,
    phases: tuple[str, ...] = PHASES,
) -> dict[str, Any]:
    """Train, predict and time one system; the entry of the results file.

    Phases not in ``phases`` are not rerun: their report is read from the previous run's
    ``<phase>.json`` (e.g. to time inference again when the machine is quieter).
    """
    system = make_system(name, overrides=overrides, reuse_model=reuse_model)
    entry: dict[str, Any] = {"description": system.description}
    reason = system.available()
    if reason is not None:
        print(f"[{corpus.name}] skipping {name}: {reason}", flush=True)
        return {**entry, "skipped": reason}
    directory = system_dir(workdir, corpus.name, name)
    for phase in PHASES:
        saved = directory / f"{phase}.json"
        if phase not in phases:
            if not saved.is_file():
                raise FileNotFoundError(
                    f"[E176] No earlier {phase} phase of {name} in {directory}; "
                    f"run it first (--phases {phase})."
                )
            entry[phase] = json.loads(saved.read_text(encoding="utf8"))
            continue
        print(f"[{corpus.name}] {name}: {phase} ...", flush=True)
        if isolate:
            command = [
                sys.executable,
                str(Path(__file__).resolve()),
                "phase",
                phase,
                "--system",
                name,
                "--corpus-dir",
                str(corpus.directory),
                "--workdir",
                str(directory),
                "--n-speed-docs",
                str(n_speed_docs),
                "--repeats",
                str(repeats),
            ]
            for key, value in overrides.items():
                command += ["--override", f"{key}={value}"]
            if reuse_model is not None:
                command += ["--reuse-model", str(reuse_model)]
            code = run_isolated(command)
            if code != 0:
                raise RuntimeError(
                    f"[E175] {name} {phase} phase failed (exit code {code}); its traceback "
                    "is printed above. Rerun that phase alone with the command: "
                    + " ".join(command)
                )
            report = json.loads((directory / f"{phase}.json").read_text(encoding="utf8"))
        else:
            report = run_phase(
                phase, system, corpus.directory, directory, n_speed_docs, repeats, corpus
            )
            saved.write_text(json.dumps(report, indent=2), encoding="utf8")
        entry[phase] = report
    return entry


def _merge_results(path: Path, corpus: Corpus, systems: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    if path.is_file():
        result = json.loads(path.read_text(encoding="utf8"))
    result.update(
        {
            "dataset": corpus.name,
            "task": "exclusive" if corpus.exclusive else "multilabel",
            "n_labels": len(corpus.labels),
            "n_docs": {
                "train": len(corpus.train.texts),
                "dev": len(corpus.dev.texts),
                "test": len(corpus.test.texts),
            },
            "machine": machine_info(),
        }
    )
    result.setdefault("systems", {}).update(systems)
    return result


def compare_dataset(
    dataset: str,
    corpus_dir: Path,
    systems: list[str],
    *,
    workdir: Path,
    results_dir: Path,
    n_speed_docs: int = 50_000,
    repeats: int = 3,
    isolate: bool = True,
    overrides: dict[str, Any] | None = None,
    reuse_model: Path | None = None,
    phases: tuple[str, ...] = PHASES,
) -> dict[str, Any]:
    """Benchmark ``systems`` on one corpus; merge into ``<results_dir>/<dataset>.json``."""
    corpus = read_corpus(corpus_dir, dataset)
    entries: dict[str, Any] = {}
    for name in systems:
        entry = benchmark_system(
            name,
            corpus,
            workdir,
            n_speed_docs=n_speed_docs,
            repeats=repeats,
            isolate=isolate,
            overrides=overrides or {},
            reuse_model=reuse_model,
            phases=phases,
        )
        if "skipped" not in entry:
            arrays = load_predictions(system_dir(workdir, corpus.name, name))
            entry["rows"] = [row.to_dict() for row in score_rows(name, arrays, corpus)]
        entries[name] = entry
    results_dir.mkdir(parents=True, exist_ok=True)
    path = results_dir / f"{dataset}.json"
    result = _merge_results(path, corpus, entries)
    path.write_text(json.dumps(result, indent=2, default=float), encoding="utf8")
    return result


@app.command("run")
def run_command(
    dataset: list[str] = typer.Option(["banking77"], help="banking77 | goemotions (repeatable)."),
    corpus_dir: Path | None = typer.Option(None, help="Any corpus directory instead."),
    systems: str = typer.Option(
        "bow,tfidf_lr,fasttext", help=f"Comma-separated, from {', '.join(SYSTEM_NAMES)}."
    ),
    workdir: Path = typer.Option(REPO_ROOT / "training" / "bench", help="Models go here."),
    results_dir: Path = typer.Option(REPO_ROOT / "benchmarks" / "results"),
    n_speed_docs: int = typer.Option(50_000, help="Texts in the inference-speed input."),
    repeats: int = typer.Option(3, help="Single-process speed runs (best is kept)."),
    isolate: bool = typer.Option(True, help="Each phase in its own process (peak RSS)."),
    override: list[str] = typer.Option([], help="spaCy config override key=value."),
    reuse_model: Path | None = typer.Option(
        None, help="Tune this trained model-best instead of training bow/cnn (not timed)."
    ),
    phases: str = typer.Option(
        ",".join(PHASES), help="Phases to run; the others are read from the last run."
    ),
) -> None:
    """Benchmark the systems on each dataset and print the tables."""
    selected = [p.strip() for p in phases.split(",") if p.strip()]
    if not set(selected) <= set(PHASES):
        raise typer.BadParameter(f"[E174] Unknown phase in {selected}; choose from {PHASES}.")
    names = [s.strip() for s in systems.split(",") if s.strip()]
    unknown = sorted(set(names) - set(SYSTEM_NAMES))
    if unknown:
        raise typer.BadParameter(f"[E172] Unknown system(s) {unknown}; from {SYSTEM_NAMES}.")
    targets = (
        [_corpus_dir(None, corpus_dir)] if corpus_dir else [_corpus_dir(d, None) for d in dataset]
    )
    for name, directory in targets:
        result = compare_dataset(
            name,
            directory,
            names,
            workdir=workdir,
            results_dir=results_dir,
            n_speed_docs=n_speed_docs,
            repeats=repeats,
            isolate=isolate,
            overrides=_parse_overrides(override),
            reuse_model=reuse_model,
            phases=tuple(selected),
        )
        from compare_report import dataset_tables

        print(dataset_tables(result))


@app.command("report")
def report_command(
    results_dir: Path = typer.Option(REPO_ROOT / "benchmarks" / "results"),
    output: Path = typer.Option(REPO_ROOT / "benchmarks" / "RESULTS.md"),
) -> None:
    """Write RESULTS.md from every result file in ``results_dir``."""
    from compare_report import write_results_markdown

    write_results_markdown(results_dir, output)
    print(f"wrote {output}")


if __name__ == "__main__":
    app()

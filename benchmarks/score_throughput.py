"""Throughput and memory of ``textcat-kit score`` against in-process ``nlp.pipe``.

Input: ``--n-texts`` short texts (Banking77 test + train texts, each with a numeric suffix so
no two are equal) in one Parquet file; output: Parquet with all probabilities. Stages, timed
in interleaved rounds so that a burst of load on the shared machine hits all of them alike:

* ``nlp_pipe``: ``for doc in nlp.pipe(texts)`` over the texts in memory, with
  ``doc.cats`` / ``doc._.decided_labels`` read (the figure the one-process scorer is held to;
  the pipeline is loaded fresh each round and its loading is not timed);
* ``score_1``: :func:`textcat_kit.scoring.score_files` with one process (reads the Parquet,
  scores, writes parts, assembles the output);
* ``score_2``: the same with ``n_process=2`` (forked workers);
* ``ray_2``: the same with ``engine="ray"`` and two actors on a local Ray started by the
  job (its start-up is part of the wall clock).

Every stage runs in a fresh Python process (as ``textcat-kit score`` does), so that what one
stage leaves behind in memory (pipelines, lexemes, objects the garbage collector then walks)
cannot slow the next; the pipeline is loaded before the timer starts for ``nlp_pipe`` only.

Reported per round: wall seconds and texts/s of each stage; CPU seconds of the stage's process
for the two single-process stages (waiting for a core does not inflate them); the ratios
``score_1 / nlp_pipe`` (throughput), ``score_2 / score_1`` and ``ray_2 / score_1``.

``--rss`` also runs ``textcat-kit score`` (one process) in a child process on the first
``--rss-small`` texts and on all of them, and reports each child's peak RSS
(``getrusage(RUSAGE_CHILDREN).ru_maxrss``, a fresh Python per size).

Run (from the repository root; writes ``benchmarks/results/score_throughput.json`` and the
figures of docs/batch-scoring.md)::

    python -m benchmarks score_throughput training/banking77-bow/model-tuned \\
        --n-texts 1000000 --rounds 1 --rss --update-doc docs/batch-scoring.md

The shared machine has 2 cores and other work running: compare ratios within a round and
across rounds, not absolute figures between runs.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import csv  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import resource  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import typer  # noqa: E402

from textcat_kit.scoring import ScoreSettings, score_files  # noqa: E402

from ._common import replace_block, shared_data, write_results  # noqa: E402

NAME = "score_throughput"
app = typer.Typer(add_completion=False)


def make_texts(data_dir: Path, n: int) -> list[str]:
    """``n`` distinct short texts: Banking77 texts, each with a numeric suffix."""
    base: list[str] = []
    for name in ("test.csv", "train.csv"):
        with open(data_dir / name, newline="", encoding="utf8") as fh:
            base += [row["text"] for row in csv.DictReader(fh)]
    return [f"{base[i % len(base)]} #{i}" for i in range(n)]


def write_parquet(texts: list[str], path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table({"id": [f"t{i}" for i in range(len(texts))], "text": texts})
    pq.write_table(table, path, row_group_size=100_000)


def time_nlp_pipe(nlp: Any, texts: list[str]) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    n = 0
    for doc in nlp.pipe(texts, batch_size=1000):
        _ = doc.cats, doc._.decided_labels
        n += 1
    assert n == len(texts)
    return time.perf_counter() - wall, time.process_time() - cpu


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def time_score(
    model: str, source: Path, out: Path, settings: ScoreSettings
) -> tuple[float, float, float, int]:
    """Wall, CPU of this process, CPU of its (reaped) child processes, texts scored."""
    if out.exists():
        out.unlink()
    wall, cpu, children = time.perf_counter(), time.process_time(), _children_cpu()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = score_files(model, source, out, settings)
    return (
        time.perf_counter() - wall,
        time.process_time() - cpu,
        _children_cpu() - children,
        result.summary.scored,
    )


def run_stage(
    stage: str, model: str, source: Path, out: Path, settings: ScoreSettings | None
) -> dict[str, Any]:
    """Time one stage in a fresh Python process; returns its figures."""
    import dataclasses

    args = {
        "stage": stage,
        "model": model,
        "source": str(source),
        "out": str(out),
        "settings": dataclasses.asdict(settings) if settings is not None else None,
    }
    code = (
        "import json, sys\n"
        "from benchmarks.score_throughput import _stage_here\n"
        "print('STAGE_RESULT', json.dumps(_stage_here(json.loads(sys.argv[1]))))\n"
    )
    root = Path(__file__).resolve().parents[1]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")]),
    }
    proc = subprocess.run(
        [sys.executable, "-c", code, json.dumps(args)],
        capture_output=True,
        text=True,
        cwd=root,
        env=env,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"stage {stage} failed:\n{proc.stderr[-4000:]}")
    line = next(x for x in proc.stdout.splitlines() if x.startswith("STAGE_RESULT "))
    return json.loads(line.split(" ", 1)[1])


def _stage_here(args: dict[str, Any]) -> dict[str, Any]:
    """The body of :func:`run_stage`, in the child process."""
    source, out = Path(args["source"]), Path(args["out"])
    if args["stage"] == "nlp_pipe":
        import pyarrow.parquet as pq
        import spacy

        texts = pq.read_table(source, columns=["text"]).column("text").to_pylist()
        nlp = spacy.load(args["model"])
        wall, cpu = time_nlp_pipe(nlp, texts)
        return {"wall_s": wall, "cpu_s": cpu, "texts_per_s": len(texts) / wall}
    settings = ScoreSettings(**args["settings"])
    wall, cpu, child_cpu, scored = time_score(args["model"], source, out, settings)
    return {
        "wall_s": wall,
        "cpu_s": cpu,
        "children_cpu_s": child_cpu,
        "texts_per_s": scored / wall,
        "scored": scored,
    }


def stage_ratios(figures: dict[str, Any]) -> dict[str, float]:
    """The wall-clock (and for ``nlp_pipe``, CPU) ratios between the stages of one round."""
    ratios = {}
    if "nlp_pipe" in figures and "score_1" in figures:
        pipe, one = figures["nlp_pipe"], figures["score_1"]
        ratios["score_1/nlp_pipe wall"] = pipe["wall_s"] / one["wall_s"]
        ratios["score_1/nlp_pipe cpu"] = pipe["cpu_s"] / one["cpu_s"]
    for multi in ("score_2", "ray_2"):
        if multi in figures and "score_1" in figures:
            ratios[f"{multi}/score_1"] = figures["score_1"]["wall_s"] / figures[multi]["wall_s"]
    return ratios


def peak_rss_mb(model: str, source: Path, out: Path) -> tuple[float, float]:
    """Peak RSS (MB) and wall seconds of ``textcat-kit score`` in a fresh child process.

    The child reports its own ``VmHWM`` (the peak RSS of its address space since ``exec``).
    Not ``ru_maxrss``: Linux keeps that across fork and exec, so a child of this (large)
    benchmark process would report the parent's size; nor RUSAGE_CHILDREN, the largest of
    all children so far."""
    if out.exists():
        out.unlink()
    start = time.perf_counter()
    code = (
        "from textcat_kit.cli import main; "
        f"main(['score', {model!r}, {str(source)!r}, {str(out)!r}, '--no-progress', "
        "'--overwrite'])"
    )
    code = (
        f"import sys; sys.argv = ['textcat-kit']\ntry:\n    {code}\nexcept SystemExit as e:\n"
        "    assert not e.code, e.code\n"
        "hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM:')][0]\n"
        "print('PEAK_RSS_KB', int(hwm.split()[1]))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr)
    peak_kb = next(
        int(line.split()[1]) for line in proc.stdout.splitlines() if line.startswith("PEAK_RSS_KB")
    )
    return peak_kb / 1024, time.perf_counter() - start


STAGE_NAMES = {
    "nlp_pipe": "in-process `nlp.pipe` (texts in memory)",
    "score_1": "`score`, one process",
    "score_2": "`score --n-process 2`",
    "ray_2": "`score --engine ray`, 2 actors (local Ray start-up included)",
}


def environment() -> dict[str, Any]:
    """The versions that move these figures. spaCy imports every installed plugin's
    factories when it loads a pipeline, so an environment with spacy-transformers (and
    torch) makes each Ray actor's start seconds slower than one with the scoring extra only."""
    from importlib import metadata

    def version(name: str) -> str | None:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return None

    names = ("spacy", "ray", "pyarrow", "spacy-transformers", "torch")
    return {
        "python": platform.python_version(),
        "packages": {name: version(name) for name in names},
    }


def _environment_line(env: dict[str, Any]) -> str:
    packages = env.get("packages", {})
    present = [f"{n} {v}" for n, v in packages.items() if v]
    absent = [n for n, v in packages.items() if not v]
    line = f"Python {env.get('python', '?')}, " + ", ".join(present)
    if absent:
        line += f"; not installed: {', '.join(absent)}"
    return line + "."


def render(result: dict[str, Any], source: str) -> str:
    """The figures section of docs/batch-scoring.md from one benchmark result."""
    n = result["n_texts"]
    machine = result.get("machine", {})
    load = machine.get("load_average")
    where = f"{machine.get('cpus', '?')} CPU cores"
    if load:
        where += f", load average {load[0]:.1f} at the end of the run"
    lines = [
        f"Regenerate with `{result.get('command', 'python -m benchmarks score_throughput')}` "
        f"(figures from `{source}`; {result.get('when', '')}, {where}). {n:,} short Banking77 "
        "texts in one Parquet file, Parquet output with all 77 probabilities, the tuned "
        "bag-of-words pipeline. The stages of a round run one after the other: compare the "
        "ratios within a round; absolute speeds move with other load on the machine.",
        "",
    ]
    if "environment" in result:
        lines += [f"Environment: {_environment_line(result['environment'])}", ""]
    if any(stage in figures for figures in result["rounds"] for stage in STAGE_NAMES):
        lines += [
            "| round | stage | wall s | CPU s (this process) | CPU s (workers) | texts/s (wall) |",
            "|---|---|---|---|---|---|",
        ]
    for index, figures in enumerate(result["rounds"], start=1):
        for stage, name in STAGE_NAMES.items():
            if stage in figures:
                f = figures[stage]
                workers = f"{f['children_cpu_s']:.0f}" if f.get("children_cpu_s") else "–"
                lines.append(
                    f"| {index} | {name} | {f['wall_s']:.0f} | {f['cpu_s']:.0f} | {workers} | "
                    f"{f['texts_per_s']:,.0f} |"
                )
    if result["rounds"] and result["rounds"][0]["ratios"]:
        lines += [
            "",
            "| ratio | "
            + " | ".join(f"round {i}" for i in range(1, len(result["rounds"]) + 1))
            + " | target |",
        ]
        lines.append("|---|" + "---|" * (len(result["rounds"]) + 1))
    targets = {
        "score_1/nlp_pipe wall": "≥ 0.75",
        "score_1/nlp_pipe cpu": "≥ 0.75",
        "score_2/score_1": "≥ 1.6",
        "score_2/score_1 cpu bound": "(≥ 1.6)",
        "ray_2/score_1": "≥ 1.3",
    }
    for key, target in targets.items():
        if result["rounds"] and key in result["rounds"][0]["ratios"]:
            values = " | ".join(f"{r['ratios'][key]:.2f}" for r in result["rounds"])
            lines.append(f"| {key} | {values} | {target} |")
    if result.get("identical_outputs") is not None:
        lines += ["", f"Outputs of the `score` stages identical: {result['identical_outputs']}."]
    if "peak_rss_mb" in result:
        (small, small_mb), (big, big_mb) = sorted(
            result["peak_rss_mb"].items(), key=lambda kv: int(kv[0])
        )
        lines += [
            "",
            f"Peak RSS of `textcat-kit score` (one process, a fresh Python per size): "
            f"{int(small):,} texts {small_mb:.0f} MB, {int(big):,} texts {big_mb:.0f} MB "
            f"(ratio {big_mb / small_mb:.3f}; target within 10%).",
        ]
    return "\n".join(lines)


def render_cost(result: dict[str, Any]) -> str:
    """The 100M-text estimate from the measured one-process CPU throughput."""
    figures = result["rounds"][0]
    per_core = result["n_texts"] / figures["score_1"]["cpu_s"]
    efficiency = None
    if "ray_2/score_1" in figures["ratios"]:
        efficiency = min(
            1.0, statistics.median(r["ratios"]["ray_2/score_1"] for r in result["rounds"]) / 2
        )
    e = efficiency or 0.8
    basis = "two Ray actors against one process, per actor" if efficiency else "assumed"
    lines = [
        f"Measured: `T` = {per_core:,.0f} texts/s per core (one process: {result['n_texts']:,} "
        f"texts / CPU seconds of the `score_1` stage, which waiting for a core does not "
        f"inflate), `e` = {e:.2f} ({basis}). "
        "For 100M texts on nodes of 16 cores (15 scoring actors each):",
        "",
        "| nodes | scoring time | node-hours |",
        "|---|---|---|",
    ]
    for nodes in (1, 4, 16, 64):
        seconds = 100e6 / (per_core * 15 * nodes * e) + 20
        lines.append(f"| {nodes} | {seconds / 60:.0f} min | {nodes * seconds / 3600:.2f} |")
    lines += [
        "",
        "Node-hours times the price of a node is the cost; it hardly depends on the number of "
        "nodes (more nodes finish sooner for the same bill, until the fixed start-up and the "
        "reading of CSV / JSONL shards, one task per file, dominate). Output: 100M rows of 77 "
        "float32 probabilities are ~31 GB of Parquet; `--top-k 3` makes it ~2 GB.",
    ]
    return "\n".join(lines)


def parse_log(text: str, n_texts: int) -> dict[str, Any]:
    """The results of a run from what it printed (for a run whose JSON was not written)."""
    import re

    rounds: dict[int, dict[str, Any]] = {}
    stage_line = re.compile(
        r"^round (\d+) (\w+): ([\d.]+) s wall, ([\d.]+) s cpu, ([\d,]+) texts/s", re.M
    )
    for match in stage_line.finditer(text):
        figures = rounds.setdefault(int(match[1]), {})
        figures[match[2]] = {
            "wall_s": float(match[3]),
            "cpu_s": float(match[4]),
            "texts_per_s": float(match[5].replace(",", "")),
        }
    for figures in rounds.values():
        figures["ratios"] = stage_ratios(figures)
    identical = re.search(r"^outputs identical across [^:]+: (True|False)", text, re.M)
    command = re.search(r"^# command: (.+)$", text, re.M)
    rss = re.search(r"([\d,]+) texts (\d+) MB \(\d+ s\); ([\d,]+) texts (\d+) MB", text)
    result: dict[str, Any] = {
        "n_texts": n_texts,
        "rounds": [rounds[i] for i in sorted(rounds)],
        "identical_outputs": identical[1] == "True" if identical else None,
    }
    if command:
        result["command"] = command[1]
    if rss:
        result["peak_rss_mb"] = {
            rss[1].replace(",", ""): float(rss[2]),
            rss[3].replace(",", ""): float(rss[4]),
        }
    return result


def write_doc(path: Path, result: dict[str, Any], source: str, marker: str = "") -> None:
    """Replace the figures between ``<!-- score_throughput.py[ marker]: begin/end -->`` (and,
    for the main block, the 100M estimate between the ``cost`` markers)."""
    text = path.read_text(encoding="utf8")
    blocks = [(f" {marker}" if marker else "", render(result, source))]
    if not marker:
        blocks.append((" cost", render_cost(result)))
    for suffix, body in blocks:
        replaced = replace_block(text, f"score_throughput.py{suffix}", body)
        if replaced is None:
            raise SystemExit(f"{path}: no <!-- score_throughput.py{suffix}: begin --> marker")
        text = replaced
    path.write_text(text, encoding="utf8")


@app.command()
def run(
    model: str = typer.Argument(..., help="Tuned pipeline (calibrator + decision)."),
    data: Path | None = typer.Option(None, help="Banking77 CSV folder (default: shared data)."),
    n_texts: int = typer.Option(1_000_000),
    rounds: int = typer.Option(2),
    stages: str = typer.Option("nlp_pipe,score_1,score_2,ray_2"),
    rss: bool = typer.Option(False, "--rss", help="Also measure peak RSS at two sizes."),
    rss_small: int = typer.Option(100_000, help="Smaller input size of the RSS comparison."),
    work_dir: Path | None = typer.Option(None, help="Where inputs/outputs go (default: tmp)."),
    save: bool = typer.Option(True, help=f"Write benchmarks/results/{NAME}.json."),
    update_doc: Path | None = typer.Option(
        None, help="Rewrite the figures between the markers of this Markdown file."
    ),
    from_json: Path | None = typer.Option(
        None, help="Render --update-doc from a saved results JSON instead of measuring."
    ),
    from_log: Path | None = typer.Option(
        None, help="Render --update-doc from the printed output of a run (its 'round' lines)."
    ),
    doc_marker: str = typer.Option(
        "", help="Which figures block of --update-doc to write ('' = the main one)."
    ),
) -> None:
    if from_log is not None:
        result = parse_log(from_log.read_text(encoding="utf8"), n_texts)
        if update_doc is not None:
            write_doc(update_doc, result, str(from_log), doc_marker)
        print(json.dumps(result, indent=2))
        return
    if from_json is not None:
        result = json.loads(from_json.read_text())
        if update_doc is not None:
            write_doc(update_doc, result, str(from_json), doc_marker)
        return
    data = data or shared_data() / "banking77"
    work = work_dir or Path(tempfile.mkdtemp(prefix="score-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    texts = make_texts(data, n_texts)
    source = work / f"texts-{n_texts}.parquet"
    if not source.exists():
        write_parquet(texts, source)
    wanted = [s.strip() for s in stages.split(",") if s.strip()]
    settings = {
        "score_1": ScoreSettings(n_process=1, progress=False, overwrite=True),
        "score_2": ScoreSettings(n_process=2, progress=False, overwrite=True),
        "ray_2": ScoreSettings(engine="ray", n_process=2, progress=False, overwrite=True),
    }
    per_round: list[dict[str, Any]] = []
    for index in range(rounds):
        figures: dict[str, Any] = {}
        for stage in wanted:
            target = work / f"out-{stage}.parquet"
            figures[stage] = run_stage(stage, model, source, target, settings.get(stage))
            if stage != "nlp_pipe":
                assert figures[stage].pop("scored") == n_texts
            done = figures[stage]
            print(
                f"round {index + 1} {stage}: {done['wall_s']:.1f} s wall, "
                f"{done['cpu_s']:.1f} s cpu, {done['texts_per_s']:,.0f} texts/s",
                flush=True,
            )
        ratios = stage_ratios(figures)
        if "score_2" in figures and "score_1" in figures and figures["score_2"]["children_cpu_s"]:
            # What two idle cores would give: the work of the parent and both workers spread
            # over two cores, against one process's CPU time (an upper bound on the speed-up).
            total_2 = figures["score_2"]["cpu_s"] + figures["score_2"]["children_cpu_s"]
            ratios["score_2/score_1 cpu bound"] = 2 * figures["score_1"]["cpu_s"] / total_2
        figures["ratios"] = ratios
        print(f"round {index + 1} ratios: " + ", ".join(f"{k} {v:.2f}" for k, v in ratios.items()))
        per_round.append(figures)
    same = None
    if "score_1" in wanted and "score_2" in wanted:
        outputs = [work / f"out-{s}.parquet" for s in wanted if s != "nlp_pipe"]
        import pyarrow.parquet as pq

        first = pq.read_table(outputs[0])
        same = all(pq.read_table(p).equals(first) for p in outputs[1:])
        print(f"outputs identical across {', '.join(s for s in wanted if s != 'nlp_pipe')}: {same}")
    result: dict[str, Any] = {
        "identical_outputs": same if "score_1" in wanted and "score_2" in wanted else None,
        "n_texts": n_texts,
        "model": model,
        "environment": environment(),
        "rounds": per_round,
        "median_ratios": {
            key: statistics.median(r["ratios"][key] for r in per_round)
            for key in per_round[0]["ratios"]
        },
    }
    if rss:
        small = work / f"texts-{rss_small}.parquet"
        if not small.exists():
            write_parquet(texts[:rss_small], small)
        rss_small_mb, wall_small = peak_rss_mb(model, small, work / "rss-small.parquet")
        rss_big_mb, wall_big = peak_rss_mb(model, source, work / "rss-big.parquet")
        result["peak_rss_mb"] = {str(rss_small): rss_small_mb, str(n_texts): rss_big_mb}
        print(
            f"peak RSS (one process, Parquet out): {rss_small:,} texts {rss_small_mb:.0f} MB "
            f"({wall_small:.0f} s); {n_texts:,} texts {rss_big_mb:.0f} MB ({wall_big:.0f} s); "
            f"ratio {rss_big_mb / rss_small_mb:.3f}"
        )
    print(json.dumps(result["median_ratios"], indent=2))
    command = ["python", "-m", "benchmarks", NAME, *_ARGV]
    result["command"] = " ".join(command)
    saved = write_results(NAME, result, command) if save else None
    if update_doc is not None:
        # Rendered from the saved file: it adds when and on what machine the run was.
        rendered = json.loads(saved.read_text(encoding="utf8")) if saved else result
        where = os.path.relpath(saved, Path(__file__).resolve().parents[1]) if saved else None
        write_doc(update_doc, rendered, where or "(not saved)", doc_marker)
    if work_dir is None:
        shutil.rmtree(work, ignore_errors=True)


_ARGV: list[str] = []


def main(argv: list[str] | None = None) -> None:
    _ARGV[:] = sys.argv[1:] if argv is None else argv
    app(args=_ARGV, prog_name=NAME, standalone_mode=False)

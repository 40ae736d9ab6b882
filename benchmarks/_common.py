"""Helpers shared by the benchmarks: corpora, side-by-side timing, results files."""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
#: Where results are written (tests point it elsewhere with $TEXTCAT_KIT_BENCHMARK_RESULTS).
RESULTS_DIR = Path(
    os.environ.get("TEXTCAT_KIT_BENCHMARK_RESULTS", Path(__file__).resolve().parent / "results")
)


def shared_data() -> Path:
    """The shared data mirror (``$TEXTCAT_KIT_SHARED_DATA`` or ``../shared/data``)."""
    return Path(os.environ.get("TEXTCAT_KIT_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))


def interleaved_best(
    runs: dict[str, Callable[[], object]], rounds: int = 5, clock: str = "process"
) -> dict[str, float]:
    """Best time of each callable over ``rounds``, the callables taking turns in every
    round, so that load from other processes hits all of them alike (ratios between them
    are what to read on a shared machine). ``clock``: ``"process"`` (CPU time of this
    process: time spent waiting for a core does not count, the right clock for
    single-process work on a busy machine) or ``"wall"`` (for work in other processes)."""
    timer = time.process_time if clock == "process" else time.perf_counter
    best = {name: float("inf") for name in runs}
    for _ in range(rounds):
        for name, run in runs.items():
            start = timer()
            run()
            best[name] = min(best[name], timer() - start)
    return best


def machine() -> dict[str, Any]:
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "load_average": os.getloadavg() if hasattr(os, "getloadavg") else None,
    }


def write_results(name: str, results: dict[str, Any], command: Sequence[str]) -> Path:
    """Write ``benchmarks/results/<name>.json`` with the command that produced it."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{name}.json"
    payload = {
        "command": " ".join(command),
        "when": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": machine(),
        **results,
    }
    path.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf8")
    return path


def replace_block(text: str, marker: str, body: str) -> str | None:
    """``text`` with the lines between ``<!-- MARKER: begin -->`` and ``<!-- MARKER: end -->``
    replaced by ``body``; ``None`` when the begin marker is absent. A begin marker without
    its end marker is an error (the doc would lose its tail)."""
    begin, end = f"<!-- {marker}: begin -->", f"<!-- {marker}: end -->"
    head, found, rest = text.partition(begin)
    if not found:
        return None
    _, found_end, tail = rest.partition(end)
    if not found_end:
        raise SystemExit(f"{begin} without {end}")
    return f"{head}{begin}\n{body}\n{end}{tail}"

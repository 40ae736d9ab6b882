"""SIGKILL `textcat-kit corpus` at random points: the previous output stays intact and the
next run succeeds.

The command runs in a forked child of the (already warm) test process, so a kill point
costs a fraction of a second rather than a fresh interpreter start; the child runs the real
CLI entry point. ``CORPUS_KILL_POINTS`` sets the number of kills (CI: 12; the closing note
of issue 14 records a run with more), ``CORPUS_KILL_SEED`` the seed of the kill times.
"""

from __future__ import annotations

import hashlib
import os
import random
import signal
import time
from pathlib import Path

import pytest
from spacy.tokens import DocBin

from textcat_kit.data.records import blank
from textcat_kit.safe_write import MARKER

KILL_POINTS = int(os.environ.get("CORPUS_KILL_POINTS", "12"))
KILL_SEED = int(os.environ.get("CORPUS_KILL_SEED", "0"))
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork (POSIX)"),
]


def _digest(root: Path) -> str:
    h = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        h.update(str(path.relative_to(root)).encode())
        h.update(path.read_bytes())
    return h.hexdigest()


def _run_in_child(args: list[str], log: Path) -> int:
    """Fork, run the CLI in the child (output to ``log``), return its pid."""
    pid = os.fork()
    if pid == 0:  # child: never return into pytest
        code = 1
        try:
            out = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            os.dup2(out, 1)
            os.dup2(out, 2)
            from textcat_kit.cli import main

            main(args)
            code = 0
        except SystemExit as exit_:
            code = exit_.code if isinstance(exit_.code, int) else 1
        finally:
            os._exit(code)
    return pid


def _wait(pid: int) -> int:
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def test_corpus_killed_mid_write_keeps_the_previous_output(tmp_path: Path) -> None:
    import textcat_kit.cli  # noqa: F401 - warm the parent so children start fast

    rng = random.Random(KILL_SEED)
    words = [f"w{i}" for i in range(300)]
    labels = ["alpha", "beta", "gamma", "delta"]
    lines = ["text,label"]
    for i in range(1500):
        label = labels[i % 4]
        lines.append(" ".join(rng.choices(words, k=12)) + f" {label},{label}")
    train = tmp_path / "train.csv"
    train.write_text("\n".join(lines) + "\n", encoding="utf8")
    out = tmp_path / "corpus"
    args = ["corpus", "--train", str(train), "--output-dir", str(out), "--overwrite"]

    log = tmp_path / "child.log"
    start = time.perf_counter()
    assert _wait(_run_in_child(args, log)) == 0, log.read_text()
    full = time.perf_counter() - start
    reference = _digest(out)
    assert (out / MARKER).is_file()

    killed = finished = 0
    for _ in range(KILL_POINTS):
        pid = _run_in_child(args, log)
        time.sleep(rng.uniform(0.02, 1.1) * full)
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        code = _wait(pid)
        if code == -signal.SIGKILL:
            killed += 1
        else:
            assert code == 0, log.read_text()
            finished += 1
        # Whether killed or done, the output is one complete corpus (the same data and
        # seed give the same bytes), never a half-written one.
        assert (out / MARKER).is_file(), "previous output lost"
        assert _digest(out) == reference, "output half-written"
    assert killed >= KILL_POINTS // 2, (killed, finished)

    # The next run succeeds and removes what the killed runs left behind.
    assert _wait(_run_in_child(args, log)) == 0, log.read_text()
    assert _digest(out) == reference
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.startswith(".corpus")]
    assert leftovers == []
    docs = list(DocBin().from_disk(out / "train.spacy").get_docs(blank("en").vocab))
    assert len(docs) > 900
    print(f"\ncorpus kill test: {killed} kills at random points, {finished} runs finished")

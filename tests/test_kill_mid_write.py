"""SIGKILL `textcat-kit tune` / `package` at random points: the previous output survives intact
and the next run succeeds. KILL_POINTS (env) sets how many kills per command; CI runs a few,
the closing note of issue 14 records a run with 50+."""

from __future__ import annotations

import hashlib
import os
import random
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

from kit_testing import train_bow_pipeline, write_docbin
from test_tune_evaluate import LABELS, synthetic
from textcat_kit.safe_write import MARKER

KILL_POINTS = int(os.environ.get("KILL_POINTS", "2"))


def _digest(root: Path) -> str:
    """Hash of every file's relative path and bytes (meta.json excluded: spaCy stamps it)."""
    h = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        h.update(str(path.relative_to(root)).encode())
        h.update(path.read_bytes())
    return h.hexdigest()


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-c", "from textcat_kit.cli import main; main()", *args]


def _complete(target: Path) -> bool:
    """The visible output is a whole one: marker plus the files its command writes last."""
    if not (target / MARKER).is_file():
        return False
    wheels = list((target / "dist").glob("*.whl"))
    if wheels:  # package: the wheel is a valid zip with its RECORD
        with zipfile.ZipFile(wheels[0]) as wheel:
            return wheel.testzip() is None and any(n.endswith("RECORD") for n in wheel.namelist())
    return (target / "tune_summary.json").is_file() and (target / "meta.json").is_file()


def _kill_loop(args: list[str], target: Path, n_kills: int, seed: int) -> tuple[int, list[float]]:
    """Run ``args`` to completion once (the reference), then kill it ``n_kills`` times."""
    start = time.perf_counter()
    subprocess.run(args, check=True, capture_output=True)
    full = time.perf_counter() - start
    reference = _digest(target)
    rng = random.Random(seed)
    killed, points = 0, []
    for _ in range(n_kills):
        proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        point = rng.uniform(0.3, 1.05) * full
        time.sleep(point)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        if proc.returncode == -signal.SIGKILL:
            killed += 1
            points.append(point / full)
        # Either the previous output untouched, or (killed after the one-rename swap, e.g.
        # while the kit wheel was built) the new one, whole: never a mix, never nothing.
        assert (target / MARKER).is_file(), "previous output lost"
        assert _digest(target) == reference or _complete(target), "output half-written"
        reference = _digest(target)
    subprocess.run(args, check=True, capture_output=True)
    leftovers = [p.name for p in target.parent.iterdir() if p.name.startswith(f".{target.name}")]
    assert leftovers == []
    return killed, points


@pytest.fixture(scope="module")
def model_and_dev(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    root = tmp_path_factory.mktemp("kill")
    nlp = train_bow_pipeline(synthetic(300, 0), LABELS, exclusive=True, kit_classifier=True)
    nlp.to_disk(root / "model-best")
    dev = write_docbin(synthetic(90, 1), LABELS, root / "dev.spacy")
    return root, root / "model-best", dev


@pytest.mark.slow
def test_kill_tune_mid_write(model_and_dev: tuple[Path, Path, Path]) -> None:
    root, model, dev = model_and_dev
    target = root / "model-tuned"
    args = _cli("tune", str(model), str(dev), "--output-dir", str(target), "--overwrite")
    killed, points = _kill_loop(args, target, KILL_POINTS, seed=0)
    print(f"tune: {killed} SIGKILLs at {sorted(round(p, 2) for p in points)} of a full run")
    assert killed >= KILL_POINTS // 2


@pytest.mark.slow
def test_kill_package_mid_write(model_and_dev: tuple[Path, Path, Path]) -> None:
    root, model, _ = model_and_dev
    out = root / "packages"
    args = _cli("package", str(model), str(out), "--name", "killtest", "--overwrite")
    target = out / "en_killtest-0.0.0"
    args += ["--version", "0.0.0"]
    killed, points = _kill_loop(
        args, target, int(os.environ.get("PACKAGE_KILL_POINTS", "1")), seed=1
    )
    print(f"package: {killed} SIGKILLs at {sorted(round(p, 2) for p in points)} of a full run")
    assert killed >= 1

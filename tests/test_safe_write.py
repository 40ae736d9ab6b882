"""Non-destructive, atomic writes (textcat_kit.safe_write)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from textcat_kit.errors import OutputError
from textcat_kit.safe_write import MARKER, atomic_dir, atomic_file, clean_stale_siblings


def _write(target: Path, content: str, overwrite: bool = False) -> None:
    with atomic_dir(target, overwrite=overwrite) as tmp:
        (tmp / "data.txt").write_text(content)


def test_new_dir_has_marker_and_normal_permissions(tmp_path: Path) -> None:
    target = tmp_path / "out"
    old = os.umask(0o022)
    try:
        _write(target, "a")
    finally:
        os.umask(old)
    assert (target / "data.txt").read_text() == "a"
    assert (target / MARKER).is_file()
    assert target.stat().st_mode & 0o777 == 0o755
    assert (target / "data.txt").stat().st_mode & 0o777 == 0o644
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_refuses_user_directory_even_with_overwrite(tmp_path: Path) -> None:
    target = tmp_path / "training"
    (target / "model-best").mkdir(parents=True)
    (target / "model-best" / "meta.json").write_text("{}")
    for overwrite in (False, True):
        with pytest.raises(OutputError, match=r"\[E022\]"):
            _write(target, "x", overwrite=overwrite)
    assert (target / "model-best" / "meta.json").read_text() == "{}"


def test_own_output_needs_overwrite(tmp_path: Path) -> None:
    target = tmp_path / "out"
    _write(target, "a")
    with pytest.raises(OutputError, match=r"\[E023\]"):
        _write(target, "b")
    assert (target / "data.txt").read_text() == "a"
    _write(target, "b", overwrite=True)
    assert (target / "data.txt").read_text() == "b"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_empty_directory_is_usable(tmp_path: Path) -> None:
    target = tmp_path / "out"
    target.mkdir()
    _write(target, "a")
    assert (target / "data.txt").read_text() == "a"


def test_exception_keeps_previous_output_and_cleans_up(tmp_path: Path) -> None:
    target = tmp_path / "out"
    _write(target, "a")
    with pytest.raises(RuntimeError):
        with atomic_dir(target, overwrite=True) as tmp:
            (tmp / "data.txt").write_text("half")
            raise RuntimeError("crash")
    assert (target / "data.txt").read_text() == "a"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_file_target_refused(tmp_path: Path) -> None:
    target = tmp_path / "notes.txt"
    target.write_text("mine")
    with pytest.raises(OutputError, match=r"\[E024\]"):
        _write(target, "x", overwrite=True)
    assert target.read_text() == "mine"


def test_atomic_file(tmp_path: Path) -> None:
    target = tmp_path / "metrics.json"
    with atomic_file(target) as tmp:
        tmp.write_text("1")
    with pytest.raises(OutputError, match=r"\[E023\]"):
        with atomic_file(target) as tmp:
            tmp.write_text("2")
    assert target.read_text() == "1"
    with atomic_file(target, overwrite=True) as tmp:
        tmp.write_text("2")
    assert target.read_text() == "2"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.json"]


_WRITER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from textcat_kit.safe_write import atomic_dir
    target, tag = Path(sys.argv[1]), sys.argv[2]
    with atomic_dir(target, overwrite=True) as tmp:
        print("started", flush=True)
        for i in range(300):
            (tmp / f"part{i}.txt").write_text(tag * 1000)
            time.sleep(0.002)
    """
)


@pytest.mark.slow
def test_sigkill_mid_write_keeps_previous_output(tmp_path: Path) -> None:
    """SIGKILL at many random points: the previous output is intact; the next run succeeds."""
    import random

    target = tmp_path / "out"
    rng = random.Random(0)
    script = tmp_path / "writer.py"
    script.write_text(_WRITER)
    subprocess.run([sys.executable, str(script), str(target), "a"], check=True)
    n_kills = 0
    for _ in range(25):
        proc = subprocess.Popen(
            [sys.executable, str(script), str(target), "b"], stdout=subprocess.PIPE, text=True
        )
        assert proc.stdout is not None and proc.stdout.readline() == "started\n"
        time.sleep(rng.uniform(0.0, 0.6))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        n_kills += proc.returncode == -signal.SIGKILL
        files = sorted(p.name for p in target.iterdir())
        tags = {(target / f).read_text()[:1] for f in files if f.startswith("part")}
        assert len(files) == 301 and len(tags) == 1, "target half-written"
        subprocess.run([sys.executable, str(script), str(target), "a"], check=True)
    assert n_kills >= 15
    assert clean_stale_siblings(target) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "writer.py"]

"""Helpers of the serving and monitoring tests: a small tuned pipeline on synthetic text,
and a real server (uvicorn in a subprocess on a free loopback port)."""

from __future__ import annotations

import functools
import os
import random
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from kit_testing import train_bow_pipeline, write_docbin

LABELS = ["billing", "delivery", "account"]
_WORDS = {
    "billing": "invoice charge refund payment bill price fee paid card overcharged".split(),
    "delivery": "parcel courier shipping arrived late package tracking box delivery".split(),
    "account": "password login username profile email locked signup reset account".split(),
}
_SHARED = "please help my the is not with a today why can i".split()


def synthetic_records(
    n: int, seed: int, labels: list[str] | None = None
) -> list[tuple[str, list[str]]]:
    """``n`` short texts; each mostly uses its label's words (some overlap makes it hard)."""
    rng = random.Random(seed)
    labels = labels or LABELS
    out = []
    for i in range(n):
        label = labels[i % len(labels)]
        other = rng.choice(LABELS)
        words = [
            rng.choice(_WORDS[label] if rng.random() < 0.6 else _WORDS[other] + _SHARED)
            for _ in range(rng.randint(4, 9))
        ]
        out.append((" ".join(words), [label]))
    return out


@functools.cache
def build_tuned_pipeline(root: Path) -> Path:
    """Train a bow classifier, tune it (calibrator + decision with abstain), write the
    monitor reference profile; return the tuned pipeline directory."""
    from textcat_kit.monitoring.cli import monitor_reference_command
    from textcat_kit.tuning import tune_pipeline

    nlp = train_bow_pipeline(synthetic_records(300, 0), LABELS, exclusive=True, epochs=6)
    root.mkdir(parents=True, exist_ok=True)
    trained = root / "trained"
    nlp.to_disk(trained)
    dev = write_docbin(synthetic_records(240, 1), LABELS, root / "dev.spacy")
    tuned = root / "tuned"
    tune_pipeline(trained, dev, tuned, decision_config={"abstain_precision": 0.9}, n_folds=3)
    monitor_reference_command(str(tuned), dev, output=None, overwrite=True)
    return tuned


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def running_server(model: Path, *args: str, timeout: float = 120.0) -> Iterator[str]:
    """``textcat-kit serve MODEL`` in a subprocess; yields its base URL."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "TEXTCAT_KIT_SERVE_SETTINGS"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "textcat_kit.cli",
            "serve",
            str(model),
            "--port",
            str(port),
            "--log-level",
            "warning",
            *args,
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                output = proc.stdout.read() if proc.stdout else ""
                raise RuntimeError(f"server exited ({proc.returncode}): {output}")
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("server did not become healthy")
            time.sleep(0.25)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

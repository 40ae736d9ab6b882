"""Helpers of the Label Studio tests: shared data paths and a real Label Studio server.

The server runs from its own virtualenv (``$TEXTCAT_KIT_LS_VENV``, default
``<repo>/.cache/labelstudio-venv``, created by ``.ci/run`` with ``pip install
label-studio==1.23.2``), never from the project's environment. The recipe follows
``shared/labelstudio-server.md``: offline settings, bound to 127.0.0.1 on a free port,
ready when ``/health`` answers 200, stopped with SIGTERM and checked to be gone.

``label-studio init`` (migrations + user, ~30 s) runs once per Label Studio version into
``<repo>/.cache/labelstudio-template/<version>/``; each session copies that initialised
data directory, so later starts take a few seconds.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import spacy
from spacy.language import Language
from spacy.training import Example
from spacy.util import fix_random_seed, minibatch

from textcat_kit.data.records import Record

REPO_ROOT = Path(__file__).resolve().parents[2]
DATA_DIR = Path(
    os.environ.get("TEXTCAT_KIT_SHARED_DATA", str(REPO_ROOT.parent / "shared" / "data"))
)
LABELSTUDIO_DATA = DATA_DIR / "labelstudio"
REAL_EXPORTS = LABELSTUDIO_DATA / "real-server-exports"

LS_VENV_ENV = "TEXTCAT_KIT_LS_VENV"
DEFAULT_LS_VENV = REPO_ROOT / ".cache" / "labelstudio-venv"
TEMPLATE_ROOT = REPO_ROOT / ".cache" / "labelstudio-template"
# Test-only credentials of a throwaway server bound to loopback.
TEST_USERNAME = "textcat-kit@example.com"
TEST_PASSWORD = "textcat-kit-test-password"
TEST_TOKEN = "7e3c1f0a9b8d4e2f6a5c3b1d0e9f8a7b6c5d4e3f"
START_TIMEOUT_S = 120.0
INIT_TIMEOUT_S = 300.0
# Variables Label Studio reads under their bare names; inherited values break it.
_BARE_NAMES = ("USERNAME", "PASSWORD", "PORT", "HOST", "USER_TOKEN", "DATABASE_NAME")
_PROXY_NAMES = ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "all_proxy")


@dataclass
class LabelStudioServer:
    """A running server: its base URL, the admin's legacy API token and its process."""

    url: str
    token: str
    process: subprocess.Popen[bytes]
    log_path: Path
    data_dir: Path


def labelstudio_venv() -> Path:
    return Path(os.environ.get(LS_VENV_ENV) or DEFAULT_LS_VENV)


def labelstudio_executable() -> Path | None:
    executable = labelstudio_venv() / "bin" / "label-studio"
    return executable if executable.exists() else None


def skip_without_server_venv() -> Path:
    """The ``label-studio`` executable, or skip: the one allowed skip of these tests."""
    executable = labelstudio_executable()
    if executable is None:
        pytest.skip(
            f"Label Studio server venv not found at {labelstudio_venv()} (set {LS_VENV_ENV}, "
            "or create it: python -m venv .cache/labelstudio-venv && "
            ".cache/labelstudio-venv/bin/pip install label-studio==1.23.2)"
        )
    return executable


def labelstudio_version(venv: Path) -> str:
    """The installed Label Studio version, from its dist-info (no slow import)."""
    for dist_info in sorted(venv.glob("lib/python*/site-packages/label_studio-*.dist-info")):
        return dist_info.name[len("label_studio-") : -len(".dist-info")]
    return "unknown"


def server_environment(data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _BARE_NAMES + _PROXY_NAMES}
    env.update(
        {
            "LABEL_STUDIO_BASE_DATA_DIR": str(data_dir),
            "DJANGO_DB": "sqlite",
            "HOME": str(data_dir),
            "SENTRY_DSN": "",
            "FRONTEND_SENTRY_DSN": "",
            "COLLECT_ANALYTICS": "false",
            "LATEST_VERSION_CHECK": "false",
            "FEATURE_FLAGS_OFFLINE": "true",
            "CONVERTER_DOWNLOAD_RESOURCES": "false",
            "LABEL_STUDIO_DISABLE_SIGNUP_WITHOUT_LINK": "true",
            "LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN": "true",
            "PYTHONUNBUFFERED": "1",
            "NO_PROXY": "127.0.0.1,localhost",
        }
    )
    return env


def server_arguments(data_dir: Path, port: int) -> list[str]:
    return [
        "--no-browser",
        "--internal-host",
        "127.0.0.1",
        "--port",
        str(port),
        "--data-dir",
        str(data_dir),
        "--database",
        str(data_dir / "label_studio.sqlite3"),
        "--username",
        TEST_USERNAME,
        "--password",
        TEST_PASSWORD,
        "--user-token",
        TEST_TOKEN,
        "--enable-legacy-api-token",
        "--log-level",
        "WARNING",
    ]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def initialised_template(executable: Path) -> Path:
    """An initialised data dir for this Label Studio version, made once and cached."""
    version = labelstudio_version(executable.parent.parent)
    template = TEMPLATE_ROOT / version
    if (template / "READY").exists():
        return template
    TEMPLATE_ROOT.mkdir(parents=True, exist_ok=True)
    staging = TEMPLATE_ROOT / f".staging-{version}-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    log_path = staging / "init.log"
    with log_path.open("wb") as log:
        completed = subprocess.run(
            [str(executable), "init", *server_arguments(staging, free_port()), "--quiet"],
            env=server_environment(staging),
            stdout=log,
            stderr=subprocess.STDOUT,
            timeout=INIT_TIMEOUT_S,
            check=False,
        )
    if completed.returncode != 0 or not (staging / "label_studio.sqlite3").exists():
        tail = log_path.read_text(errors="replace")[-3000:]
        shutil.rmtree(staging, ignore_errors=True)
        pytest.fail(f"label-studio init failed (exit {completed.returncode}):\n{tail}")
    (staging / "READY").write_text(version)
    try:
        staging.rename(template)
    except OSError:  # another session finished first; its template is as good
        shutil.rmtree(staging, ignore_errors=True)
    return template


def _health_ok(url: str) -> bool:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(f"{url}/health", timeout=2) as response:
            return int(response.status) == 200
    except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
        return False


def _url_from_log(log_path: Path, port: int) -> str:
    """The URL the server really listens on (it moves to port+1 when port is busy)."""
    marker = "Starting development server at "
    for line in log_path.read_text(errors="replace").splitlines():
        if marker in line:
            return line.split(marker, 1)[1].strip().rstrip("/")
    return f"http://127.0.0.1:{port}"


def process_group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextmanager
def running_labelstudio(workdir: Path) -> Iterator[LabelStudioServer]:
    """Start a server on a copy of the cached template; SIGTERM it on exit, verify it's gone."""
    executable = skip_without_server_venv()
    template = initialised_template(executable)
    data_dir = workdir / "labelstudio-data"
    shutil.copytree(template, data_dir)
    port = free_port()
    log_path = workdir / "labelstudio.log"
    log = log_path.open("wb")
    process = subprocess.Popen(
        [str(executable), "start", *server_arguments(data_dir, port)],
        env=server_environment(data_dir),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # own process group: SIGTERM reaches any child it starts
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if process.poll() is not None:
                tail = log_path.read_text(errors="replace")[-3000:]
                pytest.fail(f"Label Studio exited with {process.returncode}:\n{tail}")
            url = _url_from_log(log_path, port)
            if _health_ok(url):
                break
            if time.monotonic() > deadline:
                tail = log_path.read_text(errors="replace")[-3000:]
                pytest.fail(f"Label Studio not healthy after {START_TIMEOUT_S:.0f} s:\n{tail}")
            time.sleep(0.3)
        yield LabelStudioServer(url, TEST_TOKEN, process, log_path, data_dir)
    finally:
        stop_labelstudio(process)
        log.close()


def stop_labelstudio(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM the server's process group, wait, and fail if anything of it survives."""
    pgid = process.pid  # start_new_session=True made it the group leader
    if process.poll() is None:
        os.killpg(pgid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(pgid, signal.SIGKILL)
            process.wait(timeout=10)
            pytest.fail("Label Studio ignored SIGTERM for 20 s and had to be killed")
    deadline = time.monotonic() + 10
    while process_group_alive(pgid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if process_group_alive(pgid):
        os.killpg(pgid, signal.SIGKILL)
        pytest.fail("processes of the Label Studio server outlived SIGTERM")


def train_bow_pipeline(
    records: list[Record], labels: tuple[str, ...], *, exclusive: bool, epochs: int = 10
) -> Language:
    """A small ``textcat`` / ``textcat_multilabel`` on ``spacy.TextCatBOW.v3``, trained
    in-process with ``nlp.update`` (a second or two on a few dozen texts)."""
    fix_random_seed(0)
    nlp = spacy.blank("en")
    textcat = nlp.add_pipe(
        "textcat" if exclusive else "textcat_multilabel",
        config={
            "model": {
                "@architectures": "spacy.TextCatBOW.v3",
                "exclusive_classes": exclusive,
                "ngram_size": 1,
                "no_output_layer": False,
                "length": 2**16,
            }
        },
    )
    for label in labels:
        textcat.add_label(label)  # type: ignore[attr-defined]
    examples = [
        Example.from_dict(nlp.make_doc(record.text), {"cats": record.cats(labels)})
        for record in records
    ]
    optimizer = nlp.initialize(lambda: examples)
    for epoch in range(epochs):
        random.Random(epoch).shuffle(examples)
        for batch in minibatch(examples, size=8):
            nlp.update(batch, sgd=optimizer, losses={})
    return nlp

"""Load tests of ``textcat-kit serve`` on loopback, measured against in-process baselines.

Every scenario starts the real app (``textcat_kit.serving.app.create_app``, uvicorn with
uvloop + httptools) in a subprocess and drives it with a small asyncio HTTP/1.1 client
(keep-alive connections, one per simulated client, in this process). Client and server
share the machine's cores, as they would on one host; on a shared machine the absolute
figures move with other load, so each comparison is measured side by side in the same
run, in interleaved rounds, and reported as a ratio per round (median and range).

Scenarios (subcommands)::

    python -m benchmarks serve_load throughput MODEL [--texts CSV]
        A: requests of 64 texts from 8 clients: docs/s vs in-process nlp.pipe
        B: single-text requests from 32 clients: requests/s vs GET /constant of the same app
    python -m benchmarks serve_load transformer
        C: tiny transformer pipeline, 32 clients, micro-batched vs per-request nlp(text)
    python -m benchmarks serve_load memory MODEL --requests 200000
        D: RSS of the server over N single-text requests with unseen words, with and
           without memory zones
    python -m benchmarks serve_load fuzz MODEL --examples 3000
        E: hypothesis-generated bodies against /classify: count of 5xx answers
    python -m benchmarks serve_load report docs/serving.md
        rewrite the tables between the ``<!-- serve_load SCENARIO: begin/end -->`` markers
        of the doc from the results files

Results are printed and written to ``benchmarks/results/serve_<scenario>.json`` with the
command line that produced them.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import os
import random
import socket
import statistics
import string
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ._common import shared_data, write_results

REPO = Path(__file__).resolve().parents[1]
DEFAULT_TEXTS = shared_data() / "banking77" / "test.csv"


# -- server -------------------------------------------------------------------------------
def _server_main(argv: Sequence[str]) -> None:
    """Subprocess entry: the service app plus GET /constant, on uvicorn."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--mode", choices=["batched", "direct"], default="batched")
    parser.add_argument("--memory-zones", type=int, default=1)
    parser.add_argument("--max-batch-size", type=int, default=256)
    parser.add_argument("--max-wait-ms", type=float, default=0.0)
    parser.add_argument("--batch-runner", default="auto")
    args = parser.parse_args(argv)
    import uvicorn
    from fastapi.responses import Response

    from textcat_kit.serving.app import ServeSettings, create_app

    settings = ServeSettings(
        model=args.model,
        batching=args.mode == "batched",
        memory_zones=bool(args.memory_zones),
        max_batch_size=args.max_batch_size,
        max_wait_ms=args.max_wait_ms,
        batch_runner=args.batch_runner,
    )
    app = create_app(settings)
    constant = b'{"model":{"name":"x","version":"0"},"results":[]}'

    @app.post("/constant", include_in_schema=False)
    async def constant_endpoint():  # type: ignore[no-untyped-def]  # noqa: ANN202
        return Response(constant, media_type="application/json")

    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", access_log=False)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def server(model: str | Path, **options: Any) -> Iterator[tuple[int, int]]:
    """Start the server subprocess; yield (port, pid) once /health answers."""
    port = _free_port()
    cmd = [sys.executable, "-m", "benchmarks.serve_load", "_server", "--model", str(model)]
    cmd += ["--port", str(port)]
    for key, value in options.items():
        cmd += [f"--{key.replace('_', '-')}", str(value)]
    log = tempfile.NamedTemporaryFile("w+", prefix="serve-load-", suffix=".log", delete=False)
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, text=True, cwd=REPO)
    try:
        deadline = time.monotonic() + 300
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"server exited: {Path(log.name).read_text()[-3000:]}")
            try:
                status, _ = asyncio.run(_one_request(port, "GET", "/health", b""))
                if status == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("server did not start")
            time.sleep(0.3)
        yield port, proc.pid
        if proc.poll() is not None:
            print(f"server died: {Path(log.name).read_text()[-3000:]}", file=sys.stderr)
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
        os.unlink(log.name)


def cpu_of(pid: int) -> float:
    """CPU seconds (user + system) used so far by process ``pid``."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def self_cpu() -> float:
    t = os.times()
    return t.user + t.system


def proc_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def rss_of(pid: int) -> int:
    with open(f"/proc/{pid}/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


# -- client -------------------------------------------------------------------------------
def _request_bytes(method: str, path: str, body: bytes) -> bytes:
    head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    if method == "POST":
        head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
    return (head + "\r\n").encode() + body


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    length = 0
    for line in lines[1:]:
        if line.lower().startswith("content-length:"):
            length = int(line.split(":", 1)[1])
    body = await reader.readexactly(length) if length else b""
    return status, body


async def _one_request(port: int, method: str, path: str, body: bytes) -> tuple[int, bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(_request_bytes(method, path, body))
        await writer.drain()
        return await _read_response(reader)
    finally:
        writer.close()


async def _load(
    port: int,
    path: str,
    bodies: Callable[[int, int], bytes],
    n_clients: int,
    duration: float,
    warmup: float = 1.0,
    max_requests: int | None = None,
) -> dict[str, Any]:
    """``n_clients`` keep-alive connections sending requests back to back."""
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    counted = [0]
    total = [0]
    start = time.perf_counter()
    t_measure = start + warmup
    t_end = t_measure + duration
    bad_body: list[bytes] = []

    async def client(c: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        i = 0
        try:
            while True:
                now = time.perf_counter()
                if max_requests is None and now >= t_end:
                    return
                if max_requests is not None and counted[0] >= max_requests:
                    return
                payload = _request_bytes("POST", path, bodies(c, i))
                t0 = time.perf_counter()
                writer.write(payload)
                await writer.drain()
                status, body = await _read_response(reader)
                t1 = time.perf_counter()
                i += 1
                total[0] += 1
                statuses[status] = statuses.get(status, 0) + 1
                if status != 200 and len(bad_body) < 3:
                    bad_body.append(body[:200])
                if max_requests is not None or t0 >= t_measure:
                    latencies.append(t1 - t0)
                    counted[0] += 1
        finally:
            writer.close()

    await asyncio.gather(*(client(c) for c in range(n_clients)))
    elapsed = time.perf_counter() - (start if max_requests is not None else t_measure)
    latencies.sort()
    n = len(latencies)
    return {
        "requests": n,
        "total_requests": total[0],
        "seconds": elapsed,
        "requests_per_s": n / elapsed,
        "p50_ms": 1000 * latencies[n // 2] if n else None,
        "p99_ms": 1000 * latencies[min(n - 1, int(n * 0.99))] if n else None,
        "statuses": statuses,
        "errors": bad_body,
    }


def load(*args: Any, server_pid: int | None = None, **kwargs: Any) -> dict[str, Any]:
    """Run :func:`_load`; with ``server_pid`` also the CPU seconds server and client used
    (including the warm-up, so per-request CPU is slightly overstated for both)."""
    cpu0 = (cpu_of(server_pid) if server_pid else 0.0, self_cpu())
    try:
        import uvloop

        result = uvloop.run(_load(*args, **kwargs))
    except ImportError:
        result = asyncio.run(_load(*args, **kwargs))
    if server_pid:
        result["server_cpu_s"] = cpu_of(server_pid) - cpu0[0]
        result["client_cpu_s"] = self_cpu() - cpu0[1]
    return result


# -- helpers ------------------------------------------------------------------------------
def read_texts(path: Path) -> list[str]:
    with open(path, newline="", encoding="utf8") as f:
        reader = csv.DictReader(f)
        key = "text" if "text" in (reader.fieldnames or []) else (reader.fieldnames or [""])[0]
        return [row[key] for row in reader if row[key].strip()]


def summarise(ratios: list[float]) -> dict[str, float]:
    return {
        "median": statistics.median(ratios),
        "min": min(ratios),
        "max": max(ratios),
    }


def write_result(name: str, result: dict[str, Any]) -> Path:
    argv = sys.argv[1:] if _ARGV is None else _ARGV
    path = write_results(f"serve_{name}", result, ["python -m benchmarks serve_load", *argv])
    print(f"wrote {path.relative_to(REPO)}")
    return path


_ARGV: list[str] | None = None


def machine() -> dict[str, Any]:
    return {
        "cpus": os.cpu_count(),
        "loadavg_start": os.getloadavg(),
        "note": "client and server share the machine's cores; ratios are per round",
    }


# -- scenarios ----------------------------------------------------------------------------
def in_process_docs_per_s(nlp: Any, texts: list[str], duration: float) -> tuple[float, float]:
    """(docs per wall-clock second, docs per CPU second) of ``nlp.pipe`` in this process."""
    list(nlp.pipe(texts[:200]))
    n = 0
    start, cpu = time.perf_counter(), time.process_time()
    while time.perf_counter() - start < duration:
        for _doc in nlp.pipe(texts):
            n += 1
    return n / (time.perf_counter() - start), n / (time.process_time() - cpu)


def cpu_per_request(result: dict[str, Any]) -> float:
    """Server + client CPU seconds per request (warm-up included on both sides)."""
    return (result["server_cpu_s"] + result["client_cpu_s"]) / max(result["total_requests"], 1)


def throughput(args: argparse.Namespace) -> None:
    texts = read_texts(Path(args.texts))
    rng = random.Random(0)
    batches = [json.dumps({"texts": rng.sample(texts, 64)}).encode() for _ in range(200)]
    singles = [json.dumps({"texts": [t]}).encode() for t in texts[:2000]]
    rounds = []
    import spacy

    nlp = spacy.load(args.model)
    opts = {"max_batch_size": args.max_batch_size, "max_wait_ms": args.max_wait_ms}
    with server(args.model, **opts) as (port, pid):
        for r in range(args.rounds):
            inproc, inproc_cpu = in_process_docs_per_s(nlp, texts[:2000], args.duration)
            a = load(
                port,
                "/classify",
                lambda c, i: batches[(c * 31 + i) % 200],
                8,
                args.duration,
                server_pid=pid,
            )
            const = load(
                port,
                "/constant",
                lambda c, i: singles[(c * 97 + i) % 2000],
                32,
                args.duration,
                server_pid=pid,
            )
            b = load(
                port,
                "/classify",
                lambda c, i: singles[(c * 97 + i) % 2000],
                32,
                args.duration,
                server_pid=pid,
            )
            a_cpu = 64 / cpu_per_request(a)
            row = {
                "round": r,
                "in_process_docs_per_s": inproc,
                "in_process_docs_per_cpu_s": inproc_cpu,
                "A_server_docs_per_s": 64 * a["requests_per_s"],
                "A_ratio": 64 * a["requests_per_s"] / inproc,
                "A_docs_per_cpu_s": a_cpu,
                "A_cpu_ratio": a_cpu / inproc_cpu,
                "A_p50_ms": a["p50_ms"],
                "A_p99_ms": a["p99_ms"],
                "constant_requests_per_s": const["requests_per_s"],
                "constant_p50_ms": const["p50_ms"],
                "constant_p99_ms": const["p99_ms"],
                "B_requests_per_s": b["requests_per_s"],
                "B_ratio": b["requests_per_s"] / const["requests_per_s"],
                "B_cpu_ratio": cpu_per_request(const) / cpu_per_request(b),
                "B_p50_ms": b["p50_ms"],
                "B_p99_ms": b["p99_ms"],
                "statuses": {"A": a["statuses"], "constant": const["statuses"], "B": b["statuses"]},
                "loadavg": os.getloadavg()[0],
            }
            rounds.append(row)
            print(
                f"round {r} (load {row['loadavg']:.1f}): in-process {inproc:.0f} docs/s "
                f"({inproc_cpu:.0f}/cpu-s) | A 8x64: {row['A_server_docs_per_s']:.0f} docs/s = "
                f"{row['A_ratio']:.2f}x wall, {row['A_cpu_ratio']:.2f}x cpu (p50 "
                f"{a['p50_ms']:.1f} ms, p99 {a['p99_ms']:.1f} ms) | constant "
                f"{const['requests_per_s']:.0f} req/s | B 32x1: {b['requests_per_s']:.0f} "
                f"req/s = {row['B_ratio']:.2f}x wall, {row['B_cpu_ratio']:.2f}x cpu (p50 "
                f"{b['p50_ms']:.1f} ms, p99 {b['p99_ms']:.1f} ms) | {row['statuses']}",
                flush=True,
            )
    result = {
        "scenario": "throughput",
        "model": str(args.model),
        "machine": machine(),
        "settings": {
            "duration_s": args.duration,
            "max_batch_size": args.max_batch_size,
            "max_wait_ms": args.max_wait_ms,
        },
        "rounds": rounds,
        "A_ratio": summarise([r["A_ratio"] for r in rounds]),
        "A_cpu_ratio": summarise([r["A_cpu_ratio"] for r in rounds]),
        "B_ratio": summarise([r["B_ratio"] for r in rounds]),
        "B_cpu_ratio": summarise([r["B_cpu_ratio"] for r in rounds]),
    }
    for key, what in (
        ("A_ratio", "A (8 clients x 64 texts) docs/s / in-process nlp.pipe, wall"),
        ("A_cpu_ratio", "A docs per CPU-s (server+client) / in-process, CPU"),
        ("B_ratio", "B (32 clients x 1 text) req/s / constant endpoint, wall"),
        ("B_cpu_ratio", "B requests per CPU-s / constant endpoint, CPU"),
    ):
        print(
            f"{what}: median {result[key]['median']:.3f} "
            f"[{result[key]['min']:.3f}, {result[key]['max']:.3f}]"
        )
    write_result(args.name or "throughput", result)


def build_tiny_transformer(root: Path) -> Path:
    """A tiny BERT-style encoder + textcat trained for a few steps (local, no hub)."""
    from textcat_kit.testing.pipelines import build_transformer_textcat
    from textcat_kit.testing.tiny_transformer import build_tiny_transformer as build_encoder

    texts = read_texts(DEFAULT_TEXTS)[:400]
    labels = ["a", "b", "c"]
    encoder = build_encoder(root / "encoder", texts)
    records = [(t, [labels[i % 3]]) for i, t in enumerate(texts[:60])]
    nlp = build_transformer_textcat(
        REPO / "configs" / "textcat_transformer.cfg",
        encoder,
        records,
        labels=labels,
        train_steps=2,
    )
    out = root / "pipeline"
    nlp.to_disk(out)
    return out


def transformer(args: argparse.Namespace) -> None:
    texts = read_texts(Path(args.texts))
    singles = [json.dumps({"texts": [t]}).encode() for t in texts[:2000]]
    with tempfile.TemporaryDirectory() as tmp:
        model = Path(args.model) if args.model else build_tiny_transformer(Path(tmp))
        rounds = []
        with server(model, mode="batched", max_wait_ms=args.max_wait_ms) as (p_batch, _):
            with server(model, mode="direct", memory_zones=0) as (p_direct, _):
                for r in range(args.rounds):
                    direct = load(
                        p_direct,
                        "/classify",
                        lambda c, i: singles[(c * 97 + i) % 2000],
                        32,
                        args.duration,
                    )
                    batched = load(
                        p_batch,
                        "/classify",
                        lambda c, i: singles[(c * 97 + i) % 2000],
                        32,
                        args.duration,
                    )
                    row = {
                        "round": r,
                        "per_request_requests_per_s": direct["requests_per_s"],
                        "per_request_p50_ms": direct["p50_ms"],
                        "per_request_p99_ms": direct["p99_ms"],
                        "batched_requests_per_s": batched["requests_per_s"],
                        "batched_p50_ms": batched["p50_ms"],
                        "batched_p99_ms": batched["p99_ms"],
                        "ratio": batched["requests_per_s"] / direct["requests_per_s"],
                        "statuses": {"direct": direct["statuses"], "batched": batched["statuses"]},
                    }
                    rounds.append(row)
                    print(
                        f"round {r}: per-request {direct['requests_per_s']:.0f} req/s (p50 "
                        f"{direct['p50_ms']:.0f} ms, p99 {direct['p99_ms']:.0f} ms) | "
                        f"micro-batched {batched['requests_per_s']:.0f} req/s (p50 "
                        f"{batched['p50_ms']:.0f} ms, p99 {batched['p99_ms']:.0f} ms) = "
                        f"{row['ratio']:.2f}x | {row['statuses']}",
                        flush=True,
                    )
    result = {
        "scenario": "transformer",
        "model": str(args.model or "tiny transformer (textcat_kit.testing, 2x64)"),
        "machine": machine(),
        "rounds": rounds,
        "ratio": summarise([r["ratio"] for r in rounds]),
    }
    print(f"C micro-batched / per-request req/s at 32 clients: {result['ratio']}")
    write_result(args.name or "transformer", result)


def _novel_text(rng: random.Random, texts: list[str]) -> str:
    word = "".join(rng.choices(string.ascii_lowercase + string.digits, k=10))
    ref = "".join(rng.choices(string.ascii_uppercase + string.digits, k=8))
    return f"{rng.choice(texts)} order {word} ref {ref}"


def memory(args: argparse.Namespace) -> None:
    texts = read_texts(Path(args.texts))
    out: dict[str, Any] = {
        "scenario": "memory",
        "model": str(args.model),
        "machine": machine(),
        "requests": args.requests,
        "warmup_requests": args.warmup,
    }
    for zones in (1, 0):
        rng = random.Random(zones)
        pool = [
            json.dumps({"texts": [_novel_text(rng, texts)]}).encode()
            for _ in range(args.requests + args.warmup)
        ]
        with server(args.model, memory_zones=zones) as (port, pid):
            counter = [0]

            def body(
                c: int, i: int, pool: list[bytes] = pool, counter: list[int] = counter
            ) -> bytes:
                counter[0] += 1
                return pool[counter[0] % len(pool)]

            load(port, "/classify", body, 32, 0, warmup=0, max_requests=args.warmup)
            rss_warm = rss_of(pid)
            samples = [(0, rss_warm)]
            done = 0
            chunk = args.requests // 10
            t0 = time.perf_counter()
            stats = []
            while done < args.requests:
                s = load(port, "/classify", body, 32, 0, warmup=0, max_requests=chunk)
                stats.append(s)
                done += s["requests"]
                samples.append((done, rss_of(pid)))
                print(
                    f"memory_zones={zones}: {done} requests, RSS {samples[-1][1] / 2**20:.1f} MiB",
                    flush=True,
                )
            elapsed = time.perf_counter() - t0
        growth = samples[-1][1] / rss_warm - 1
        key = "with_memory_zones" if zones else "without_memory_zones"
        out[key] = {
            "rss_after_warmup_mib": rss_warm / 2**20,
            "rss_end_mib": samples[-1][1] / 2**20,
            "growth": growth,
            "samples": [(n, rss / 2**20) for n, rss in samples],
            "requests_per_s": done / elapsed,
            "non_200": sum(v for s in stats for k, v in s["statuses"].items() if k != 200),
        }
        print(
            f"memory_zones={zones}: RSS {rss_warm / 2**20:.1f} -> {samples[-1][1] / 2**20:.1f} "
            f"MiB over {done} requests: {100 * growth:+.2f}%",
            flush=True,
        )
    write_result(args.name or "memory", out)


def fuzz(args: argparse.Namespace) -> None:
    import httpx
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    json_values = st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=50),
        lambda ch: st.lists(ch, max_size=6) | st.dictionaries(st.text(max_size=10), ch, max_size=4),
        max_leaves=30,
    )
    bodies = st.one_of(
        json_values.map(lambda v: json.dumps(v).encode()),
        st.dictionaries(st.sampled_from(["texts", "text"]), json_values, max_size=2).map(
            lambda v: json.dumps(v).encode()
        ),
        st.lists(st.text(max_size=400), max_size=300).map(
            lambda t: json.dumps({"texts": t}).encode()
        ),
        st.binary(max_size=500),
    )
    counts: dict[int, int] = {}
    server_errors: list[str] = []
    with server(args.model) as (port, _pid), httpx.Client(timeout=60) as client:
        url = f"http://127.0.0.1:{port}"

        @settings(
            max_examples=args.examples,
            deadline=None,
            derandomize=False,
            suppress_health_check=list(HealthCheck),
            database=None,
        )
        @given(
            body=bodies,
            content_type=st.sampled_from(
                ["application/json", "text/plain", "application/x-www-form-urlencoded", ""]
            ),
        )
        def check(body: bytes, content_type: str) -> None:
            headers = {"content-type": content_type} if content_type else {}
            try:
                response = client.post(f"{url}/classify", content=body, headers=headers)
            except httpx.TransportError as err:
                server_errors.append(f"{body[:100]!r}: connection error {err!r}")
                return
            counts[response.status_code] = counts.get(response.status_code, 0) + 1
            if response.status_code >= 500:
                server_errors.append(f"{body[:100]!r}: {response.text[:200]}")

        check()
        # The OpenAPI schema's other operations, too.
        alive = proc_alive(_pid)
        for path in ("/health", "/metadata", "/metrics", "/monitor", "/openapi.json", "/docs"):
            try:
                status = client.get(f"{url}{path}").status_code
            except httpx.TransportError as err:
                server_errors.append(f"GET {path}: connection error {err!r}")
                continue
            counts[status] = counts.get(status, 0) + 1
            if status >= 500:
                server_errors.append(path)
        healthy = alive and httpx.get(f"{url}/health").status_code == 200
    result = {
        "scenario": "fuzz",
        "examples": args.examples,
        "status_counts": counts,
        "server_errors": len(server_errors),
        "examples_of_errors": server_errors[:5],
        "healthy_after": healthy,
    }
    print(json.dumps(result, indent=1))
    write_result(args.name or "fuzz", result)


def main(argv: list[str] | None = None) -> None:
    global _ARGV
    args_list = sys.argv[1:] if argv is None else list(argv)
    if args_list and args_list[0] == "_server":
        _server_main(args_list[1:])
        return
    _ARGV = args_list
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks serve_load", description=(__doc__ or "").split("\n\n")[0]
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("throughput", "transformer", "memory", "fuzz"):
        p = sub.add_parser(name)
        p.add_argument("model", nargs="?" if name == "transformer" else None, default=None)
        p.add_argument("--texts", default=str(DEFAULT_TEXTS))
        p.add_argument("--duration", type=float, default=8.0)
        p.add_argument("--rounds", type=int, default=3)
        p.add_argument("--max-batch-size", type=int, default=256)
        p.add_argument("--max-wait-ms", type=float, default=0.0)
        p.add_argument("--requests", type=int, default=200_000)
        p.add_argument("--warmup", type=int, default=20_000)
        p.add_argument("--examples", type=int, default=3000)
        p.add_argument("--name", default="")
    p = sub.add_parser("report", help="rewrite the tables of a Markdown file from the results")
    p.add_argument("doc", type=Path, help="e.g. docs/serving.md (has the marker comments)")
    args = parser.parse_args(args_list)
    if args.command == "report":
        report(args.doc)
        return
    {"throughput": throughput, "transformer": transformer, "memory": memory, "fuzz": fuzz}[
        args.command
    ](args)


# -- docs ---------------------------------------------------------------------------------
def _span(values: Sequence[float], fmt: str = "{:.0f}") -> str:
    lo, hi = fmt.format(min(values)), fmt.format(max(values))
    return lo if lo == hi else f"{lo}–{hi}"


def _ratio(summary: dict[str, float]) -> str:
    return f"**{summary['median']:.2f}** [{summary['min']:.2f}, {summary['max']:.2f}]"


def _head(result: dict[str, Any]) -> str:
    load = result.get("machine", {}).get("load_average", [None])[0]
    where = f", load average {load:.1f} at the end" if load is not None else ""
    return f"`{result.get('command', '')}` ({result.get('when', '')}{where}):"


def render_throughput(r: dict[str, Any]) -> str:
    rounds = r["rounds"]

    def col(key: str) -> list[float]:
        return [x[key] for x in rounds]

    lat = "p50 {} ms, p99 {} ms"
    rows = [
        ("in-process `nlp.pipe`", f"{_span(col('in_process_docs_per_s'))} docs/s", ""),
        (
            "A: 8 clients × 64 texts, server",
            f"{_span(col('A_server_docs_per_s'))} docs/s, "
            + lat.format(_span(col("A_p50_ms")), _span(col("A_p99_ms"))),
            "",
        ),
        ("A ÷ in-process, wall clock", "", _ratio(r["A_ratio"])),
        ("A ÷ in-process, docs per CPU-second", "", _ratio(r["A_cpu_ratio"])),
        (
            "constant endpoint, 32 clients",
            f"{_span(col('constant_requests_per_s'))} req/s, "
            + lat.format(_span(col("constant_p50_ms")), _span(col("constant_p99_ms"))),
            "",
        ),
        (
            "B: 32 clients × 1 text, server",
            f"{_span(col('B_requests_per_s'))} req/s, "
            + lat.format(_span(col("B_p50_ms")), _span(col("B_p99_ms"))),
            "",
        ),
        ("B ÷ constant, wall clock", "", _ratio(r["B_ratio"])),
        ("B ÷ constant, requests per CPU-second", "", _ratio(r["B_cpu_ratio"])),
    ]
    loads = [x["loadavg"] for x in rounds if x.get("loadavg") is not None]
    head = _head(r)
    if loads:
        head = head[:-2] + f", load average {_span(loads, '{:.1f}')} during the rounds):"
    lines = [head, "", "| | per round | median [min, max] |", "|---|---|---|"]
    lines += [f"| {a} | {b} | {c} |" for a, b, c in rows]
    return "\n".join(lines)


def render_transformer(r: dict[str, Any]) -> str:
    lines = [
        _head(r),
        "",
        "| round | per-request req/s (p50 / p99 ms) | micro-batched req/s (p50 / p99 ms) | ratio |",
        "|---|---|---|---|",
    ]
    for x in r["rounds"]:
        lines.append(
            f"| {x['round']} | {x['per_request_requests_per_s']:.0f} "
            f"({x['per_request_p50_ms']:.0f} / {x['per_request_p99_ms']:.0f}) | "
            f"{x['batched_requests_per_s']:.0f} ({x['batched_p50_ms']:.0f} / "
            f"{x['batched_p99_ms']:.0f}) | {x['ratio']:.2f} |"
        )
    lines += ["", f"Micro-batched ÷ per-request: {_ratio(r['ratio'])}."]
    return "\n".join(lines)


def render_memory(r: dict[str, Any]) -> str:
    lines = [
        _head(r),
        "",
        "| | RSS after warm-up | at the end | growth | requests/s |",
        "|---|---|---|---|---|",
    ]
    for key, label in (
        ("with_memory_zones", "memory zones (default)"),
        ("without_memory_zones", "`--no-memory-zones`"),
    ):
        x = r.get(key)
        if not x:
            continue
        n = x["samples"][-1][0] if x.get("samples") else r["requests"]
        lines.append(
            f"| {label} | {x['rss_after_warmup_mib']:.1f} MiB | {x['rss_end_mib']:.1f} MiB "
            f"after {n:,} requests | **{100 * x['growth']:+.1f} %** | {x['requests_per_s']:.0f} |"
        )
    return "\n".join(lines)


def render_fuzz(r: dict[str, Any]) -> str:
    counts = ", ".join(f"{k} × {v}" for k, v in sorted(r["status_counts"].items()))
    healthy = "healthy afterwards" if r.get("healthy_after") else "NOT healthy afterwards"
    return (
        f"{_head(r)} statuses {counts}; **{r['server_errors']} server errors**; server {healthy}."
    )


RENDERERS = {
    "throughput": render_throughput,
    "transformer": render_transformer,
    "memory": render_memory,
    "fuzz": render_fuzz,
}


def report(doc: Path) -> None:
    """Rewrite the text between ``<!-- serve_load SCENARIO: begin -->`` and ``... end -->``
    in ``doc`` from ``benchmarks/results/serve_SCENARIO.json``."""
    from ._common import RESULTS_DIR, replace_block

    text = doc.read_text(encoding="utf8")
    for scenario, render in RENDERERS.items():
        if f"<!-- serve_load {scenario}: begin -->" not in text:
            continue
        result = json.loads((RESULTS_DIR / f"serve_{scenario}.json").read_text(encoding="utf8"))
        replaced = replace_block(text, f"serve_load {scenario}", render(result))
        assert replaced is not None
        text = replaced
        print(f"{doc}: {scenario} table from serve_{scenario}.json")
    doc.write_text(text, encoding="utf8")


if __name__ == "__main__":
    main()

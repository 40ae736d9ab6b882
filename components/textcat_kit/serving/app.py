"""The REST service: FastAPI app around a :class:`ClassifierRuntime` and a micro-batcher.

Endpoints
---------
``POST /classify``  ``{"texts": [...]}`` -> ``{"model": {"name", "version"}, "results":
                    [{"cats": {label: p}, "labels": [...], "abstained": bool}]}``
``GET /health``     200 once the pipeline is loaded and the micro-batcher runs
``GET /metadata``   labels, task, thresholds, test metrics (meta.json)
``GET /metrics``    Prometheus text format (requests, latency, batch sizes, labels,
                    abstain rate, memory, and the live monitor figures)
``GET /monitor``    drift / expected-performance report over the sliding window
``GET /docs``       OpenAPI UI (``/openapi.json`` the schema)

Every client error is a 4xx JSON body ``{"error": {"code": "E30x", "message": ...}}``.
The app is built by :func:`create_app`; ``uvicorn`` gets it through
:func:`app_from_env` when several worker processes are asked for.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from pydantic import BaseModel, ConfigDict, Field, StrictStr
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..errors import ConfigError, Errors, TextcatKitError
from ..monitoring.live import SlidingWindow
from ..monitoring.monitor import MonitorSettings
from ..monitoring.profile import PROFILE_FILE, ReferenceProfile, read_reference_profile
from ..runtime_gc import frozen_loaded_objects
from .batching import RUNNERS, MicroBatcher, Runner
from .metrics import ServiceMetrics
from .runtime import ClassifierRuntime

logger = logging.getLogger("textcat_kit.serve")

SETTINGS_ENV = "TEXTCAT_KIT_SERVE_SETTINGS"
ROUTES = ("/classify", "/health", "/metadata", "/metrics", "/monitor", "/docs", "/openapi.json")
_CODE = re.compile(r"^\[(E\d+)\]")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


@dataclass(frozen=True)
class ServeSettings:
    """Options of ``textcat-kit serve`` (defaults are the CLI's)."""

    model: str
    max_batch_size: int = 256
    max_wait_ms: float = 0.0
    batch_runner: str = "auto"
    max_texts: int = 256
    max_text_length: int = 20_000
    memory_zones: bool = True
    batching: bool = True
    monitor_window: int = 2000
    monitor_min_docs: int = 200
    warmup_docs: int = 10_000
    warmup_texts: str | None = None

    def validate(self) -> ServeSettings:
        checks = [
            ("--max-batch-size", self.max_batch_size >= 1, ">= 1", self.max_batch_size),
            ("--max-wait-ms", 0 <= self.max_wait_ms <= 10_000, "in [0, 10000]", self.max_wait_ms),
            ("--max-texts", self.max_texts >= 1, ">= 1", self.max_texts),
            (
                "--batch-runner",
                self.batch_runner in ("auto", *RUNNERS),
                f"one of auto, {', '.join(RUNNERS)}",
                self.batch_runner,
            ),
            ("--max-text-length", self.max_text_length >= 1, ">= 1", self.max_text_length),
            ("--warmup-docs", self.warmup_docs >= 0, ">= 0", self.warmup_docs),
            ("--monitor-window", self.monitor_window >= 10, ">= 10", self.monitor_window),
            (
                "--monitor-min-docs",
                2 <= self.monitor_min_docs <= self.monitor_window,
                "in [2, --monitor-window]",
                self.monitor_min_docs,
            ),
        ]
        for option, ok, rule, value in checks:
            if not ok:
                raise ConfigError(Errors.E309.format(option=option, rule=rule, value=value))
        return self

    @property
    def max_body_bytes(self) -> int:
        # 4 bytes per character (UTF-8) or 6 (a JSON \uXXXX escape) plus quoting per text.
        return self.max_texts * (self.max_text_length * 6 + 16) + 1024

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> ServeSettings:
        return cls(**json.loads(text))


def _json_dumps(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False).encode("utf-8")


def _json_loads(body: bytes) -> Any:
    return json.loads(body.decode("utf-8"))


try:  # orjson (the serve extra) encodes the probabilities ~10x faster than json
    import orjson

    _dumps: Callable[[Any], bytes] = orjson.dumps
    _loads: Callable[[bytes], Any] = orjson.loads
except ImportError:  # pragma: no cover - exercised only without the extra
    _dumps = _json_dumps
    _loads = _json_loads


class ClassifyRequest(BaseModel):
    """Texts to classify."""

    model_config = ConfigDict(extra="forbid")
    texts: list[StrictStr] = Field(
        ...,
        description="Texts to classify (at least one; limits: see /metadata).",
        examples=[["I lost my card", "How do I top up?"]],
    )


class ModelInfo(BaseModel):
    name: str
    version: str


class TextResult(BaseModel):
    cats: dict[str, float] = Field(..., description="Probability per label (doc.cats).")
    labels: list[str] = Field(..., description="Decided labels (doc._.decided_labels).")
    abstained: bool = Field(..., description="Exclusive task and no label decided.")


class ClassifyResponse(BaseModel):
    model: ModelInfo
    results: list[TextResult]


class ErrorDetail(BaseModel):
    code: str
    message: str


class ErrorResponse(BaseModel):
    error: ErrorDetail


def error_response(status: int, message: str) -> JSONResponse:
    match = _CODE.match(message)
    code = match.group(1) if match else "E000"
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)


class _BodyTooLarge(Exception):
    def __init__(self, n: int) -> None:
        self.n = n


class ServiceMiddleware:
    """Pure ASGI middleware: request metrics and the request-body size limit."""

    def __init__(self, app: ASGIApp, metrics: ServiceMetrics, max_body_bytes: int) -> None:
        self.app = app
        self.metrics = metrics
        self.max_body = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = [500]
        started = [False]
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    length = int(value)
                except ValueError:
                    length = 0
                if length > self.max_body:
                    await self._too_large(scope, send, length, start)
                    return

        received = [0]

        async def limited_receive() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                received[0] += len(message.get("body", b""))
                if received[0] > self.max_body:
                    raise _BodyTooLarge(received[0])
            return message

        async def tracking_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
                started[0] = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _BodyTooLarge as err:
            if not started[0]:
                await self._too_large(scope, send, err.n, start)
                return
            raise
        finally:
            if started[0]:
                self.metrics.observe_request(
                    scope.get("method", ""),
                    scope.get("path", ""),
                    status[0],
                    time.perf_counter() - start,
                )

    async def _too_large(self, scope: Scope, send: Send, n: int, start: float) -> None:
        response = error_response(413, Errors.E307.format(n=n, limit=self.max_body))
        await response(scope, _empty_receive, send)
        self.metrics.observe_request(
            scope.get("method", ""), scope.get("path", ""), 413, time.perf_counter() - start
        )


async def _empty_receive() -> Message:
    return {"type": "http.disconnect"}


def _check_texts(texts: Sequence[str], settings: ServeSettings) -> tuple[int, str] | None:
    """(status, message) of the first problem with ``texts``, or None."""
    if not texts:
        return 422, Errors.E303
    if len(texts) > settings.max_texts:
        return 413, Errors.E304.format(n=len(texts), limit=settings.max_texts)
    limit = settings.max_text_length
    for i, text in enumerate(texts):
        if len(text) > limit:
            return 413, Errors.E305.format(index=i, n=len(text), limit=limit)
    try:
        "".join(texts).encode("utf-8")
    except UnicodeEncodeError:
        for i, text in enumerate(texts):
            try:
                text.encode("utf-8")
            except UnicodeEncodeError as err:
                return 422, Errors.E306.format(index=i, detail=err.reason)
    return None


def parse_texts(body: bytes) -> tuple[list[str] | None, tuple[int, str] | None]:
    """The texts of a /classify body, or (None, (status, message)) saying what is wrong.

    Done by hand instead of through FastAPI's body model: it is the hot path of every
    request, and the same checks cost a fraction of the generic machinery.
    """
    try:
        data = _loads(body)
    except ValueError as err:
        return None, (400, Errors.E301.format(detail=str(err) or "empty body"))
    if not isinstance(data, dict):
        detail = f"the body is a JSON {type(data).__name__}, not an object"
        return None, (422, Errors.E302.format(detail=detail))
    if "texts" not in data or len(data) != 1:
        extra = sorted(k for k in data if k != "texts")
        detail = "missing key 'texts'" if "texts" not in data else ""
        if extra:
            detail += ("; " if detail else "") + f"unknown key(s) {extra[:3]}"
        return None, (422, Errors.E302.format(detail=detail))
    texts = data["texts"]
    if not isinstance(texts, list):
        detail = f"'texts' is a JSON {type(texts).__name__}, not a list"
        return None, (422, Errors.E302.format(detail=detail))
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            detail = f"texts[{i}] is {type(text).__name__}, not a string"
            return None, (422, Errors.E302.format(detail=detail))
    return texts, None


def _validation_message(exc: RequestValidationError) -> tuple[int, str]:
    errors = exc.errors()
    for error in errors:
        if error.get("type") == "json_invalid":
            ctx = error.get("ctx", {}) or {}
            return 400, Errors.E301.format(detail=ctx.get("error", error.get("msg", "")))
    parts = []
    for error in errors[:3]:
        loc = ".".join(str(x) for x in error.get("loc", ()) if x != "body") or "body"
        parts.append(f"{loc}: {error.get('msg', 'invalid')}")
    more = f" (+{len(errors) - 3} more)" if len(errors) > 3 else ""
    return 422, Errors.E302.format(detail="; ".join(parts) + more)


def load_runtime(settings: ServeSettings) -> ClassifierRuntime:
    """Load the pipeline with the service's settings and prime it (``warmup_texts``)."""
    runtime = ClassifierRuntime.load(
        settings.model,
        memory_zones=settings.memory_zones,
        batch_size=settings.max_batch_size,
        warmup_docs=settings.warmup_docs,
    )
    if settings.warmup_texts:
        from ..monitoring.cli import read_texts

        texts, _ = read_texts(Path(settings.warmup_texts))
        n = runtime.prime(texts)
        logger.info("primed the tokenizer with %d texts from %s", n, settings.warmup_texts)
    return runtime


class Service:
    """State of one server process: pipeline, batcher, metrics, live monitor."""

    def __init__(self, settings: ServeSettings, runtime: ClassifierRuntime | None = None) -> None:
        self.settings = settings.validate()
        self.runtime = runtime or load_runtime(settings)
        self.metrics = ServiceMetrics(self.runtime.labels, ROUTES)
        self.batcher = MicroBatcher(
            self._process_groups,
            max_batch_size=settings.max_batch_size,
            max_wait_s=settings.max_wait_ms / 1000.0,
            runner=self.batch_runner,
        )
        self.model_json = _dumps(self.runtime.model_info)
        self.window: SlidingWindow | None = None
        self.monitor_problem: str | None = None
        self._load_profile()

    @property
    def batch_runner(self) -> Runner:
        """Where batches run: the setting, or for ``auto`` a worker thread when the
        pipeline computes outside the GIL and the event loop otherwise."""
        if self.settings.batch_runner in RUNNERS:
            return self.settings.batch_runner  # type: ignore[return-value]
        return "thread" if self.runtime.releases_gil else "loop"

    def _load_profile(self) -> None:
        path = self.runtime.model_path
        if path is None:
            self.monitor_problem = Errors.E310.format(path=self.settings.model, file=PROFILE_FILE)
            return
        try:
            profile: ReferenceProfile = read_reference_profile(path)
        except TextcatKitError as err:
            self.monitor_problem = str(err)
            logger.warning("live monitor off: %s", err)
            return
        if profile.labels != self.runtime.labels or profile.exclusive != self.runtime.exclusive:
            self.monitor_problem = Errors.E312.format(
                reference=len(profile.labels),
                task_ref="exclusive" if profile.exclusive else "multilabel",
                current=len(self.runtime.labels),
                task_cur=self.runtime.task,
            )
            logger.warning("live monitor off: %s", self.monitor_problem)
            return
        settings = MonitorSettings(min_docs=self.settings.monitor_min_docs)
        self.window = SlidingWindow(profile, self.settings.monitor_window, settings)

    # -- one batch (event loop or worker thread) ---------------------------------------------
    def _process_groups(self, groups: Sequence[Sequence[str]]) -> list[bytes]:
        texts = [text for group in groups for text in group]
        start = time.perf_counter()
        out = self.runtime.run(texts)
        exclusive = self.runtime.exclusive
        self.metrics.observe_batch(
            len(texts), len(groups), time.perf_counter() - start, out.decided, exclusive
        )
        if self.window is not None:
            self.window.add(out.probs, self.runtime.decided_matrix(out.decided))
        bodies = []
        offset = 0
        dumps = _dumps
        for group in groups:
            results = [
                {
                    "cats": out.cats[i],
                    "labels": out.decided[i],
                    "abstained": exclusive and not out.decided[i],
                }
                for i in range(offset, offset + len(group))
            ]
            offset += len(group)
            bodies.append(b'{"model":' + self.model_json + b',"results":' + dumps(results) + b"}")
        return bodies

    def classify_direct(self, texts: Sequence[str]) -> bytes:
        """Per-request path (no micro-batching): run this request's texts on their own."""
        return self._process_groups([texts])[0]

    def monitor_lines(self) -> list[str]:
        if self.window is None:
            return []
        report = self.window.report()
        lines = [
            "# HELP textcat_monitor_window_docs Predictions in the live monitor window.",
            "# TYPE textcat_monitor_window_docs gauge",
            f"textcat_monitor_window_docs {report.get('n_docs', 0)}",
            "# HELP textcat_monitor_alert 1 when a monitor figure is outside its corridor.",
            "# TYPE textcat_monitor_alert gauge",
            f"textcat_monitor_alert {int(bool(report.get('alert')))}",
        ]
        for name, fig in report.get("figures", {}).items():
            lines += [
                f"# TYPE textcat_monitor_{name} gauge",
                f"textcat_monitor_{name} {float(fig['value'])!r}",
                f'textcat_monitor_figure_alert{{figure="{name}"}} {int(fig["alert"])}',
            ]
        return lines


def create_app(settings: ServeSettings, runtime: ClassifierRuntime | None = None) -> FastAPI:
    """Build the app; the pipeline is loaded before the server accepts connections."""
    settings = settings.validate()
    state: dict[str, Service] = {}

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        service = Service(settings, runtime)
        service.batcher.start()
        state["service"] = service
        try:
            with frozen_loaded_objects():
                yield
        finally:
            service.batcher.stop()

    app = FastAPI(
        title="textcat-kit classifier",
        description="Calibrated text classification with decided labels and live monitoring.",
        version="1",
        lifespan=lifespan,
    )
    # Metrics are created with the service; the middleware looks them up lazily.
    lazy_metrics = _LazyMetrics(state)
    app.add_middleware(
        ServiceMiddleware,  # type: ignore[arg-type]
        metrics=lazy_metrics,
        max_body_bytes=settings.max_body_bytes,
    )

    @app.exception_handler(StarletteHTTPException)
    async def on_http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 400:  # a body FastAPI could not even decode
            return error_response(400, Errors.E301.format(detail=exc.detail))
        message = Errors.E316.format(
            method=request.method, path=request.url.path, detail=exc.detail
        )
        response = error_response(exc.status_code, message)
        if exc.headers:
            response.headers.update(exc.headers)
        return response

    @app.exception_handler(RequestValidationError)
    async def on_validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        status, message = _validation_message(exc)
        return error_response(status, message)

    error_responses: dict[int | str, dict[str, Any]] = {
        code: {"model": ErrorResponse} for code in (400, 413, 422, 500, 503)
    }

    @app.post(
        "/classify",
        response_model=ClassifyResponse,
        responses=error_responses,
        summary="Classify texts",
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": ClassifyRequest.model_json_schema()}},
            }
        },
    )
    async def classify(request: Request) -> Response:
        service = state["service"]
        texts, problem = parse_texts(await request.body())
        if texts is not None:
            problem = _check_texts(texts, settings)
        if problem is not None or texts is None:
            return error_response(*(problem or (422, Errors.E303)))
        try:
            if settings.batching:
                payload = await service.batcher.submit(texts)
            else:
                from starlette.concurrency import run_in_threadpool

                payload = await run_in_threadpool(service.classify_direct, texts)
        except Exception as err:  # the pipeline failed on this request only
            logger.exception("pipeline failure")
            return error_response(500, Errors.E308.format(detail=type(err).__name__))
        return Response(payload, media_type="application/json")

    @app.get("/health", summary="Liveness and readiness")
    async def health() -> JSONResponse:
        service = state.get("service")
        if service is None or not service.batcher.alive:
            return JSONResponse({"status": "unavailable"}, status_code=503)
        return JSONResponse({"status": "ok", "model": service.runtime.model_info})

    @app.get("/metadata", summary="Labels, task, thresholds, test metrics")
    async def metadata() -> JSONResponse:
        service = state["service"]
        return JSONResponse(
            {
                **service.runtime.metadata(),
                "limits": {
                    "max_texts": settings.max_texts,
                    "max_text_length": settings.max_text_length,
                    "max_batch_size": settings.max_batch_size,
                    "max_wait_ms": settings.max_wait_ms,
                    "batch_runner": service.batcher.runner,
                },
                "memory_zones": service.runtime.memory_zones,
                "monitor": {
                    "window": settings.monitor_window if service.window else None,
                    "problem": service.monitor_problem,
                },
            }
        )

    @app.get("/metrics", summary="Prometheus metrics", response_class=PlainTextResponse)
    async def metrics() -> PlainTextResponse:
        from starlette.concurrency import run_in_threadpool

        service = state["service"]
        extra = await run_in_threadpool(service.monitor_lines)
        return PlainTextResponse(
            service.metrics.render(extra), media_type="text/plain; version=0.0.4"
        )

    @app.get("/monitor", summary="Drift and expected performance over the live window")
    async def monitor() -> JSONResponse:
        from starlette.concurrency import run_in_threadpool

        service = state["service"]
        if service.window is None:
            return error_response(409, service.monitor_problem or Errors.E310)
        report = await run_in_threadpool(service.window.report)
        return JSONResponse(report)

    return app


class _LazyMetrics(ServiceMetrics):
    """Forwards to the service's metrics once the lifespan has created them."""

    def __init__(self, state: dict[str, Service]) -> None:  # noqa: D107 - no super().__init__
        self._state = state

    def observe_request(self, method: str, path: str, status: int, seconds: float) -> None:
        service = self._state.get("service")
        if service is not None:
            service.metrics.observe_request(method, path, status, seconds)


def app_from_env() -> FastAPI:
    """App factory for ``uvicorn --factory`` / several workers: settings from the env."""
    text = os.environ.get(SETTINGS_ENV)
    if not text:
        raise ConfigError(Errors.E309.format(option=SETTINGS_ENV, rule="set", value="unset"))
    return create_app(ServeSettings.from_json(text))

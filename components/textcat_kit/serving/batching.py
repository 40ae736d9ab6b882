"""Micro-batching: gather concurrent requests into one ``nlp.pipe`` call.

Requests are put on a thread-safe queue by the event loop and served by one worker
thread. The worker takes the first waiting request, then keeps taking requests until
the batch holds ``max_batch_size`` texts or ``max_wait_s`` has passed since the first
one (waiting only while the queue is empty). Under load, requests pile up while a batch
runs, so the next batch fills without waiting; at low load a request waits at most
``max_wait_s``. One thread owns the pipeline, so nothing runs it concurrently.

A batch that fails is re-run request by request, so one bad request cannot fail the
others; its own exception is handed back to its caller. The worker never dies on a
request's exception.
"""

from __future__ import annotations

import asyncio
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

ProcessFn = Callable[[Sequence[Sequence[str]]], list[Any]]
"""Takes the text lists of the gathered requests, returns one result per request."""


@dataclass
class _Job:
    texts: Sequence[str]
    future: asyncio.Future[Any]
    loop: asyncio.AbstractEventLoop


def _resolve(future: asyncio.Future[Any], value: Any, error: BaseException | None) -> None:
    if future.done():  # the client went away and the request was cancelled
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(value)


def _resolve_all(items: list[tuple[Any, Any, Any]]) -> None:
    for future, value, error in items:
        _resolve(future, value, error)


class MicroBatcher:
    """Serves :meth:`submit` calls from many coroutines with one worker thread."""

    def __init__(self, process: ProcessFn, *, max_batch_size: int = 256, max_wait_s: float = 0.002):
        self.process = process
        self.max_batch_size = max_batch_size
        self.max_wait_s = max_wait_s
        self._queue: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="textcat-batcher", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout)
            self._thread = None

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    async def submit(self, texts: Sequence[str]) -> Any:
        """Queue ``texts`` (one request) and wait for its result."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._queue.put(_Job(texts, future, loop))
        return await future

    def _gather(self, first: _Job) -> tuple[list[_Job], bool]:
        jobs = [first]
        n_texts = len(first.texts)
        deadline = time.monotonic() + self.max_wait_s
        while n_texts < self.max_batch_size:
            try:
                job = self._queue.get_nowait()
            except queue.Empty:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                try:
                    job = self._queue.get(timeout=remaining)
                except queue.Empty:
                    break
            if job is None:
                return jobs, True
            jobs.append(job)
            n_texts += len(job.texts)
        return jobs, False

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            jobs, stop = self._gather(first)
            self._serve(jobs)
            if stop:
                return

    def _serve(self, jobs: list[_Job]) -> None:
        try:
            results = self.process([job.texts for job in jobs])
            outcomes: list[tuple[Any, BaseException | None]] = [(r, None) for r in results]
        except Exception:
            outcomes = []
            for job in jobs:
                try:
                    outcomes.append((self.process([job.texts])[0], None))
                except Exception as err:  # handed to this request only
                    outcomes.append((None, err))
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[Any, Any, Any]]] = {}
        for job, (value, error) in zip(jobs, outcomes, strict=True):
            by_loop.setdefault(job.loop, []).append((job.future, value, error))
        for loop, items in by_loop.items():
            try:  # one wake-up of the event loop per batch, not per request
                loop.call_soon_threadsafe(_resolve_all, items)
            except RuntimeError:  # the loop is closed (server shutting down)
                pass

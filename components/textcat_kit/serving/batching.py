"""Micro-batching: gather concurrent requests into one ``nlp.pipe`` call.

Requests are gathered on the event loop. The first request that finds nothing pending
schedules a *flush* at the end of the current pass of the loop, so every request the
loop reads in the same pass joins its batch; at most one batch runs at a time, and the
requests that arrive while it runs form the next one, which starts as soon as it ends.
Under load batches grow by themselves to what arrives during one batch; a lone request
on an idle server is answered without waiting. ``max_wait_s`` > 0 additionally holds a
batch of fewer than ``max_batch_size`` texts for up to that long, for more to join.

Where a batch runs (``runner``):

* ``"loop"``: in the event loop's own thread. A CPU-bound pipeline that holds the GIL
  (bow, CNN: thinc on NumPy) cannot run in parallel with the loop anyway, and handing each
  batch to a thread and back costs two GIL hand-offs per batch and, while both threads
  want the GIL, waits of up to the interpreter's switch interval (5 ms). The loop does
  not read new requests while a batch runs; for such pipelines a batch takes about a
  millisecond.
* ``"thread"``: in one worker thread that owns the pipeline. For pipelines that release
  the GIL while they compute (PyTorch, ONNX Runtime), so that the loop keeps reading
  requests, answering ``/health`` and collecting the next batch meanwhile.

A batch that fails is re-run request by request, so one bad request cannot fail the
others; its own exception is handed back to its caller.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Literal

ProcessFn = Callable[[Sequence[Sequence[str]]], list[Any]]
"""Takes the text lists of the gathered requests, returns one result per request."""

Runner = Literal["loop", "thread"]
RUNNERS: tuple[Runner, ...] = ("loop", "thread")


@dataclass
class _Job:
    texts: Sequence[str]
    future: asyncio.Future[Any]
    loop: asyncio.AbstractEventLoop


Outcome = tuple[Any, BaseException | None]


def _resolve(future: asyncio.Future[Any], value: Any, error: BaseException | None) -> None:
    if future.done():  # the client went away and the request was cancelled
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(value)


class MicroBatcher:
    """Serves :meth:`submit` calls from the coroutines of one event loop."""

    def __init__(
        self,
        process: ProcessFn,
        *,
        max_batch_size: int = 256,
        max_wait_s: float = 0.0,
        runner: Runner = "loop",
    ) -> None:
        if runner not in RUNNERS:
            raise ValueError(f"runner must be one of {RUNNERS}, not {runner!r}")
        self.process = process
        self.max_batch_size = max_batch_size
        self.max_wait_s = max_wait_s
        self.runner: Runner = runner
        self._pending: list[_Job] = []
        self._pending_texts = 0
        self._flush_handle: asyncio.Handle | None = None
        self._flush_held = False  # the arranged flush waits max_wait_s (a timer)
        self._pending_at_last_pass = 0  # pending requests when the last flush pass looked
        self._running = False  # a batch is running in the worker thread
        self._executor: ThreadPoolExecutor | None = None
        self._started = False

    def start(self) -> None:
        if self.runner == "thread" and self._executor is None:
            self._executor = ThreadPoolExecutor(1, thread_name_prefix="textcat-batcher")
        self._started = True

    def stop(self) -> None:
        """Stop taking batches; a batch running in the worker thread is finished first."""
        self._started = False
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        for job in self._pending:
            try:
                job.loop.call_soon_threadsafe(job.future.cancel)
            except RuntimeError:  # that loop is closed
                pass
        self._pending, self._pending_texts = [], 0
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None

    @property
    def alive(self) -> bool:
        return self._started

    async def submit(self, texts: Sequence[str]) -> Any:
        """Queue ``texts`` (one request) and wait for its result."""
        if not self._started:
            raise RuntimeError("the micro-batcher is not running")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._pending.append(_Job(texts, future, loop))
        self._pending_texts += len(texts)
        self._schedule(loop)
        return await future

    # -- on the event loop -----------------------------------------------------------------
    def _schedule(self, loop: asyncio.AbstractEventLoop) -> None:
        """Arrange a flush, unless one is arranged or a batch is running."""
        if self._running or not self._pending:
            return
        full = self._pending_texts >= self.max_batch_size
        if self._flush_handle is not None:
            if not (full and self._flush_held):
                return
            self._flush_handle.cancel()  # a held batch filled up: flush it now
        self._flush_held = self.max_wait_s > 0 and not full
        if self._flush_held:
            self._flush_handle = loop.call_later(self.max_wait_s, self._flush, loop)
        else:
            self._flush_handle = loop.call_soon(self._flush, loop)

    def _take(self) -> list[_Job]:
        """The pending jobs of the next batch: at least one, up to ``max_batch_size`` texts."""
        n_texts, n_jobs = 0, 0
        for job in self._pending:
            if n_jobs and n_texts + len(job.texts) > self.max_batch_size:
                break
            n_texts += len(job.texts)
            n_jobs += 1
        jobs, self._pending = self._pending[:n_jobs], self._pending[n_jobs:]
        self._pending_texts -= n_texts
        return jobs

    def _flush(self, loop: asyncio.AbstractEventLoop) -> None:
        self._flush_handle = None
        if self._running or not self._pending or not self._started:
            return
        if len(self._pending) > self._pending_at_last_pass and (
            self._pending_texts < self.max_batch_size
        ):
            # Requests came in during the last pass of the loop: give the loop one more
            # pass (it polls the sockets first) so that requests arriving back to back
            # join this batch. An idle loop runs the batch after one extra pass.
            self._pending_at_last_pass = len(self._pending)
            self._flush_handle = loop.call_soon(self._flush, loop)
            return
        jobs = self._take()
        self._pending_at_last_pass = 0
        if self._executor is None:  # runner "loop"
            self._finish(jobs, self._run(jobs))
            self._schedule(loop)
            return
        self._running = True
        done: Future[list[Outcome]] = self._executor.submit(self._run, jobs)
        done.add_done_callback(
            lambda f: loop.call_soon_threadsafe(self._finished_in_thread, jobs, f, loop)
        )

    def _finished_in_thread(
        self, jobs: list[_Job], done: Future[list[Outcome]], loop: asyncio.AbstractEventLoop
    ) -> None:
        self._running = False
        try:
            outcomes = done.result()
        except BaseException as err:  # noqa: BLE001 - the executor was shut down
            outcomes = [(None, err)] * len(jobs)
        self._finish(jobs, outcomes)
        self._schedule(loop)

    @staticmethod
    def _finish(jobs: list[_Job], outcomes: list[Outcome]) -> None:
        current = asyncio.get_running_loop()
        for job, (value, error) in zip(jobs, outcomes, strict=True):
            if job.loop is current:
                _resolve(job.future, value, error)
            else:  # a job submitted from another loop (tests that run several)
                try:
                    job.loop.call_soon_threadsafe(_resolve, job.future, value, error)
                except RuntimeError:  # that loop is closed
                    pass

    # -- where the batch runs --------------------------------------------------------------
    def _run(self, jobs: list[_Job]) -> list[Outcome]:
        try:
            results = self.process([job.texts for job in jobs])
            return [(result, None) for result in results]
        except Exception:
            outcomes: list[Outcome] = []
            for job in jobs:
                try:
                    outcomes.append((self.process([job.texts])[0], None))
                except Exception as err:  # handed to this request only
                    outcomes.append((None, err))
            return outcomes

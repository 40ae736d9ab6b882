"""The micro-batcher on its own: batches form from concurrent requests, are bounded by
max_batch_size, run in the loop or in a worker thread, and isolate a failing request."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence

import pytest

from textcat_kit.serving.batching import MicroBatcher


class Recorder:
    """A process function that records each batch (as request sizes) and its thread."""

    def __init__(self, fail_on: str | None = None) -> None:
        self.batches: list[list[int]] = []
        self.threads: set[str] = set()
        self.fail_on = fail_on

    def __call__(self, groups: Sequence[Sequence[str]]) -> list[str]:
        self.batches.append([len(group) for group in groups])
        self.threads.add(threading.current_thread().name)
        if self.fail_on is not None and any(self.fail_on in group for group in groups):
            raise ValueError("bad text")
        return ["|".join(group) for group in groups]


async def _submit_all(batcher: MicroBatcher, requests: list[list[str]]) -> list[object]:
    return await asyncio.gather(
        *(batcher.submit(texts) for texts in requests), return_exceptions=True
    )


@pytest.mark.parametrize("runner", ["loop", "thread"])
def test_concurrent_requests_share_a_batch_and_get_their_own_results(runner: str) -> None:
    process = Recorder()
    batcher = MicroBatcher(process, max_batch_size=256, runner=runner)  # type: ignore[arg-type]
    batcher.start()
    requests = [[f"t{i}"] for i in range(40)]
    results = asyncio.run(_submit_all(batcher, requests))
    batcher.stop()
    assert results == [f"t{i}" for i in range(40)]
    assert process.batches == [[1] * 40]  # all arrived in one pass of the loop
    on_worker = any(name.startswith("textcat-batcher") for name in process.threads)
    assert on_worker == (runner == "thread")


def test_batches_are_bounded_by_max_batch_size_in_texts() -> None:
    process = Recorder()
    batcher = MicroBatcher(process, max_batch_size=5)
    batcher.start()
    requests = [["a", "b"], ["c", "d"], ["e", "f"], ["g"], ["h", "i", "j", "k", "l", "m"]]
    results = asyncio.run(_submit_all(batcher, requests))
    batcher.stop()
    assert results == ["a|b", "c|d", "e|f", "g", "h|i|j|k|l|m"]
    # 2 + 2 fill 4 of 5; the next request would overflow it. A request larger than the
    # limit is a batch of its own.
    assert process.batches == [[2, 2], [2, 1], [6]]


@pytest.mark.parametrize("runner", ["loop", "thread"])
def test_a_failing_request_fails_alone(runner: str) -> None:
    process = Recorder(fail_on="boom")
    batcher = MicroBatcher(process, runner=runner)  # type: ignore[arg-type]
    batcher.start()
    results = asyncio.run(_submit_all(batcher, [["ok1"], ["boom"], ["ok2"]]))
    batcher.stop()
    assert results[0] == "ok1" and results[2] == "ok2"
    assert isinstance(results[1], ValueError)
    assert process.batches[0] == [1, 1, 1]  # tried together first, then one by one


def test_requests_arriving_while_a_thread_batch_runs_form_the_next_batch() -> None:
    started, release = threading.Event(), threading.Event()
    batches: list[list[str]] = []

    def process(groups: Sequence[Sequence[str]]) -> list[str]:
        batches.append([text for group in groups for text in group])
        if len(batches) == 1:
            started.set()
            release.wait(5)
        return [group[0] for group in groups]

    batcher = MicroBatcher(process, runner="thread")
    batcher.start()

    async def scenario() -> list[str]:
        first = asyncio.ensure_future(batcher.submit(["first"]))
        while not started.is_set():
            await asyncio.sleep(0.001)
        later = [asyncio.ensure_future(batcher.submit([f"later{i}"])) for i in range(3)]
        await asyncio.sleep(0.01)
        release.set()
        return await asyncio.gather(first, *later)

    assert asyncio.run(scenario()) == ["first", "later0", "later1", "later2"]
    batcher.stop()
    assert batches == [["first"], ["later0", "later1", "later2"]]


def test_max_wait_holds_a_small_batch_for_more_requests() -> None:
    process = Recorder()
    batcher = MicroBatcher(process, max_wait_s=0.05)
    batcher.start()

    async def scenario() -> list[object]:
        first = asyncio.ensure_future(batcher.submit(["a"]))
        await asyncio.sleep(0.01)  # within max_wait: joins the held batch
        second = asyncio.ensure_future(batcher.submit(["b"]))
        return list(await asyncio.gather(first, second))

    assert asyncio.run(scenario()) == ["a", "b"]
    batcher.stop()
    assert process.batches == [[1, 1]]


def test_submit_after_stop_is_refused() -> None:
    batcher = MicroBatcher(Recorder())
    batcher.start()
    batcher.stop()
    with pytest.raises(RuntimeError):
        asyncio.run(batcher.submit(["x"]))

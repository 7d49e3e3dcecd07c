"""Driving tasks without hanging: progress, a stall watchdog, and leftover checks."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Iterable
from typing import Any

from .model import Layer, RunContext, WorkloadFailed

__all__ = [
    "BODY",
    "HELLO",
    "STOP",
    "Progress",
    "SeqChecker",
    "StridedChecker",
    "leftovers",
    "payload",
    "run_all",
    "stop_tasks",
]

BODY = "x" * 100
HELLO = {"type": "bench.hello"}
"""Sent until every receiving process has seen one (a subscriber may join late); skipped."""
STOP = {"type": "bench.stop"}
"""Tells a receiver that does not know its share of the messages that the run is over."""
_TICK = 0.25


def payload(seq: int) -> dict[str, Any]:
    """The benchmark message (DESIGN.md section 6)."""
    return {"type": "bench.msg", "seq": seq, "body": BODY}


class Progress:
    """How many of the expected deliveries have arrived; the watchdog reads it."""

    def __init__(self, expected: int, what: str = "messages") -> None:
        self.expected = expected
        self.count = 0
        self.what = what

    def describe(self) -> str:
        """E.g. '9,999 of 10,000 messages arrived'."""
        return f"{self.count:,} of {self.expected:,} {self.what} arrived"


class SeqChecker:
    """Checks that one receiver sees seq 0, 1, 2, ... exactly once each, in order."""

    __slots__ = ("next", "where")

    def __init__(self, where: str) -> None:
        self.where = where
        self.next = 0

    def check(self, message: dict[str, Any]) -> None:
        """Accept the next message or raise WorkloadFailed naming the fault."""
        seq = message.get("seq")
        if seq == self.next and message.get("body") == BODY:
            self.next += 1
            return
        if not isinstance(seq, int):
            raise WorkloadFailed(f"{self.where}: corrupted message {message!r:.80}")
        if seq == self.next:
            raise WorkloadFailed(f"{self.where}: seq {seq} arrived with a corrupted body")
        if seq < self.next:
            raise WorkloadFailed(
                f"{self.where}: duplicate or reordered: got seq {seq}, expected seq {self.next}"
            )
        raise WorkloadFailed(
            f"{self.where}: lost or reordered: expected seq {self.next}, got seq {seq}"
        )


class StridedChecker:
    """Checks `senders` concurrent senders, sender i sending seq i, i + senders, ...:
    each sender's messages arrive exactly once each, in its order."""

    __slots__ = ("next", "senders", "where")

    def __init__(self, where: str, senders: int) -> None:
        self.where = where
        self.senders = senders
        self.next = list(range(senders))

    def check(self, message: dict[str, Any]) -> None:
        """Accept the next message of its sender or raise WorkloadFailed naming the fault."""
        seq = message.get("seq")
        if not isinstance(seq, int) or seq < 0 or message.get("body") != BODY:
            raise WorkloadFailed(f"{self.where}: corrupted message {message!r:.80}")
        sender = seq % self.senders
        if seq != self.next[sender]:
            raise WorkloadFailed(
                f"{self.where}: sender {sender}: lost, duplicate or reordered: expected seq "
                f"{self.next[sender]}, got seq {seq}"
            )
        self.next[sender] += self.senders


async def _watchdog(progress: Progress, ctx: RunContext) -> None:
    start = last_change = time.monotonic()
    last = progress.count
    while True:
        await asyncio.sleep(_TICK)
        now = time.monotonic()
        if progress.count != last:
            last, last_change = progress.count, now
        elif now - last_change > ctx.stall_seconds:
            raise WorkloadFailed(
                f"stalled: nothing arrived for {ctx.stall_seconds:.0f}s; {progress.describe()}"
            )
        if now - start > ctx.limit_seconds:
            raise WorkloadFailed(f"timed out after {ctx.limit_seconds:.0f}s; {progress.describe()}")


async def stop_tasks(tasks: Iterable[asyncio.Future[Any]], seconds: float = 10.0) -> None:
    """Cancel tasks and wait until they are done, cancelling again while any survive.

    redis-py can turn a cancellation that lands mid-command into its own error, or drop
    it, and the task goes on: one cancel() is not enough. A task that outlives `seconds`
    of this fails the run rather than hanging it.
    """
    everything = list(tasks)
    pending = {t for t in everything if not t.done()}
    deadline = time.monotonic() + seconds
    while pending:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=0.2)
        if pending and time.monotonic() > deadline:
            raise WorkloadFailed(f"{len(pending)} task(s) ignored cancellation for {seconds:.0f}s")
    for task in everything:
        if not task.cancelled():
            task.exception()  # retrieved: no "exception was never retrieved" at exit


async def run_all(jobs: Iterable[Awaitable[Any]], progress: Progress, ctx: RunContext) -> None:
    """Run jobs concurrently; the first failure, a stall or the time limit fails the run.

    Whatever still runs when this returns or raises is cancelled and awaited.
    """
    tasks = [asyncio.ensure_future(job) for job in jobs]
    everything = asyncio.gather(*tasks)
    dog = asyncio.ensure_future(_watchdog(progress, ctx))
    try:
        first: list[asyncio.Future[Any]] = [everything, dog]
        await asyncio.wait(first, return_when=asyncio.FIRST_COMPLETED)
        if everything.done():
            everything.result()  # raises the first job's failure, if any
        else:
            dog.result()  # the watchdog only ever finishes by raising
    finally:
        await stop_tasks([dog, *tasks])
        await asyncio.gather(everything, return_exceptions=True)


async def leftovers(layer: Layer, channels: Iterable[str], wait: float = 0.02) -> int:
    """How many channels still have a message after the run (each extra is a duplicate)."""
    probes = [asyncio.ensure_future(layer.receive(channel)) for channel in channels]
    if not probes:
        return 0
    done, pending = await asyncio.wait(probes, timeout=wait)
    await stop_tasks(pending)
    return sum(1 for probe in done if not probe.cancelled() and probe.exception() is None)

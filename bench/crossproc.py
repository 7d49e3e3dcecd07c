"""W4 and W5: receivers in other OS processes (``python -m bench.child``), the sender here.

A child builds the same target's layer under the run's prefix and reports JSON lines on
stdout (see bench.child). The figures run from the first send here to the last receipt
there, both read from time.monotonic(), which is CLOCK_MONOTONIC: one clock per host.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import os
import secrets
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

from .harness import HELLO, STOP, Progress, payload, run_all, stop_tasks
from .model import Measurement, RunContext, WorkloadFailed

__all__ = ["Child", "cross_process", "many_processes", "send_batches", "start_children"]

_ROOT = Path(__file__).resolve().parent.parent
_READY_SECONDS = 30.0
_POKE_INTERVAL = 0.02


class Child:
    """One receiving process: its events, its result, and its stderr for failures."""

    def __init__(self, name: str, spec: dict[str, Any], progress: Progress) -> None:
        self.name = name
        self.spec = spec
        self.progress = progress
        self.count = 0
        self.listening = asyncio.Event()
        self.ready = asyncio.Event()
        self.result: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._stderr: collections.deque[bytes] = collections.deque(maxlen=20)
        self._proc: asyncio.subprocess.Process | None = None
        self._readers: list[asyncio.Future[None]] = []

    async def start(self) -> None:
        """Start the process (the bench package is found through PYTHONPATH)."""
        path = os.pathsep.join(p for p in (str(_ROOT), os.environ.get("PYTHONPATH")) if p)
        self._proc = await asyncio.create_subprocess_exec(
            *(sys.executable, "-m", "bench.child", json.dumps(self.spec)),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env={**os.environ, "PYTHONPATH": path},
            limit=1 << 24,  # a "done" line carries every seq a competing receiver got
        )
        self._readers = [asyncio.ensure_future(self._events()), asyncio.ensure_future(self._err())]

    def _fail(self, reason: str) -> None:
        if not self.result.done():
            self.result.set_exception(WorkloadFailed(f"{self.name}: {reason}"))

    def _counted(self, count: int) -> None:
        self.progress.count += count - self.count
        self.count = count

    async def _events(self) -> None:
        assert self._proc is not None
        assert self._proc.stdout is not None
        async for line in self._proc.stdout:
            event = json.loads(line)
            kind = event.pop("event")
            if kind == "listening":
                self.listening.set()
            elif kind == "ready":
                self.ready.set()
            elif kind == "progress":
                self._counted(event["count"])
            elif kind == "done" and not self.result.done():
                self._counted(event["count"])
                self.result.set_result(event)
            elif kind == "fail":
                self._fail(event["reason"])
        status = await self._proc.wait()
        tail = b"".join(self._stderr).decode(errors="replace").strip()[-600:]
        self._fail(f"exited with status {status} before reporting; stderr: {tail or '(empty)'}")

    async def _err(self) -> None:
        assert self._proc is not None
        assert self._proc.stderr is not None
        async for line in self._proc.stderr:
            self._stderr.append(line)

    async def finished(self) -> dict[str, Any]:
        """The child's report; raises WorkloadFailed if it failed or died."""
        return await self.result

    async def stop(self) -> None:
        """Kill the process if it still runs; wait for it and the readers."""
        if self._proc is not None and self._proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self._proc.kill()
        if self._proc is not None:
            await self._proc.wait()
        await asyncio.gather(*self._readers, return_exceptions=True)
        if self.result.done() and not self.result.cancelled():
            self.result.exception()  # retrieved: no "exception was never retrieved"
        else:
            self.result.cancel()


async def _until(what: str, events: Sequence[asyncio.Event], children: Sequence[Child]) -> None:
    """Wait for every event; a child that fails or dies first fails the run."""
    waiting: asyncio.Future[Any] = asyncio.gather(*(e.wait() for e in events))
    watched: list[asyncio.Future[Any]] = [waiting, *(c.result for c in children)]
    done, _ = await asyncio.wait(
        watched, timeout=_READY_SECONDS, return_when=asyncio.FIRST_COMPLETED
    )
    for child in children:
        if child.result.done():
            await child.finished()  # raises its failure (a done before ready is one too)
            raise WorkloadFailed(f"{child.name} finished before it was {what}")
    if waiting not in done:
        waiting.cancel()
        late = [c.name for c, e in zip(children, events, strict=True) if not e.is_set()]
        raise WorkloadFailed(f"{', '.join(late)} not {what} after {_READY_SECONDS:.0f}s")


async def start_children(
    children: Sequence[Child], poke: Callable[[], Awaitable[None]] | None
) -> None:
    """Start the processes; once all listen, poke (send hellos) until all are ready."""
    await asyncio.gather(*(c.start() for c in children))
    await _until("listening", [c.listening for c in children], children)

    ready = asyncio.Event()  # a flag, not only cancel(): redis-py may swallow a cancel

    async def poker() -> None:
        while poke is not None and not ready.is_set():
            await poke()
            await asyncio.sleep(_POKE_INTERVAL)

    pokes = asyncio.ensure_future(poker())
    try:
        await _until("ready", [c.ready for c in children], children)
    finally:
        ready.set()
        await stop_tasks([pokes])


def _check_shares(n: int, shares: list[list[int]]) -> None:
    """Competing receivers: together, every seq exactly once."""
    counts = [0] * n
    for share in shares:
        for seq in share:
            if not 0 <= seq < n:
                raise WorkloadFailed(f"corrupted: seq {seq} was never sent")
            counts[seq] += 1
    twice = sum(1 for c in counts if c > 1)
    if twice:
        got = " + ".join(f"{len(s):,}" for s in shares)
        raise WorkloadFailed(
            f"duplicate: {twice:,} of {n:,} messages reached more than one receiver"
            f" ({got} deliveries); a normal channel must give each message to exactly one"
        )
    lost = counts.count(0)
    if lost:
        raise WorkloadFailed(f"lost: {lost:,} of {n:,} messages reached no receiver")


async def send_batches(
    layer: Any, channel: str, messages: list[dict[str, Any]], batch: int
) -> None:
    """send_many in batches where the layer has it; one send after another elsewhere."""
    send_many = getattr(layer, "send_many", None)
    if send_many is None:
        for message in messages:
            await layer.send(channel, message)
        return
    for first in range(0, len(messages), batch):
        chunk = messages[first : first + batch]
        results = await send_many([(channel, message) for message in chunk])
        failed = [r for r in results if r is not None]
        if failed:
            raise WorkloadFailed(f"send_many refused {len(failed)} message(s): {failed[0]!r}")


async def _send_concurrently(
    layer: Any, channel: str, messages: list[dict[str, Any]], senders: int
) -> None:
    """`senders` tasks, task i sending messages i, i + senders, ... one after another."""

    async def one(start: int) -> None:
        for message in messages[start::senders]:
            await layer.send(channel, message)

    await asyncio.gather(*(one(i) for i in range(senders)))


async def cross_process(
    ctx: RunContext, n: int, receivers: int, batch: int = 1, senders: int = 1
) -> Measurement:
    """W4: send n on a named normal channel to `receivers` processes; messages/s.

    batch > 1: the sender uses send_many (where the layer has it) in batches of that
    size; senders > 1: that many concurrent sending tasks (each one's order is checked).
    """
    channel = f"bench.w4.{secrets.token_hex(6)}"
    progress = Progress(n)
    role = "receive" if receivers == 1 else "compete"
    spec: dict[str, Any] = {"role": role, "target": ctx.target, "prefix": ctx.prefix}
    spec |= {"channel": channel, "n": n, "limit": ctx.limit_seconds, "senders": senders}
    layer = ctx.factory()
    children = [Child(f"receiver process {i + 1}", spec, progress) for i in range(receivers)]
    try:
        await start_children(children, lambda: layer.send(channel, HELLO))
        messages = [payload(i) for i in range(n)]

        async def sender() -> None:
            send = layer.send
            if batch > 1:
                await send_batches(layer, channel, messages, batch)
            elif senders > 1:
                await _send_concurrently(layer, channel, messages, senders)
            else:
                for message in messages:
                    await send(channel, message)
            while role == "compete" and not all(c.result.done() for c in children):
                await send(channel, STOP)  # until each receiver has had one
                await asyncio.wait([c.result for c in children], timeout=0.05)

        start = time.monotonic()
        await run_all([sender(), *(c.finished() for c in children)], progress, ctx)
        reports = [c.result.result() for c in children]
        if role == "compete":
            _check_shares(n, [r["seqs"] for r in reports])
        return {"rate": n / (max(r["last"] for r in reports) - start)}
    finally:
        await asyncio.gather(*(c.stop() for c in children))
        await layer.close()


async def many_processes(ctx: RunContext, processes: int, members: int, sends: int) -> Measurement:
    """W5: `processes` processes hold `members` channels each in one group; deliveries/s."""
    group = f"bench-w5-{secrets.token_hex(6)}"
    expected = processes * members * sends
    progress = Progress(expected, "deliveries")
    spec: dict[str, Any] = {"role": "members", "target": ctx.target, "prefix": ctx.prefix}
    spec |= {"group": group, "members": members, "sends": sends, "limit": ctx.limit_seconds}
    layer = ctx.factory()
    children = [
        Child(f"member process {i + 1}", spec | {"index": i + 1}, progress)
        for i in range(processes)
    ]
    try:
        await start_children(children, lambda: layer.group_send(group, HELLO))
        messages = [payload(i) for i in range(sends)]

        async def sender() -> None:
            for message in messages:
                await layer.group_send(group, message)

        start = time.monotonic()
        await run_all([sender(), *(c.finished() for c in children)], progress, ctx)
        last = max(c.result.result()["last"] for c in children)
        if progress.count != expected:
            raise WorkloadFailed(f"lost: {progress.describe()}")
        return {"rate": expected / (last - start)}
    finally:
        await asyncio.gather(*(c.stop() for c in children))
        await layer.close()

"""Workloads W1-W5 (DESIGN.md section 6): the same driver code for every layer.

Each run gets a fresh layer from the target's factory and closes it afterwards.

W1 and W3 run with two senders, as two cases:
- "W1", "W3 G=...": the sender awaits send()/group_send() back to back and never yields on
  its own. This is the workload as specified, and the driver that reproduces the known
  channels figures (W1 ~120k msg/s, W3 G=1000 ~5.3k deliveries/s); goals apply to it.
  An in-memory send never suspends, so receivers mostly drain a backlog; a networked
  layer's send suspends, so there the two tasks interleave by themselves.
- "W1 send_many": the sender sends batches of 100 with send_many (one by one where a
  layer has none).
- "... yield": the sender also yields to the event loop after every send, as a producer
  between real events would. Receivers then wait for (nearly) every message, which
  measures the cost of waking a waiting receiver.

W4 and W5 (bench.crossproc) receive in other OS processes. W4 also runs as "W4 2 rx":
two receiver processes compete for one named normal channel, and together they must get
every message exactly once (a layer that broadcasts a normal channel FAILs it); as
"W4 send_many", sending with send_many in batches of 100 (a layer without send_many sends
one by one); and as "W4 64 senders", 64 tasks sending at once, each in its own order.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from time import perf_counter, perf_counter_ns
from typing import Any

from .crossproc import cross_process, many_processes, send_batches
from .harness import Progress, SeqChecker, leftovers, payload, run_all
from .model import (
    CROSS_PROCESS,
    Case,
    FigureSpec,
    Layer,
    Measurement,
    RunContext,
    WorkloadFailed,
)

__all__ = ["WORKLOADS", "Workload", "fan_out", "p2p_throughput", "round_trip"]

GROUP = "bench-fanout"


@dataclass(frozen=True)
class Workload:
    """A workload: its figures, the capabilities a layer needs for it, and its cases."""

    key: str
    title: str
    figures: tuple[FigureSpec, ...]
    requires: frozenset[str]
    cases: Callable[[bool], list[Case]]
    """quick -> the cases to run."""


# -- shared drivers ----------------------------------------------------------------------


async def _receive_n(
    layer: Layer, channel: str, n: int, checker: SeqChecker, progress: Progress
) -> None:
    receive, check = layer.receive, checker.check
    for _ in range(n):
        check(await receive(channel))
        progress.count += 1


async def _send_all(
    send: Callable[[str, dict[str, Any]], Awaitable[None]],
    target: str,
    messages: list[dict[str, Any]],
    yields: bool,
) -> None:
    for message in messages:
        await send(target, message)
        if yields:
            await asyncio.sleep(0)


# -- W1 ----------------------------------------------------------------------------------


async def p2p_throughput(ctx: RunContext, n: int, yields: bool, batch: int = 1) -> Measurement:
    """W1: one sender and one concurrent receiver on one new_channel(); messages/s.

    batch > 1: the sender uses send_many (where the layer has it) in batches of that size.
    """
    layer = ctx.factory()
    try:
        channel = await layer.new_channel()
        messages = [payload(i) for i in range(n)]
        progress = Progress(n)
        checker = SeqChecker("receiver")

        rx = asyncio.ensure_future(_receive_n(layer, channel, n, checker, progress))
        await asyncio.sleep(0)  # the receiver waits before the first send
        start = perf_counter()
        if batch > 1:
            sender = send_batches(layer, channel, messages, batch)
        else:
            sender = _send_all(layer.send, channel, messages, yields)
        await run_all([rx, sender], progress, ctx)
        elapsed = perf_counter() - start
        if await leftovers(layer, [channel]):
            raise WorkloadFailed("duplicate: a message was left over after all N arrived")
        return {"rate": n / elapsed}
    finally:
        await layer.close()


# -- W2 ----------------------------------------------------------------------------------


def _percentile(ordered: list[int], fraction: float) -> int:
    """Nearest-rank percentile of an ascending list."""
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


async def round_trip(ctx: RunContext, n: int) -> Measurement:
    """W2: A sends on ch1, B echoes on ch2, A receives; round-trip p50/p99/max in µs."""
    layer = ctx.factory()
    try:
        ping, pong = await layer.new_channel(), await layer.new_channel()
        warmup = min(100, n // 10)
        total = warmup + n
        messages = [payload(i) for i in range(total)]
        progress = Progress(total, "round trips")
        latencies: list[int] = []

        async def pinger() -> None:
            send, receive, check = layer.send, layer.receive, SeqChecker("pinger").check
            for i, message in enumerate(messages):
                start = perf_counter_ns()
                await send(ping, message)
                reply = await receive(pong)
                took = perf_counter_ns() - start
                check(reply)
                if i >= warmup:
                    latencies.append(took)
                progress.count += 1

        async def ponger() -> None:
            send, receive, check = layer.send, layer.receive, SeqChecker("ponger").check
            for _ in range(total):
                message = await receive(ping)
                check(message)
                await send(pong, message)

        await run_all([ponger(), pinger()], progress, ctx)
        if await leftovers(layer, [ping, pong]):
            raise WorkloadFailed("duplicate: a message was left over after the last round trip")
        latencies.sort()
        return {
            "p50": _percentile(latencies, 0.50) / 1000,
            "p99": _percentile(latencies, 0.99) / 1000,
            "max": latencies[-1] / 1000,
        }
    finally:
        await layer.close()


# -- W3 ----------------------------------------------------------------------------------


async def fan_out(ctx: RunContext, members: int, sends: int, yields: bool) -> Measurement:
    """W3: `sends` group_sends to `members` new_channel()s, one receiver task each."""
    layer = ctx.factory()
    try:
        channels = [await layer.new_channel() for _ in range(members)]
        for channel in channels:
            await layer.group_add(GROUP, channel)
        messages = [payload(i) for i in range(sends)]
        expected = members * sends
        progress = Progress(expected, "deliveries")

        receivers = [
            asyncio.ensure_future(_receive_n(layer, c, sends, SeqChecker(f"member {i}"), progress))
            for i, c in enumerate(channels)
        ]
        await asyncio.sleep(0)  # every receiver waits before the first group_send
        start = perf_counter()
        sender = _send_all(layer.group_send, GROUP, messages, yields)
        await run_all([*receivers, sender], progress, ctx)
        elapsed = perf_counter() - start
        if progress.count != expected:
            raise WorkloadFailed(f"lost: {progress.describe()}")
        extra = await leftovers(layer, channels)
        if extra:
            raise WorkloadFailed(f"duplicate: {extra} member(s) had a message left over")
        return {"rate": expected / elapsed, "ms_per_send": elapsed * 1000 / sends}
    finally:
        await layer.close()


# -- the registry ------------------------------------------------------------------------

_RATE = FigureSpec("rate", "throughput", "msg/s", higher_is_better=True)
_LATENCY = tuple(
    FigureSpec(key, key, "µs", higher_is_better=False) for key in ("p50", "p99", "max")
)
_FANOUT = (
    FigureSpec("rate", "deliveries", "deliveries/s", higher_is_better=True),
    FigureSpec("ms_per_send", "per group_send", "ms", higher_is_better=False),
)

_MODES = (("", False), (" yield", True))


def _w1(quick: bool) -> list[Case]:
    n = 1_000 if quick else 10_000
    cases = [
        Case(f"W1{tag}", "W1", {"n": n, "sender_yields": y}, partial(p2p_throughput, n=n, yields=y))
        for tag, y in _MODES
    ]
    # Batches of 100 with send_many (a layer without it sends one by one, as in "W1").
    run = partial(p2p_throughput, n=n, yields=False, batch=100)
    cases.append(Case("W1 send_many", "W1", {"n": n, "batch": 100}, run))
    return cases


def _w2(quick: bool) -> list[Case]:
    n = 200 if quick else 2_000
    return [Case("W2", "W2", {"round_trips": n}, partial(round_trip, n=n))]


def _w3(quick: bool) -> list[Case]:
    sends = 100
    return [
        Case(
            f"W3 G={g}{tag}",
            "W3",
            {"members": g, "sends": sends, "sender_yields": y},
            partial(fan_out, members=g, sends=sends, yields=y),
        )
        for g in ((100,) if quick else (100, 1_000))
        for tag, y in _MODES
    ]


def _w4(quick: bool) -> list[Case]:
    # (tag, receivers, send_many batch, concurrent senders, messages): " send_many" sends
    # batches of 100 (a layer without send_many sends one by one); " 64 senders" has 64
    # tasks of one process sending at once, as the requests of a busy server do. The fast
    # rows and the two competing receivers send more: 10,000 messages lasted 0.1-0.3 s
    # there, and their samples scattered by 2x.
    variants = [("", 1, 1, 1, 10_000), (" 2 rx", 2, 1, 1, 30_000)]
    variants += [(" send_many", 1, 100, 1, 50_000), (" 64 senders", 1, 1, 64, 50_000)]
    return [
        Case(
            f"W4{tag}",
            "W4",
            {"n": n, "receivers": r, "batch": b, "senders": s},
            partial(cross_process, n=n, receivers=r, batch=b, senders=s),
        )
        for tag, r, b, s, full in variants
        for n in (1_000 if quick else full,)
    ]


def _w5(quick: bool) -> list[Case]:
    sends = 10 if quick else 100
    params = {"processes": 4, "members_each": 250, "sends": sends}
    run = partial(many_processes, processes=4, members=250, sends=sends)
    return [Case("W5", "W5", params, run)]


WORKLOADS: dict[str, Workload] = {
    w.key: w
    for w in (
        Workload("W1", "p2p throughput", (_RATE,), frozenset(), _w1),
        Workload("W2", "round trip", _LATENCY, frozenset(), _w2),
        Workload("W3", "group fan-out", _FANOUT, frozenset(), _w3),
        Workload("W4", "cross-process p2p", (_RATE,), frozenset({CROSS_PROCESS}), _w4),
        Workload("W5", "many processes fan-out", _FANOUT[:1], frozenset({CROSS_PROCESS}), _w5),
    )
}

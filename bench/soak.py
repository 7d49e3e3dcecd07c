"""python -m bench soak: minutes of mixed traffic per backend, and an account of every message.

Traffic, all at once on one layer per backend:

* work: a sender on a normal channel, two receivers sharing it (each message to one);
* direct: a sender to process-local channels, one receiver each;
* room: group_sends to a group of process-local members, plus one laggard member that
  never reads, so group_send drops for it by rule (capacity) once it is full;
* sends that find a channel full (ChannelFull) are counted as refused, not sent.

At the end the senders stop, receivers drain, and the report gives per backend: sent
(deliveries asked for to readers: a group_send counts once per reading member),
delivered, dropped by rule (capacity, expiry: the layer's own counters), lost (expected
and never delivered: must be 0), duplicated (must be 0) and the process RSS at the
start and the end. The exit status is 1 if anything was lost or duplicated.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import resource
import secrets
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from layers.base import ChannelLayer
from layers.exceptions import ChannelFull

__all__ = ["SoakReport", "main", "soak"]

MEMBERS = 8
LOCALS = 4
CAPACITY = 1000
DRAIN_SECONDS = 15.0


def rss_bytes() -> int:
    """The process's resident set size now (Linux /proc), else its peak (getrusage)."""
    statm = Path("/proc/self/statm")
    if statm.exists():
        return int(statm.read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


@dataclass
class SoakReport:
    """What one backend did during the soak."""

    backend: str
    seconds: float = 0.0
    sent: int = 0
    refused_full: int = 0
    # Per stream, deliveries expected and made, indexed by seq: one byte per message, so
    # that the bookkeeping does not show up in the RSS figures of a long run.
    expected: dict[str, bytearray] = field(default_factory=dict)
    delivered: dict[str, bytearray] = field(default_factory=dict)
    expected_total: int = 0
    delivered_total: int = 0
    dropped_by_rule: int = 0
    rss_start: int = 0
    rss_end: int = 0

    def expect(self, stream: str, seq: int, count: int = 1) -> None:
        """count deliveries of stream's message seq are due."""
        _bump(self.expected, stream, seq, count)
        self.expected_total += count

    def arrived(self, stream: str, seq: int) -> None:
        """One delivery of stream's message seq was made."""
        _bump(self.delivered, stream, seq, 1)
        self.delivered_total += 1

    def _compare(self) -> tuple[int, int]:
        lost = duplicated = 0
        for stream in self.expected.keys() | self.delivered.keys():
            due = self.expected.get(stream, bytearray())
            got = self.delivered.get(stream, bytearray())
            for seq in range(max(len(due), len(got))):
                want = due[seq] if seq < len(due) else 0
                have = got[seq] if seq < len(got) else 0
                lost += max(want - have, 0)
                duplicated += max(have - want, 0)
        return lost, duplicated

    @property
    def lost(self) -> int:
        """Deliveries expected and never made."""
        return self._compare()[0]

    @property
    def duplicated(self) -> int:
        """Deliveries made more often than expected (or never expected)."""
        return self._compare()[1]

    def row(self) -> str:
        """One line of the report table."""
        mib = 1 << 20
        return (
            f"{self.backend:<10} {self.seconds:>6.0f} {self.sent:>10,} "
            f"{self.delivered_total:>10,} {self.dropped_by_rule:>8,} "
            f"{self.refused_full:>8,} {self.lost:>5} {self.duplicated:>5} "
            f"{self.rss_start / mib:>8.1f} {self.rss_end / mib:>8.1f}"
        )


def _bump(table: dict[str, bytearray], stream: str, seq: int, count: int) -> None:
    counts = table.setdefault(stream, bytearray())
    if seq >= len(counts):
        counts.extend(bytes(seq + 4096 - len(counts)))
    counts[seq] = min(counts[seq] + count, 255)


HEADER = (
    f"{'backend':<10} {'secs':>6} {'sent':>10} {'delivered':>10} {'dropped':>8} "
    f"{'refused':>8} {'lost':>5} {'dups':>5} {'rss0_MiB':>8} {'rss1_MiB':>8}"
)


async def _receive_into(layer: ChannelLayer, channel: str, report: SoakReport) -> None:
    while True:
        message = await layer.receive(channel)
        report.arrived(message["stream"], message["seq"])


async def _send(
    layer: ChannelLayer, channel: str, stream: str, seq: int, report: SoakReport
) -> None:
    message = {"type": "soak.msg", "stream": stream, "seq": seq, "body": "x" * 100}
    try:
        await layer.send(channel, message)
    except ChannelFull:
        report.refused_full += 1
        return
    report.sent += 1
    report.expect(stream, seq)


async def soak(name: str, factory: Pair, seconds: float, rate: float = 500.0) -> SoakReport:
    """Run mixed traffic for seconds, from one layer to another; account for every message.

    The sender is a second layer on the receiver's prefix (another process, as far as the
    server can tell): a layer's messages to its own channels would not cross the server.
    """
    layer, sender = factory()
    # Read after the layers are made: importing a backend's client library is not growth.
    report = SoakReport(name, rss_start=rss_bytes())
    locals_ = [await layer.new_channel() for _ in range(LOCALS)]
    members = [await layer.new_channel() for _ in range(MEMBERS)]
    laggard = await layer.new_channel()
    for member in [*members, laggard]:
        await layer.group_add("soak.room", member)
    receivers = [
        asyncio.ensure_future(_receive_into(layer, channel, report))
        for channel in ["soak.work", "soak.work", *locals_, *members]
    ]
    started = time.monotonic()
    tick = 0
    try:
        while time.monotonic() - started < seconds:
            tick += 1
            await _send(sender, "soak.work", "w", tick, report)
            await _send(sender, locals_[tick % LOCALS], "d", tick, report)
            if tick % 5 == 0:
                message = {"type": "soak.msg", "stream": "g", "seq": tick, "body": "y" * 100}
                await sender.group_send("soak.room", message)
                # One delivery per reading member; the laggard's copies are not counted
                # as sent: they are held in its buffer or dropped by rule once it is full.
                report.sent += MEMBERS
                report.expect("g", tick, MEMBERS)
            await asyncio.sleep(1 / rate)
        report.seconds = time.monotonic() - started
        deadline = time.monotonic() + DRAIN_SECONDS
        # Receivers only bump counters: polling them is simpler than an event per id.
        while report.delivered_total < report.expected_total:
            if time.monotonic() >= deadline:
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.2)  # late duplicates would land here
    finally:
        for task in receivers:
            task.cancel()
        await asyncio.gather(*receivers, return_exceptions=True)
        # The laggard's full buffer drops each group copy (counted by whichever side
        # checks capacity); expiry drops what nobody read. RabbitMQ also counts
        # publishes the broker returned (no such queue).
        both = [layer] if sender is layer else [layer, sender]
        report.dropped_by_rule = sum(
            stats["dropped_full"] + stats["dropped_expired"] + stats.get("dropped_unroutable", 0)
            for stats in (one.stats() for one in both)
        )
        with contextlib.suppress(Exception):
            await layer.flush()
        for one in both:
            await one.close()
    report.rss_end = rss_bytes()
    return report


Pair = Callable[[], tuple[ChannelLayer, ChannelLayer]]
"""Makes (receiver, sender): two layers that share channels, or one layer twice."""


def _factories(redis_url: str, amqp_url: str) -> dict[str, Pair]:
    # Imported when called: a backend whose extra is not installed fails only if chosen.
    def inmemory() -> tuple[ChannelLayer, ChannelLayer]:
        from layers.inmemory import InMemoryChannelLayer

        layer = InMemoryChannelLayer(capacity=CAPACITY)
        return layer, layer

    def ipc() -> tuple[ChannelLayer, ChannelLayer]:
        from layers.ipc import IPCChannelLayer

        # A region of its own, named after the prefix; flush() and close() remove it.
        return _twice(lambda p: IPCChannelLayer(name=p, prefix=p, capacity=CAPACITY))

    def redis() -> tuple[ChannelLayer, ChannelLayer]:
        from layers.redis import RedisChannelLayer

        return _twice(lambda p: RedisChannelLayer(hosts=[redis_url], prefix=p, capacity=CAPACITY))

    def rabbitmq() -> tuple[ChannelLayer, ChannelLayer]:
        from layers.rabbitmq import RabbitMQChannelLayer

        return _twice(lambda p: RabbitMQChannelLayer(url=amqp_url, prefix=p, capacity=CAPACITY))

    return {"inmemory": inmemory, "ipc": ipc, "redis": redis, "rabbitmq": rabbitmq}


def _twice(make: Callable[[str], ChannelLayer]) -> tuple[ChannelLayer, ChannelLayer]:
    """Two layers on one new prefix."""
    prefix = f"soak{secrets.token_hex(4)}"
    return make(prefix), make(prefix)


def main(argv: Sequence[str] | None = None) -> int:
    """The soak command line; exit status 1 if any message was lost or duplicated."""
    parser = argparse.ArgumentParser(prog="python -m bench soak", description=__doc__)
    parser.add_argument("--minutes", type=float, default=10.0, help="per backend (default 10)")
    parser.add_argument(
        "--layers",
        default="inmemory,redis",
        help="inmemory, ipc, redis, rabbitmq (comma-separated)",
    )
    parser.add_argument("--rate", type=float, default=500.0, help="send rounds per second")
    args = parser.parse_args(argv)
    factories = _factories(
        os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"),
        os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/"),
    )
    chosen = [n.strip() for n in args.layers.split(",") if n.strip()]
    unknown = [n for n in chosen if n not in factories]
    if unknown:
        raise SystemExit(f"unknown backend(s) {unknown}; known: {', '.join(factories)}")
    reports: list[SoakReport] = []
    for name in chosen:
        print(f"soaking {name} for {args.minutes:g} min ...", file=sys.stderr, flush=True)
        reports.append(asyncio.run(soak(name, factories[name], args.minutes * 60, args.rate)))
    print(HEADER)
    for report in reports:
        print(report.row())
    bad = [r.backend for r in reports if r.lost or r.duplicated]
    if bad:
        print(f"FAIL: lost or duplicated messages on {', '.join(bad)}", file=sys.stderr)
    return 1 if bad else 0

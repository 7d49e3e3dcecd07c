"""A steady send/receive stream with a ledger: what was sent OK, what failed, what arrived."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from layers.base import ChannelLayer
from layers.exceptions import ChannelLayerConnectionError
from tests.helpers import msg

__all__ = ["Ledger", "stream"]


async def _send(sender: ChannelLayer, channel: str, seqs: range, ledger: Ledger) -> None:
    """Send seqs (one send, or one send_many) and note each one's outcome."""
    if len(seqs) == 1:
        try:
            await sender.send(channel, msg(seqs[0]))
        except ChannelLayerConnectionError:
            ledger.failed.append(seqs[0])
            ledger.note_call(ok=False)
        else:
            ledger.sent.append(seqs[0])
            ledger.note_call(ok=True)
        return
    results = await sender.send_many([(channel, msg(seq)) for seq in seqs])
    for seq, result in zip(seqs, results, strict=True):
        if result is None:
            ledger.sent.append(seq)
        elif isinstance(result, ChannelLayerConnectionError):
            ledger.failed.append(seq)
        else:
            raise AssertionError(f"seq {seq}: unexpected {result!r}")
    ledger.note_call(ok=any(result is None for result in results))


@dataclass
class Ledger:
    """Every seq of one stream: sent OK, refused with an error, and received (how often)."""

    sent: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)
    received: Counter[int] = field(default_factory=Counter)
    # (monotonic time, whether it succeeded) of each send call, for outage lengths.
    calls: list[tuple[float, bool]] = field(default_factory=list)

    def note_call(self, *, ok: bool) -> None:
        """Record one send call's outcome and when it ended."""
        self.calls.append((time.monotonic(), ok))

    def longest_outage(self) -> float:
        """Longest time from a failed send call to the next one that succeeded (inf: never)."""
        longest = 0.0
        failing_since: float | None = None
        for at, ok in self.calls:
            if not ok and failing_since is None:
                failing_since = at
            elif ok and failing_since is not None:
                longest = max(longest, at - failing_since)
                failing_since = None
        return float("inf") if failing_since is not None else longest

    def missing(self) -> list[int]:
        """Sent OK but never received."""
        return [seq for seq in self.sent if seq not in self.received]

    def duplicated(self) -> dict[int, int]:
        """Received more than once: seq -> times."""
        return {seq: n for seq, n in self.received.items() if n > 1}

    def unexplained(self) -> list[int]:
        """Received but neither sent OK nor failed (corruption)."""
        known = set(self.sent) | set(self.failed)
        return sorted(seq for seq in self.received if seq not in known)

    def check_exactly_once(self) -> None:
        """Every OK send arrived once; a failed send arrived at most once; nothing else."""
        assert not self.missing(), (
            f"{len(self.missing())} of {len(self.sent)} messages sent OK were lost: "
            f"{self.missing()[:20]}"
        )
        assert not self.duplicated(), f"delivered more than once: {self.duplicated()}"
        assert not self.unexplained(), f"never sent: {self.unexplained()}"


async def stream(
    sender: ChannelLayer,
    receiver: ChannelLayer,
    channel: str,
    count: int,
    faults: dict[int, Callable[[], Awaitable[None]]],
    *,
    interval: float = 0.002,
    settle: float = 20.0,
    ledger: Ledger | None = None,
    batch: int = 1,
) -> Ledger:
    """Send count messages while receiving; run faults[i] once seq i is reached.

    With batch > 1, the sender sends batch messages per send_many (a fault due inside a
    batch runs before it), and the ledger takes each item's own result.

    If the last send failed, the sender goes on with further seqs, 0.05 s apart, until
    one succeeds or settle seconds pass: a test can then tell a layer that recovers
    slowly (ledger.longest_outage()) from one that never does, whatever the timing.

    Returns once every message sent OK has arrived (or settle seconds passed after the
    last send), plus a short grace period that would reveal late duplicates.
    """
    ledger = Ledger() if ledger is None else ledger
    done = asyncio.Event()

    async def consume() -> None:
        while True:
            message = await receiver.receive(channel)
            ledger.received[message["seq"]] += 1
            if done.is_set() and not ledger.missing():
                return

    consumer = asyncio.ensure_future(consume())
    try:
        for first in range(0, count, batch):
            seqs = range(first, min(first + batch, count))
            for seq in seqs:
                fault = faults.get(seq)
                if fault is not None:
                    await fault()
            await _send(sender, channel, seqs, ledger)
            await asyncio.sleep(interval)
        extra = count
        deadline = time.monotonic() + settle
        while ledger.calls and not ledger.calls[-1][1] and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
            await _send(sender, channel, range(extra, extra + 1), ledger)
            extra += 1
        done.set()
        if ledger.missing():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(consumer), settle)
        await asyncio.sleep(0.5)  # late duplicates would show up here
    finally:
        consumer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await consumer
    return ledger

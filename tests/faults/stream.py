"""A steady send/receive stream with a ledger: what was sent OK, what failed, what arrived."""

from __future__ import annotations

import asyncio
import contextlib
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
            ledger.sent.append(seqs[0])
        except ChannelLayerConnectionError:
            ledger.failed.append(seqs[0])
        return
    results = await sender.send_many([(channel, msg(seq)) for seq in seqs])
    for seq, result in zip(seqs, results, strict=True):
        if result is None:
            ledger.sent.append(seq)
        elif isinstance(result, ChannelLayerConnectionError):
            ledger.failed.append(seq)
        else:
            raise AssertionError(f"seq {seq}: unexpected {result!r}")


@dataclass
class Ledger:
    """Every seq of one stream: sent OK, refused with an error, and received (how often)."""

    sent: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)
    received: Counter[int] = field(default_factory=Counter)

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

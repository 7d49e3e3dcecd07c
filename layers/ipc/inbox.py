"""Process-local channels: one inbox per layer and prefix in the region, fanned out here.

A send to 'x.<id>!a', or a group_send to many of one layer's channels, puts one entry
in the region's queue for the inbox 'x.<id>!', naming the local parts it is for. The
owner's reader task moves entries into its LocalChannels buffers, where receive()
waits. The region keeps a depth count per local channel for capacity, released (in
batches) as messages leave the owner's buffers: taken, expired or flushed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import threading
import time
from typing import TYPE_CHECKING

from ..exceptions import ChannelLayerClosed, ChannelLayerError
from ..naming import LOCAL_PARTS

if TYPE_CHECKING:
    from .layer import IPCChannelLayer

__all__ = ["Acks", "read_inbox"]

log = logging.getLogger("layers.ipc")
UNBOUNDED = sys.maxsize  # capacity was enforced in the region when the message was sent
_BATCH = 256


class Acks:
    """Depth counts to release in the region, gathered from any thread."""

    def __init__(self) -> None:
        self._pending: dict[str, int] = {}
        self._lock = threading.Lock()
        self._scheduled = False

    def add(self, channel: str, count: int) -> bool:
        """Note count messages of channel left the buffers; True if a flush should be set up."""
        with self._lock:
            self._pending[channel] = self._pending.get(channel, 0) + count
            if self._scheduled:
                return False
            self._scheduled = True
            return True

    def take(self) -> dict[str, int]:
        """Everything pending (the caller releases it or gives it back)."""
        with self._lock:
            pending, self._pending = self._pending, {}
            self._scheduled = False
            return pending

    def give_back(self, counts: dict[str, int]) -> None:
        """Re-queue counts that could not be released."""
        with self._lock:
            for channel, count in counts.items():
                self._pending[channel] = self._pending.get(channel, 0) + count


def deliver(layer: IPCChannelLayer, inbox: str, entries: list[tuple[float, bytes]]) -> None:
    """Put inbox entries into the local buffers of the channels each one names."""
    put = layer.local.put
    for deadline, entry in entries:
        newline = entry.find(b"\n")
        if newline < 0 or not LOCAL_PARTS.fullmatch(entry, 0, newline):
            # Not written by a layer (a foreign or broken writer): drop and count it.
            layer.counters.dropped_undecodable += 1
            log.warning("dropped a malformed entry of inbox %s: %r", inbox, entry[:40])
            continue
        payload = entry[newline + 1 :]
        for part in entry[:newline].decode().split(","):
            put(inbox + part, payload, deadline, UNBOUNDED)


async def read_inbox(layer: IPCChannelLayer, inbox: str) -> None:
    """The one reader of an inbox: entries into the local buffers, as they arrive.

    Taking entries and buffering them happen with no await between, so cancelling the
    reader never loses one; while it waits, nothing is taken.
    """
    try:
        await _read(layer, inbox)
    except ChannelLayerClosed:  # closed from another thread while this one read
        return


async def _read(layer: IPCChannelLayer, inbox: str) -> None:
    waker = await layer.wakers.here()
    while not layer.closed:
        with layer.txn() as txn:
            entries, expired = txn.state.pop_inbox(inbox, time.monotonic(), _BATCH)
            if entries or expired:
                txn.changed = True
            if not entries and not txn.state.watching(inbox, waker.ident):
                txn.state.watch(inbox, waker.ident)
                txn.changed = True
        layer.counters.dropped_expired += expired
        deliver(layer, inbox, entries)
        layer.local.maybe_sweep()
        if entries:
            await asyncio.sleep(0)  # let receivers take between batches
        else:
            await waker.wait(inbox)


def flush_acks(layer: IPCChannelLayer) -> None:
    """Release pending depth counts now (a loop callback set up by Acks.add)."""
    if layer.closed:
        return
    with contextlib.suppress(ChannelLayerError), layer.txn():
        pass  # every transaction releases what is pending

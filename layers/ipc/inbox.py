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
import time
import weakref
from contextlib import AbstractContextManager
from typing import Protocol

from ..counters import Counters
from ..exceptions import ChannelLayerClosed, ChannelLayerError
from ..figures import Tally
from ..inbox import ProcessInbox
from .figures import fold_counts
from .region import Txn
from .wakeup import Wakers

__all__ = ["InboxOwner", "flush_acks", "read_inbox", "sync_counts_later"]

log = logging.getLogger("layers.ipc")
_BATCH = 256


class InboxOwner(Protocol):
    """What reading an inbox uses of the layer that owns it."""

    wakers: Wakers
    counters: Counters
    tally: Tally
    inbox: ProcessInbox

    @property
    def closed(self) -> bool:
        """True once the layer is closed."""

    def txn(self) -> AbstractContextManager[Txn]:
        """A region transaction that also releases pending depth counts."""


async def read_inbox(layer: InboxOwner, inbox: str) -> None:
    """The one reader of an inbox: entries into the local buffers, as they arrive.

    Taking entries and buffering them happen with no await between, so cancelling the
    reader never loses one; while it waits, nothing is taken.
    """
    try:
        await _read(layer, inbox)
    except ChannelLayerClosed:  # closed from another thread while this one read
        return


async def _read(layer: InboxOwner, inbox: str) -> None:
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
        deliver = layer.inbox.fanout.deliver
        for deadline, entry in entries:
            deliver(inbox, entry, deadline)
        layer.inbox.local.maybe_sweep()
        if entries:
            await asyncio.sleep(0)  # let receivers take between batches
        else:
            await waker.wait(inbox)


def flush_acks(layer: InboxOwner) -> None:
    """Release pending depth counts now (a loop callback set up by Acks.add)."""
    if layer.closed:
        return
    with contextlib.suppress(ChannelLayerError), layer.txn():
        pass  # every transaction releases what is pending


def _sync_counts(layer: InboxOwner) -> None:
    if layer.closed or not layer.tally.pending():
        return
    with contextlib.suppress(ChannelLayerError), layer.txn() as txn:
        fold_counts(layer.tally, txn)


def sync_counts_later(layer: InboxOwner, delay: float) -> None:
    """Add the layer's pending counts to the region's in delay seconds, unless it is gone
    by then (a timer holding it would keep a layer dropped without close() alive, and its
    region with it)."""
    ref = weakref.ref(layer)

    def later() -> None:
        if (alive := ref()) is not None:
            _sync_counts(alive)

    asyncio.get_running_loop().call_later(delay, later)

"""Process-side fan-out: per-channel buffers that receive() awaits.

A backend puts payloads in (from its transport reader, or directly for in-memory);
receivers take them out. A waiter is woken, then takes: it never holds a message
while suspended, so cancelling a receive cannot lose one. Buffers are shared by
every event loop and thread that uses the layer; a waiter in another loop is
woken through that loop's call_soon_threadsafe. A wait costs one Future, and a
group delivery one entry shared by every member's buffer (see buffer.py).
"""

from __future__ import annotations

import asyncio
import itertools
import sys
import threading
import time
from asyncio.events import _get_running_loop
from collections.abc import Callable, Iterable

from .buffer import Buffer, Entry, Waiter, listed, pushed, removed, wake_first_of
from .counters import Counters
from .exceptions import ChannelLayerClosed

__all__ = ["UNBOUNDED", "LocalChannels"]

UNBOUNDED = sys.maxsize
"""The capacity to put with when the transport already enforced the channel's."""
Clock = Callable[[], float]
Capacity = int | Callable[[str], int]
"""A capacity for every channel, or a function giving each channel's."""


class LocalChannels:
    """Bounded per-channel buffers with cancellation-safe, cross-loop waiting."""

    def __init__(
        self,
        counters: Counters,
        sweep_interval: float = 30.0,
        on_remove: Callable[[str, int], None] | None = None,
        clock: Clock = time.monotonic,
    ) -> None:
        self.counters = counters
        self.clock = clock
        self.sweep_interval = sweep_interval
        self._next_sweep = clock() + sweep_interval
        # Told (channel, count) whenever payloads of a process-local channel leave the
        # buffers (taken, expired, flushed); called with the lock held, so keep it short.
        self._on_remove = on_remove
        self._buffers: dict[str, Buffer] = {}
        # Non-local part ("x!") -> names of its non-empty buffers, for receive("x!"):
        # kept only for parts someone receives on, made on their first such receive.
        self._inboxes: dict[str, set[str]] = {}
        self._prefix_waiters: dict[str, list[Waiter]] = {}
        self._seq = itertools.count()
        self._lock = threading.Lock()
        self._closed = False

    # -- putting -------------------------------------------------------------

    def put(self, channel: str, payload: bytes, deadline: float, capacity: int) -> bool:
        """Queue payload for channel; False (and nothing queued) if the channel is full."""
        entry = (next(self._seq), deadline, payload, True)
        with self._lock:
            return self._put(channel, entry, capacity, _get_running_loop())

    def put_many(
        self,
        channels: Iterable[str],
        payload: bytes,
        deadline: float,
        capacity: Capacity,
        counted: bool = True,
    ) -> list[str]:
        """Queue one payload for each of channels in one pass; return the full ones,
        which got nothing. capacity: one for all, or a function of the channel.
        counted=False: the store counted none of them, so on_remove is never told."""
        full: list[str] = []
        # One entry serves every channel: they all got it at the same moment.
        entry = (next(self._seq), deadline, payload, counted)
        running, put, buffers = _get_running_loop(), self._put, self._buffers
        # A buffer with room for sure inline; the rest (full, perhaps; indexed) in _put.
        limit = capacity if isinstance(capacity, int) else 0
        with self._lock:
            if self._prefix_waiters or self._inboxes:
                buffers = {}  # every channel through _put, which keeps them
            for channel in channels:
                buf = buffers.get(channel)
                if buf is not None and buf.add(entry, limit):
                    if buf.waiters is not None:
                        buf.wake_first(running)
                    continue
                if not put(channel, entry, capacity, running):
                    full.append(channel)
        return full

    def _put(
        self,
        channel: str,
        entry: Entry,
        capacity: Capacity,
        running: asyncio.AbstractEventLoop | None,
    ) -> bool:
        buf = self._buffers.get(channel)
        if buf is None:
            buf = self._buffers[channel] = Buffer(channel)
        if buf.first is None:
            # Every capacity is at least 1: an empty buffer takes it without asking.
            buf.first = entry
            if buf.inbox is not None:
                names = self._inboxes.get(buf.inbox)
                if names is not None:
                    names.add(channel)
        else:
            limit = capacity if isinstance(capacity, int) else capacity(channel)
            if not buf.add(entry, limit):
                self._purge(channel, buf, self.clock())
                if len(buf) >= limit:
                    return False
                if buf.first is None:
                    return self._put(channel, entry, capacity, running)
                buf.add(entry, limit)  # fits now: fewer than limit are left
        if buf.waiters:
            buf.wake_first(running)
        elif buf.inbox is not None and self._prefix_waiters:
            queue = self._prefix_waiters.get(buf.inbox)
            if queue:
                wake_first_of(queue, running)
        return True

    def known(self, channels: list[str]) -> list[str]:
        """channels, each replaced by the name its buffer holds if it has one: a name
        parsed again (from an inbox entry) then costs no second copy."""
        buffers = self._buffers
        return [buf.name if (buf := buffers.get(c)) is not None else c for c in channels]

    # -- taking ----------------------------------------------------------------

    async def get(self, channel: str, on_wait: Callable[[], None] | None = None) -> bytes:
        """Wait for the next live payload on channel (or any 'x!*' channel for 'x!').

        on_wait runs each time this receiver is about to wait: a backend uses it to
        make sure something is fetching from its transport for this channel.
        """
        if channel.endswith("!"):
            return await self._get_prefix(channel, on_wait)
        # The locked part is a plain method: an idle receiver's frame stays small.
        got = self._take_or_wait(channel, None)
        while not isinstance(got, bytes):
            try:
                if on_wait is not None:
                    on_wait()
                await got
            except BaseException:
                # Cancelled, perhaps just after being woken: leave no waiter behind and
                # pass any wake-up on, so no message is stranded.
                self._drop_waiter(channel, got)
                raise
            # Woken: _put moved us from waiters to woken; go round and take.
            got = self._take_or_wait(channel, got)
        return got

    def take(self, channel: str) -> bytes | None:
        """The next live payload of channel (any 'x!*' for 'x!') if one is queued now."""
        if channel.endswith("!"):
            with self._lock:
                return self._take_prefix(channel)
        # A look without the lock first: an empty channel is the common case when its
        # receiver is about to wait, and get() decides under the lock anyway.
        buf = self._buffers.get(channel)
        if buf is None or buf.first is None:
            return None
        with self._lock:
            buf = self._buffers.get(channel)
            if buf is None or buf.first is None:
                return None
            return self._take(channel, buf)

    def _take_or_wait(self, channel: str, woken: Waiter | None) -> bytes | Waiter:
        """The next payload, or a new waiter to await (woken: the last one, back)."""
        with self._lock:
            if self._closed:
                raise ChannelLayerClosed("the channel layer was closed")
            buf = self._buffers.get(channel)
            if buf is None:
                buf = self._buffers[channel] = Buffer(channel)
            elif woken is not None:
                buf.woken = removed(buf.woken, woken)
            if buf.first is not None:
                payload = self._take(channel, buf)
                if payload is not None:
                    return payload
            waiter: Waiter = asyncio.get_running_loop().create_future()
            buf.waiters = pushed(buf.waiters, waiter)
            return waiter

    async def _get_prefix(self, inbox: str, on_wait: Callable[[], None] | None) -> bytes:
        while True:
            with self._lock:
                if self._closed:
                    raise ChannelLayerClosed("the channel layer was closed")
                payload = self._take_prefix(inbox)
                if payload is not None:
                    return payload
                waiter: Waiter = asyncio.get_running_loop().create_future()
                self._prefix_waiters.setdefault(inbox, []).append(waiter)
            try:
                if on_wait is not None:
                    on_wait()
                await waiter
            except BaseException:
                with self._lock:
                    queue = self._prefix_waiters.get(inbox)
                    if queue is not None:
                        if waiter in queue:
                            queue.remove(waiter)
                        if not queue:
                            del self._prefix_waiters[inbox]
                    self._rewake_prefix(inbox)
                raise

    def _drop_waiter(self, channel: str, waiter: Waiter) -> None:
        # A method of its own, lock and all: get()'s frame, which every idle receiver
        # holds, needs no room for a with statement.
        with self._lock:
            self._drop_waiter_locked(channel, waiter)

    def _drop_waiter_locked(self, channel: str, waiter: Waiter) -> None:
        buf = self._buffers.get(channel)
        if buf is None:
            return
        buf.woken = removed(buf.woken, waiter)
        buf.waiters = removed(buf.waiters, waiter)
        if buf.first is not None:
            if buf.waiters:
                buf.wake_first(_get_running_loop())
            elif buf.inbox is not None:
                self._rewake_prefix(buf.inbox)
        elif buf.idle():
            del self._buffers[channel]

    def _rewake_prefix(self, inbox: str) -> None:
        queue = self._prefix_waiters.get(inbox)
        if queue and self._index(inbox):
            wake_first_of(queue, _get_running_loop())

    def _index(self, inbox: str) -> set[str]:
        """The non-empty buffers of inbox's channels, indexed from now on."""
        names = self._inboxes.get(inbox)
        if names is None:
            names = self._inboxes[inbox] = {
                channel
                for channel, buf in self._buffers.items()
                if buf.inbox == inbox and buf.first is not None
            }
        return names

    def _take(self, channel: str, buf: Buffer) -> bytes | None:
        """The next live payload of a non-empty buffer, or None if all had expired."""
        entry = buf.first
        assert entry is not None
        if entry[1] <= self.clock():
            self._purge(channel, buf, self.clock())
            entry = buf.first
            if entry is None:
                return None
        buf.popleft()
        if buf.first is None:
            self._emptied(channel, buf)
        if entry[3] and self._on_remove is not None and buf.inbox is not None:
            self._on_remove(channel, 1)
        return entry[2]

    def _take_prefix(self, inbox: str) -> bytes | None:
        names = self._index(inbox)
        buffers = self._buffers
        while names:
            # Oldest head first, so one receiver of 'x!' sees arrival order.
            channel = min(names, key=lambda n: buffers[n].first[0])  # type: ignore[index]
            payload = self._take(channel, buffers[channel])
            if payload is not None:
                return payload
        return None

    def _purge(self, channel: str, buf: Buffer, now: float) -> None:
        dropped = counted = 0
        while buf.first is not None and buf.first[1] <= now:
            counted += buf.popleft()[3]
            dropped += 1
        if dropped:
            self.counters.dropped_expired += dropped
            if buf.first is None:
                self._emptied(channel, buf)
            if counted and self._on_remove is not None and buf.inbox is not None:
                self._on_remove(channel, counted)

    def _emptied(self, channel: str, buf: Buffer) -> None:
        # The buffer itself (a few slots) stays until sweep(): a busy channel empties
        # after nearly every message, and its receiver comes straight back to it.
        if buf.inbox is not None:
            names = self._inboxes.get(buf.inbox)
            if names is not None:
                names.discard(channel)

    # -- housekeeping -------------------------------------------------------------

    def maybe_sweep(self) -> bool:
        """Sweep if sweep_interval has passed since the last sweep; True if it did."""
        now = self.clock()
        if now < self._next_sweep:
            return False
        self._next_sweep = now + self.sweep_interval
        self.sweep()
        return True

    def sweep(self) -> None:
        """Drop expired payloads everywhere and forget empty, unwatched buffers."""
        with self._lock:
            now = self.clock()
            for channel, buf in list(self._buffers.items()):
                self._purge(channel, buf, now)
                if buf.idle():
                    del self._buffers[channel]
            for inbox in [i for i in self._inboxes if i not in self._prefix_waiters]:
                del self._inboxes[inbox]

    def clear(self) -> int:
        """Drop every queued payload, keep waiters waiting; return how many were dropped."""
        with self._lock:
            dropped = 0
            kept: dict[str, Buffer] = {}
            for channel, buf in self._buffers.items():
                dropped += len(buf)
                if self._on_remove is not None and buf.inbox is not None:
                    counted = sum(entry[3] for entry in buf.entries())
                    if counted:
                        self._on_remove(channel, counted)
                if buf.waiters or buf.woken:
                    buf.first = buf.rest = None
                    kept[channel] = buf
            self._buffers = kept
            for names in self._inboxes.values():
                names.clear()
            self.counters.flushed += dropped
            return dropped

    def close(self) -> None:
        """Wake every waiter so it raises ChannelLayerClosed, and drop all buffers."""
        with self._lock:
            self._closed = True
            running = _get_running_loop()
            for buf in self._buffers.values():
                while buf.waiters:
                    buf.wake_first(running)
            for queue in self._prefix_waiters.values():
                while queue:
                    wake_first_of(queue, running)
            self._buffers.clear()
            self._inboxes.clear()
            self._prefix_waiters.clear()

    def waiting(self, channel: str) -> int:
        """How many receivers wait on exactly this channel, in every loop."""
        buf = self._buffers.get(channel)
        return len(listed(buf.waiters)) if buf is not None else 0

    def drain_unwatched(self, channel: str) -> list[tuple[float, bytes]]:
        """Take every queued (deadline, payload) of channel if nobody waits for it."""
        with self._lock:
            buf = self._buffers.get(channel)
            if buf is None or buf.first is None or buf.watched():
                return []
            taken = [(deadline, payload) for _, deadline, payload, _ in buf.entries()]
            buf.first = buf.rest = None
            self._emptied(channel, buf)
            return taken

    def depths(self, watched: bool = False) -> dict[str, int]:
        """Queued payloads per channel that has any (expired ones not yet swept count);
        watched: also channels a receiver waits on, with what they hold (maybe 0)."""
        with self._lock:
            return {
                c: len(b) for c, b in self._buffers.items() if len(b) or (watched and b.waiters)
            }

    def snapshot(self) -> dict[str, int]:
        """Sizes for stats(): buffered channels, queued payloads, waiting receivers."""
        with self._lock:
            buffers = self._buffers.values()
            return {
                "channels": sum(1 for b in buffers if b.first is not None or b.waiters),
                "queued": sum(len(b) for b in buffers),
                "waiting": sum(len(listed(b.waiters)) for b in buffers)
                + sum(len(q) for q in self._prefix_waiters.values()),
            }

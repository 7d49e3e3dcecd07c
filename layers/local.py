"""Process-side fan-out: per-channel buffers that receive() awaits.

A backend puts payloads in (from its transport reader, or directly for in-memory);
receivers take them out. A waiter is woken, then takes: it never holds a message
while suspended, so cancelling a receive cannot lose one. Buffers are shared by
every event loop and thread that uses the layer; a waiter in another loop is
woken through that loop's call_soon_threadsafe.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from .exceptions import ChannelLayerClosed
from .naming import non_local_name

__all__ = ["Counters", "LocalChannels"]

Clock = Callable[[], float]


@dataclass
class Counters:
    """What happened to messages in this process, for stats()."""

    sent: int = 0
    received: int = 0
    group_sends: int = 0
    dropped_full: int = 0
    dropped_expired: int = 0
    dropped_undecodable: int = 0
    flushed: int = 0
    requeue_failed: int = 0

    def as_dict(self) -> dict[str, int]:
        """The counters as a plain dict."""
        return dict(self.__dict__)


class _Waiter:
    __slots__ = ("future", "loop", "thread")

    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.future: asyncio.Future[None] = self.loop.create_future()
        self.thread = threading.get_ident()


class _Buffer:
    __slots__ = ("inbox", "items", "waiters", "woken")

    def __init__(self, channel: str) -> None:
        # (sequence number, deadline, payload); the sequence orders prefix receives.
        self.items: deque[tuple[int, float, bytes]] = deque()
        self.waiters: deque[_Waiter] = deque()
        # Woken, but not yet back to take (a waiter of another loop): they still count
        # as watching, or drain_unwatched would take the message meant for them.
        self.woken: set[_Waiter] = set()
        self.inbox = non_local_name(channel) if "!" in channel else None


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
        self._buffers: dict[str, _Buffer] = {}
        # Non-local part ("x!") -> names of its non-empty buffers, for receive("x!").
        self._inboxes: dict[str, set[str]] = {}
        self._prefix_waiters: dict[str, deque[_Waiter]] = {}
        self._seq = itertools.count()
        self._lock = threading.Lock()
        self._closed = False

    # -- putting -------------------------------------------------------------

    def put(self, channel: str, payload: bytes, deadline: float, capacity: int) -> bool:
        """Queue payload for channel; False (and nothing queued) if the channel is full."""
        with self._lock:
            buf = self._buffers.get(channel)
            if buf is None:
                buf = self._buffers[channel] = _Buffer(channel)
            elif len(buf.items) >= capacity:
                self._purge(channel, buf, self.clock())
                if len(buf.items) >= capacity:
                    return False
            items = buf.items
            items.append((next(self._seq), deadline, payload))
            inbox = buf.inbox
            if inbox is not None and len(items) == 1:
                names = self._inboxes.get(inbox)
                if names is None:
                    names = self._inboxes[inbox] = set()
                names.add(channel)
            if buf.waiters:
                self._wake(buf.waiters, buf.woken)
            elif inbox is not None and inbox in self._prefix_waiters:
                self._wake(self._prefix_waiters[inbox])
            return True

    # -- taking ----------------------------------------------------------------

    async def get(self, channel: str, on_wait: Callable[[], None] | None = None) -> bytes:
        """Wait for the next live payload on channel (or any 'x!*' channel for 'x!').

        on_wait runs each time this receiver is about to wait: a backend uses it to
        make sure something is fetching from its transport for this channel.
        """
        prefix = channel.endswith("!")
        woken: _Waiter | None = None
        while True:
            with self._lock:
                if woken is not None and not prefix:
                    self._back_from_wake(channel, woken)
                if self._closed:
                    raise ChannelLayerClosed("the channel layer was closed")
                payload = self._take_prefix(channel) if prefix else self._take(channel)
                if payload is not None:
                    return payload
                waiter = _Waiter()
                queue = self._waiters_for(channel, prefix)
                queue.append(waiter)
            try:
                if on_wait is not None:
                    on_wait()
                await waiter.future
            except BaseException:
                # Cancelled, perhaps just after being woken: leave no waiter behind and
                # pass any wake-up on, so no message is stranded.
                with self._lock:
                    self._drop_waiter(channel, prefix, waiter)
                raise
            # Woken: _wake already removed us from the queue; go round and take.
            woken = waiter

    def _waiters_for(self, channel: str, prefix: bool) -> deque[_Waiter]:
        if prefix:
            return self._prefix_waiters.setdefault(channel, deque())
        buf = self._buffers.get(channel)
        if buf is None:
            buf = self._buffers[channel] = _Buffer(channel)
        return buf.waiters

    def _drop_waiter(self, channel: str, prefix: bool, waiter: _Waiter) -> None:
        if prefix:
            queue = self._prefix_waiters.get(channel)
            if queue is not None:
                if waiter in queue:
                    queue.remove(waiter)
                if not queue:
                    del self._prefix_waiters[channel]
            self._rewake_prefix(channel)
            return
        buf = self._buffers.get(channel)
        if buf is None:
            return
        buf.woken.discard(waiter)
        if waiter in buf.waiters:
            buf.waiters.remove(waiter)
        if buf.items:
            if buf.waiters:
                self._wake(buf.waiters, buf.woken)
            elif buf.inbox is not None:
                self._rewake_prefix(buf.inbox)
        elif not buf.waiters:
            del self._buffers[channel]

    def _rewake_prefix(self, inbox: str) -> None:
        queue = self._prefix_waiters.get(inbox)
        if queue and self._inboxes.get(inbox):
            self._wake(queue)

    def _take(self, channel: str) -> bytes | None:
        buf = self._buffers.get(channel)
        if buf is None:
            return None
        self._purge(channel, buf, self.clock())
        if not buf.items:
            return None
        payload = buf.items.popleft()[2]
        if not buf.items:
            self._emptied(channel, buf)
        if self._on_remove is not None and buf.inbox is not None:
            self._on_remove(channel, 1)
        return payload

    def _take_prefix(self, inbox: str) -> bytes | None:
        names = self._inboxes.get(inbox)
        while names:
            # Oldest head first, so one receiver of 'x!' sees arrival order.
            channel = min(names, key=lambda n: self._buffers[n].items[0][0])
            payload = self._take(channel)
            if payload is not None:
                return payload
            names = self._inboxes.get(inbox)
        return None

    def _purge(self, channel: str, buf: _Buffer, now: float) -> None:
        items = buf.items
        dropped = 0
        while items and items[0][1] <= now:
            items.popleft()
            dropped += 1
        if dropped:
            self.counters.dropped_expired += dropped
            if not items:
                self._emptied(channel, buf)
            if self._on_remove is not None and buf.inbox is not None:
                self._on_remove(channel, dropped)

    def _emptied(self, channel: str, buf: _Buffer) -> None:
        # The buffer itself stays until sweep(): a busy channel empties after nearly
        # every message, and rebuilding it each time is the hot path's largest cost.
        if buf.inbox is not None:
            names = self._inboxes.get(buf.inbox)
            if names is not None:
                names.discard(channel)
                if not names:
                    del self._inboxes[buf.inbox]

    # -- waking ----------------------------------------------------------------

    def _wake(self, queue: deque[_Waiter], woken: set[_Waiter] | None = None) -> None:
        """Wake the first waiter of queue that can still take (lock held); a channel's
        buffer passes its woken set, which holds the waiter until it is back."""
        me = threading.get_ident()
        while queue:
            waiter = queue.popleft()
            if waiter.future.done():
                continue
            if waiter.thread == me:
                waiter.future.set_result(None)
            else:
                try:
                    waiter.loop.call_soon_threadsafe(self._wake_remote, waiter)
                except RuntimeError:  # that loop is closed; its waiter is gone
                    continue
            if woken is not None:
                woken.add(waiter)
            return

    def _back_from_wake(self, channel: str, waiter: _Waiter) -> None:
        buf = self._buffers.get(channel)
        if buf is not None:
            buf.woken.discard(waiter)

    @staticmethod
    def _wake_remote(waiter: _Waiter) -> None:
        # Runs in the waiter's loop. If it was cancelled meanwhile, its finally
        # clause has already passed the wake-up on.
        if not waiter.future.done():
            waiter.future.set_result(None)

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
                if not buf.items and not buf.waiters:
                    del self._buffers[channel]

    def clear(self) -> int:
        """Drop every queued payload, keep waiters waiting; return how many were dropped."""
        with self._lock:
            dropped = sum(len(b.items) for b in self._buffers.values())
            if self._on_remove is not None:
                for channel, buf in self._buffers.items():
                    if buf.items and buf.inbox is not None:
                        self._on_remove(channel, len(buf.items))
            kept = {c: b for c, b in self._buffers.items() if b.waiters}
            for buf in kept.values():
                buf.items.clear()
            self._buffers = kept
            self._inboxes.clear()
            self.counters.flushed += dropped
            return dropped

    def close(self) -> None:
        """Wake every waiter so it raises ChannelLayerClosed, and drop all buffers."""
        with self._lock:
            self._closed = True
            queues = [b.waiters for b in self._buffers.values()]
            queues.extend(self._prefix_waiters.values())
            for queue in queues:
                while queue:
                    self._wake(queue)
            self._buffers.clear()
            self._inboxes.clear()
            self._prefix_waiters.clear()

    def waiting(self, channel: str) -> int:
        """How many receivers wait on exactly this channel, in every loop."""
        buf = self._buffers.get(channel)
        return len(buf.waiters) if buf is not None else 0

    def drain_unwatched(self, channel: str) -> list[tuple[float, bytes]]:
        """Take every queued (deadline, payload) of channel if nobody waits for it."""
        with self._lock:
            buf = self._buffers.get(channel)
            if buf is None or buf.waiters or not buf.items:
                return []
            if any(not waiter.loop.is_closed() for waiter in buf.woken):
                return []
            taken = [(deadline, payload) for _, deadline, payload in buf.items]
            buf.items.clear()
            self._emptied(channel, buf)
            return taken

    def snapshot(self) -> dict[str, int]:
        """Sizes for stats(): buffered channels, queued payloads, waiting receivers."""
        with self._lock:
            return {
                "channels": sum(1 for b in self._buffers.values() if b.items or b.waiters),
                "queued": sum(len(b.items) for b in self._buffers.values()),
                "waiting": sum(len(b.waiters) for b in self._buffers.values())
                + sum(len(q) for q in self._prefix_waiters.values()),
            }

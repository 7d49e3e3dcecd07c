"""The process inbox: one transport queue per layer and prefix carries every message for
that layer's process-local channels; its owner fans each entry out into LocalChannels.

Backends with a shared store (IPC, Redis) use this: the entry format, the depth-count
acks, the reader tasks and the fan-out are written here once.

An entry is ``<parts>\n<header><payload>``: the local parts it is for (``a``, or
``a,b,c`` for a group message; a channel is the inbox name plus the part), a newline,
a header, then the payload. A store may put its own fields in front (Redis: the expiry,
13 digits of Unix ms); its scripts read the parts, never what follows the newline.
A ``*`` before the parts marks a group delivery that the store did not count against
the channels' capacity (``*a,b,c``): the owner caps each channel's buffer at its
capacity for it instead, drops and counts (``dropped_full``) what does not fit, and
releases no depth count when it leaves (issue 14: a channel can hold its capacity of
direct messages plus its capacity of group messages).

The header is a version byte (1) and a flags byte. Flags are reserved for optional
fields that later versions may carry between the header and the payload (figures such
as the send time, issue 18; an encrypted message's destination travels inside its
ciphertext instead, see binding.py). A reader drops and counts an entry whose version
or flags it does not know, so an entry of a later format is never misread; an upgrade
across a format change needs a flush. An entry naming more than MAX_ENTRY_CHANNELS
channels is dropped and counted likewise.

Depth counts: the store counts each local channel's undelivered direct messages for
capacity; they are released as messages leave the owner's buffers (taken, expired,
flushed), in batches (Acks). A group delivery it did not count is marked so in the
buffers (LocalChannels.put_many counted=False), and its leaving releases nothing.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Iterable
from functools import partial
from typing import Any

from .counters import Counters
from .local import UNBOUNDED, Capacity, LocalChannels
from .loops import LoopTasks
from .naming import LOCAL_PARTS

__all__ = [
    "HEADER",
    "MAX_ENTRY_CHANNELS",
    "Acks",
    "Fanout",
    "ProcessInbox",
    "Readers",
    "pack_entry",
]

log = logging.getLogger("layers")
_NAMES_CACHE_SIZE = 256


MAX_ENTRY_CHANNELS = 65536
"""The most local channels one entry may name: a group message names every member
the process holds, and no process serves more members of one group than this. An
entry naming more was forged (anyone with write access to the store can write one):
it is dropped and counted before a buffer is made for any of them."""

ENTRY_VERSION = 1
HEADER = bytes([ENTRY_VERSION, 0])
"""What follows an entry's newline, before the payload (version 1, no flags)."""


def pack_entry(parts: Iterable[str], payload: bytes, counted: bool = True) -> bytes:
    """An inbox entry for the local parts of one inbox (counted=False: a group
    delivery the store did not count, marked ``*``)."""
    mark = b"" if counted else b"*"
    return mark + ",".join(parts).encode() + b"\n" + HEADER + payload


class Fanout:
    """Puts inbox entries into the local buffers of the channels each one names."""

    def __init__(self, local: LocalChannels, counters: Counters, capacity: Capacity) -> None:
        self._local = local
        self._counters = counters
        self._capacity = capacity
        # (inbox, parts) -> channel names: a group's entries name the same ones again.
        self._names: dict[tuple[str, bytes], list[str]] = {}

    def deliver(
        self, inbox: str, entry: bytes, deadline: float, start: int = 0, where: str = ""
    ) -> bool:
        """Deliver entry[start:] (parts, newline, payload) of inbox; False if malformed."""
        newline = entry.find(b"\n", start)
        if newline < 0 or entry[newline + 1 : newline + 3] != HEADER:
            # Not written by a layer, or by one of a format this one does not know.
            return self._malformed(where or inbox, entry)
        uncounted = entry[start : start + 1] == b"*"
        parts = entry[start + uncounted : newline]
        channels = self._names.get((inbox, parts))
        if channels is None:
            # Not written by a layer: no such names, or more of them than any group has.
            if parts.count(b",") >= MAX_ENTRY_CHANNELS or not LOCAL_PARTS.fullmatch(parts):
                return self._malformed(where or inbox, entry)
            channels = self._channels(inbox, parts)
        payload = entry[newline + 3 :]
        if uncounted:
            full = self.deliver_uncounted(channels, payload, deadline)
            if full:
                self._counters.dropped_full += full
        elif len(channels) == 1:
            self._local.put(channels[0], payload, deadline, UNBOUNDED)
        else:
            self._local.put_many(channels, payload, deadline, UNBOUNDED)
        return True

    def deliver_uncounted(self, channels: list[str], payload: bytes, deadline: float) -> int:
        """Put a group message the store did not count into channels' buffers, each
        capped at its capacity; return how many were full (they got nothing)."""
        return len(self._local.put_many(channels, payload, deadline, self._capacity, False))

    def _channels(self, inbox: str, parts: bytes) -> list[str]:
        names = [inbox + part for part in parts.decode("ascii").split(",")]
        # Kept for as long as the group sends: the names the buffers already hold.
        channels = self._local.known(names)
        if len(self._names) >= _NAMES_CACHE_SIZE:
            self._names.clear()
        self._names[inbox, parts] = channels
        return channels

    def _malformed(self, where: str, entry: bytes) -> bool:
        self._counters.dropped_undecodable += 1
        log.warning("dropped a malformed entry of %s: %r", where, entry[:40])
        return False


class Acks:
    """Depth counts to release per inbox, as local messages leave the buffers.

    A negative count reserves depth instead (a message put straight into one of the
    layer's own channels' buffers, which the store never saw). on_pending(inbox) runs,
    outside the lock, whenever an inbox's counts go from none to some: the owner then
    sets up their release, and takes them with take() or take_all().
    """

    def __init__(self, on_pending: Callable[[str], None]) -> None:
        self._pending: dict[str, dict[str, int]] = {}
        self._on_pending = on_pending
        self._lock = threading.Lock()

    def add(self, channel: str, count: int) -> None:
        """Note that count messages of channel left the buffers."""
        with self._lock:
            inbox, part = self._split_of(channel)
            new = self._add_locked(inbox, part, count)
        if new:
            self._on_pending(inbox)

    def add_each(self, channels: list[str], count: int) -> None:
        """add(channel, count) for each of channels, under one lock."""
        split = self._split_of
        with self._lock:
            new = {
                inbox
                for inbox, part in map(split, channels)
                if self._add_locked(inbox, part, count)
            }
        for inbox in new:
            self._on_pending(inbox)

    @staticmethod
    def _split_of(channel: str) -> tuple[str, str]:
        # Not cached: a cache of every channel's halves cost more memory per idle
        # receiver than splitting costs time per message.
        bang = channel.find("!") + 1
        return channel[:bang], channel[bang:]

    def _add_locked(self, inbox: str, part: str, count: int) -> bool:
        """Add count for part; True if inbox had nothing pending."""
        parts = self._pending.get(inbox)
        if parts is not None:
            parts[part] = parts.get(part, 0) + count
            return False
        self._pending[inbox] = {part: count}
        return True

    def pending(self, inbox: str) -> bool:
        """True if inbox has counts waiting for release."""
        return inbox in self._pending

    def take(self, inbox: str) -> dict[str, int] | None:
        """Everything pending for inbox, part -> count, that does not cancel out; or None."""
        with self._lock:
            parts = self._pending.pop(inbox, None)
        if parts is None:
            return None
        # A message delivered in-process and received before the next release nets 0.
        return {part: n for part, n in parts.items() if n} or None

    def take_all(self) -> dict[str, int]:
        """Everything pending, channel -> count (the caller releases it or gives it back)."""
        with self._lock:
            pending, self._pending = self._pending, {}
        return {
            inbox + part: n for inbox, parts in pending.items() for part, n in parts.items() if n
        }

    def give_back(self, inbox: str, parts: dict[str, int]) -> None:
        """Re-queue counts of inbox (part -> count) that could not be released."""
        with self._lock:
            new = inbox not in self._pending
            pending = self._pending.setdefault(inbox, {})
            for part, count in parts.items():
                pending[part] = pending.get(part, 0) + count
        if new:
            self._on_pending(inbox)

    def give_back_all(self, counts: dict[str, int]) -> None:
        """Re-queue counts (channel -> count) that take_all() gave and were not released."""
        split = self._split_of
        with self._lock:
            new = {
                inbox
                for channel, n in counts.items()
                for inbox, part in [split(channel)]
                if self._add_locked(inbox, part, n)
            }
        for inbox in new:
            self._on_pending(inbox)


class Readers:
    """The background tasks that read each inbox: one set per inbox, in the loop that
    started them, started again when they ended or their loop closed."""

    def __init__(self) -> None:
        self._tasks = LoopTasks()

    def running(self, inbox: str) -> bool:
        """True if inbox's tasks run (in some loop that is still open)."""
        return self._tasks.alive((inbox, 0))

    def ensure(
        self,
        inbox: str,
        start: Callable[[asyncio.AbstractEventLoop], tuple[asyncio.Task[None], ...]],
    ) -> None:
        """Start inbox's tasks in the running loop with start(loop), unless they run."""
        if not self.running(inbox):
            for i, task in enumerate(start(asyncio.get_running_loop())):
                self._tasks.adopt((inbox, i), task)

    def cancel(self) -> list[asyncio.Task[Any]]:
        """Cancel every task; return those of the running loop, for the caller to await."""
        return self._tasks.cancel_all()


StartReader = Callable[[str, asyncio.AbstractEventLoop], tuple[asyncio.Task[None], ...]]
"""(inbox, loop) -> the tasks that read inbox, started in loop."""


class ProcessInbox:
    """A layer's process inboxes: the local buffers they feed, the depth counts to
    release, the reader tasks and the fan-out of entries into the buffers."""

    def __init__(
        self,
        counters: Counters,
        sweep_interval: float,
        on_pending: Callable[[str], None],
        start_reader: StartReader,
        check_open: Callable[[], None],
        capacity: Capacity = UNBOUNDED,
    ) -> None:
        self.acks = Acks(on_pending)
        self.local = LocalChannels(counters, sweep_interval=sweep_interval, on_remove=self.acks.add)
        self.fanout = Fanout(self.local, counters, capacity)
        self.readers = Readers()
        self._start_reader = start_reader
        self._check_open = check_open
        self._hooks: dict[str, Callable[[], None]] = {}

    def ensure_reader(self, inbox: str) -> None:
        """Start inbox's reader tasks in the running loop unless they run somewhere."""
        if not self.readers.running(inbox):
            self._check_open()
            self.readers.ensure(inbox, partial(self._start_reader, inbox))

    def reader_hook(self, inbox: str) -> Callable[[], None]:
        """ensure_reader(inbox) as a receiver's on_wait: one per inbox, shared by all
        its receivers, so an idle receiver holds none of its own."""
        hook = self._hooks.get(inbox)
        if hook is None:
            hook = self._hooks[inbox] = partial(self.ensure_reader, inbox)
        return hook

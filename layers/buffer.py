"""The per-channel buffer of LocalChannels, and waking its waiters in any loop.

Most channels hold nothing and one waiting receiver, so a buffer keeps its first
entry, its waiters and its woken waiters in plain slots and makes a container only
for a second one. Everything here runs with LocalChannels' lock held.
"""

from __future__ import annotations

import asyncio
import sys
from collections import deque

from .naming import non_local_name

__all__ = [
    "Buffer",
    "Entry",
    "Waiter",
    "Waiters",
    "inbox_of",
    "listed",
    "pushed",
    "removed",
    "wake",
    "wake_first_of",
]

Entry = tuple[int, float, bytes, bool]
"""(sequence number, deadline, payload, counted): counted if the store holds a depth
count for it, which its leaving releases (a group delivery it did not count: False)."""
Waiter = asyncio.Future[None]


Waiters = Waiter | list[Waiter] | None
"""No waiter, one, or a list of several (oldest first): a single one costs no list."""


def pushed(waiters: Waiters, waiter: Waiter) -> Waiters:
    if waiters is None:
        return waiter
    if isinstance(waiters, list):
        waiters.append(waiter)
        return waiters
    return [waiters, waiter]


def removed(waiters: Waiters, waiter: Waiter) -> Waiters:
    if waiters is waiter:
        return None
    if isinstance(waiters, list) and waiter in waiters:
        waiters.remove(waiter)
    return waiters


def listed(waiters: Waiters) -> list[Waiter]:
    if waiters is None:
        return []
    return waiters if isinstance(waiters, list) else [waiters]


class Buffer:
    # The queue is first + rest: rest exists only while two or more entries wait.
    __slots__ = ("first", "inbox", "name", "rest", "waiters", "woken")

    def __init__(self, name: str) -> None:
        # The channel's name, for a reader that parses it again from an inbox entry to
        # use this copy instead of holding a second one.
        self.name = name
        self.first: Entry | None = None
        self.rest: deque[Entry] | None = None
        # Waiting receivers; a list once made is kept, so that receivers waiting again
        # and again allocate nothing.
        self.waiters: Waiters = None
        # Woken, but not yet back to take: they still count as watching, or
        # drain_unwatched would take the message meant for them.
        self.woken: Waiters = None
        self.inbox = inbox_of(name)

    def __len__(self) -> int:
        if self.first is None:
            return 0
        return 1 + len(self.rest) if self.rest else 1

    def entries(self) -> list[Entry]:
        """Every queued entry, oldest first."""
        if self.first is None:
            return []
        return [self.first, *self.rest] if self.rest else [self.first]

    def popleft(self) -> Entry:
        entry = self.first
        assert entry is not None
        rest = self.rest
        if rest:
            self.first = rest.popleft()
            if not rest:
                self.rest = None
        else:
            self.first = None
        return entry

    def add(self, entry: Entry, limit: int) -> bool:
        """Queue entry if it fits under limit for sure; False (nothing queued) if the
        buffer may be full, for the caller to purge expired entries and decide."""
        rest = self.rest
        if self.first is None:
            self.first = entry  # every capacity is at least 1
        elif rest is not None and len(rest) + 1 < limit:
            rest.append(entry)
        elif rest is None and limit > 1:
            self.rest = deque((entry,))
        else:
            return False
        return True

    def wake_first(self, running: asyncio.AbstractEventLoop | None) -> None:
        """Wake the oldest waiter that can still take; it counts as woken until back."""
        waiters = self.waiters
        # The common case first: one waiter, none woken, in this loop (no call_soon).
        if (
            self.woken is None
            and isinstance(waiters, asyncio.Future)
            and waiters.get_loop() is running
            and not waiters.done()
        ):
            waiters.set_result(None)
            self.waiters, self.woken = None, waiters
            return
        if isinstance(waiters, list):
            waiter = wake_first_of(waiters, running)
        else:
            self.waiters = None
            waiter = waiters if waiters is not None and wake(waiters, running) else None
        if waiter is not None:
            self.woken = pushed(self.woken, waiter)

    def watched(self) -> bool:
        """True if a receiver waits here or was woken and will be back (its loop lives)."""
        return bool(self.waiters) or any(not w.get_loop().is_closed() for w in listed(self.woken))

    def idle(self) -> bool:
        """True if nothing is queued and no receiver waits or is woken."""
        return self.first is None and not self.waiters and not self.woken


def wake(waiter: Waiter, running: asyncio.AbstractEventLoop | None) -> bool:
    """Wake waiter (lock held); False if it is gone (cancelled, or its loop closed)."""
    if waiter.done():
        return False
    loop = waiter.get_loop()
    if loop is running:
        waiter.set_result(None)
        return True
    try:
        loop.call_soon_threadsafe(_wake_remote, waiter)
    except RuntimeError:  # that loop is closed; its waiter is gone
        return False
    return True


def _wake_remote(waiter: Waiter) -> None:
    # Runs in the waiter's loop. If it was cancelled meanwhile, its except clause has
    # already passed the wake-up on.
    if not waiter.done():
        waiter.set_result(None)


def wake_first_of(queue: list[Waiter], running: asyncio.AbstractEventLoop | None) -> Waiter | None:
    """Wake the first waiter of queue that can still take, and return it."""
    while queue:
        waiter = queue.pop(0)
        if wake(waiter, running):
            return waiter
    return None


def inbox_of(channel: str) -> str | None:
    # Interned: the thousands of channels of one inbox share one copy of its name.
    return sys.intern(non_local_name(channel)) if "!" in channel else None

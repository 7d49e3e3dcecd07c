"""This layer's process inboxes in Redis: the shared ProcessInbox plus what Redis adds.

An inbox has one reader, this process, so the head that its reader's blocking wait
returns is delivered at once, a round trip before the pop that removes it: ``heads``
remembers it until a pop has removed it, so a reader that dies in between never
delivers it twice. Acks ride along with the reader's next pop while it pops; a flusher
task per inbox releases the rest once the reader blocks.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable

from ..counters import Counters
from ..inbox import ProcessInbox, StartReader
from ..local import Capacity

__all__ = ["RedisInbox"]


class RedisInbox(ProcessInbox):
    """Readers, pending acks and delivered heads of the layer's inboxes."""

    def __init__(
        self,
        counters: Counters,
        sweep_interval: float,
        start_reader: StartReader,
        check_open: Callable[[], None],
        capacity: Capacity,
    ) -> None:
        super().__init__(
            counters, sweep_interval, self._wake_flusher, start_reader, check_open, capacity
        )
        # Inbox -> the head its reader delivered before popping it.
        self.heads: dict[str, bytes] = {}
        self._flushers: dict[str, Callable[[], None]] = {}
        self._reading: set[str] = set()

    def _wake_flusher(self, inbox: str) -> None:
        wake = self._flushers.get(inbox)
        if wake is not None:
            wake()

    def set_flusher(self, inbox: str, event: asyncio.Event) -> None:
        """Set event (from any thread) whenever acks for inbox become pending."""
        loop, thread = asyncio.get_running_loop(), threading.get_ident()

        def wake() -> None:
            if threading.get_ident() == thread:
                event.set()
            elif not loop.is_closed():
                loop.call_soon_threadsafe(event.set)

        self._flushers[inbox] = wake

    def reading(self, inbox: str, busy: bool) -> None:
        """Note whether inbox's reader is about to pop (and so take pending acks itself)
        or to block; wake the flusher for what is pending when it stops popping."""
        if busy:
            self._reading.add(inbox)
            return
        self._reading.discard(inbox)
        if self.acks.pending(inbox):
            self._wake_flusher(inbox)

    def is_reading(self, inbox: str) -> bool:
        """True while inbox's reader pops: its next pop releases what is pending."""
        return inbox in self._reading

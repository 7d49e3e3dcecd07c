"""The inbox consumer's acks, coalesced: one ack (multiple) for a run of deliveries.

Each ack is a frame written by this process and an ack handled by the broker, per
message: at G=100 a group_send's own delivery costs one, as much as a tenth of the
send. A delivery is still acked only once it is buffered or counted (inbox.py); its ack
just waits until `every` deliveries are due or `delay` seconds have passed, then one
ack with multiple=True covers them all.

A connection lost meanwhile makes the broker redeliver the unacked ones, to this inbox:
it remembers the ids of the last prefetch_count deliveries (recent.py), and the broker
never has more than that unacked, so none is delivered twice.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

from aio_pika.abc import AbstractIncomingMessage

from .connections import quietly

__all__ = ["DELAY", "Acks"]

DELAY = 0.005
"""Seconds a delivery waits at most for its ack."""

Spawn = Callable[[Coroutine[Any, Any, Any]], object]


class Acks:
    """Acks due on one consumer channel, written together."""

    def __init__(self, every: int, spawn: Spawn, delay: float = DELAY) -> None:
        self.every = max(1, every)
        self.delay = delay
        self._spawn = spawn
        self._last: AbstractIncomingMessage | None = None
        self._due = 0
        self._timer: asyncio.TimerHandle | None = None

    def renewed(self) -> Acks:
        """A new Acks like this one, with nothing due."""
        return Acks(self.every, self._spawn, self.delay)

    @property
    def due(self) -> int:
        """Deliveries not acked yet."""
        return self._due

    def later(self, message: AbstractIncomingMessage) -> None:
        """Ack message (and every delivery before it on its channel) soon."""
        if self._last is not None and self._last.channel is not message.channel:
            self.flush()  # a delivery tag means something only on its own channel
        self._last = message
        self._due += 1
        if self._due >= self.every:
            self.flush()
        elif self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self.delay, self.flush)

    def flush(self) -> None:
        """Write the ack of every due delivery now (in the background)."""
        last = self._take()
        if last is not None:
            self._spawn(quietly(last.ack(multiple=True)))

    async def settle(self) -> None:
        """Write the ack of every due delivery, and wait for it to be written."""
        last = self._take()
        if last is not None:
            await quietly(last.ack(multiple=True))

    def forget(self) -> None:
        """Drop the due acks: their channel is going, and the broker requeues them."""
        self._take()

    def _take(self) -> AbstractIncomingMessage | None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        last, self._last, self._due = self._last, None, 0
        return last

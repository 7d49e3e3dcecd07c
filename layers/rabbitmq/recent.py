"""The ids of the messages delivered lately, to recognise the broker's redelivery of one.

AMQP acks are not confirmed: an ack written just before a connection dies may never
reach the broker, which then redelivers the message (flagged ``redelivered``). The broker
keeps at most prefetch_count deliveries unacked per channel, so such a redelivery is
always one of the last prefetch_count messages delivered on it. Message ids are unique
across processes (layers/rabbitmq/connections.py).
"""

from __future__ import annotations

from collections import OrderedDict

from aio_pika.abc import AbstractIncomingMessage

__all__ = ["RecentIds"]


class RecentIds:
    """The last `size` message ids added, oldest forgotten first."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._ids: OrderedDict[str, None] = OrderedDict()

    def add(self, message: AbstractIncomingMessage) -> None:
        """Remember message's id (if it has one)."""
        key = message.message_id
        if key is None:
            return
        self._ids[key] = None
        if len(self._ids) > self.size:
            self._ids.popitem(last=False)

    def repeats(self, message: AbstractIncomingMessage) -> bool:
        """True if message is the broker's redelivery of one added here."""
        return bool(message.redelivered) and message.message_id in self._ids

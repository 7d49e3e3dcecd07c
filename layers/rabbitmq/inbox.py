"""A layer instance's inbox: one queue for all its process-local channels.

One consumer per layer (in whichever event loop first needs it, moved when that loop
closes) puts each message into the LocalChannels buffers and only then acks it, so a
message taken off the broker is always either buffered or counted as dropped.

How the process knows its local members of a group: a membership table here (group ->
channel -> until). group_add of one of our own channels writes it directly; group_add
of another process's channel publishes a control message on that process's inbox
*before* binding its queue to the group, so the control message is queued ahead of any
group message that binding lets in. A group message is then fanned out to the live
members of the table; one for a group with none left unbinds the inbox from it.

Per-channel capacity of process-local channels is checked here, at the receiver, and a
message for a full channel is dropped and counted as dropped_full in this process (a
sender in another process cannot be told; see layers/rabbitmq/__init__.py).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from typing import TYPE_CHECKING, Any, TypeGuard

from aio_pika.abc import AbstractIncomingMessage, AbstractQueue, AbstractRobustChannel

from ..exceptions import InvalidChannelName
from ..naming import check_channel
from . import wire
from .connections import Link
from .recent import RecentIds

if TYPE_CHECKING:
    from .layer import RabbitMQChannelLayer

__all__ = ["Inbox"]

log = logging.getLogger("layers.rabbitmq")


class Inbox:
    """The inbox queue of one layer instance, its consumer and its group memberships."""

    def __init__(self, layer: RabbitMQChannelLayer) -> None:
        self.layer = layer
        self.queue_name = layer.topology.inbox_queue(layer.client_id)
        # group -> local channel -> membership end (wall-clock seconds)
        self._members: dict[str, dict[str, float]] = {}
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._channel: AbstractRobustChannel | None = None
        self._queue: AbstractQueue | None = None
        self._starting: asyncio.Task[None] | None = None
        self.declared = False
        # To drop the broker's redelivery of a message whose ack was lost with a connection.
        self._seen = RecentIds(layer.prefetch_count)

    # -- memberships ---------------------------------------------------------------

    def add(self, group: str, channel: str, until: float) -> bool:
        """Add or renew a member; True if the group had no live member before."""
        now = time.time()
        with self._lock:
            members = self._members.setdefault(group, {})
            fresh = not any(end > now for end in members.values())
            members[channel] = until
            return fresh

    def discard(self, group: str, channel: str) -> bool:
        """Remove a member; True if the group now has no live member."""
        now = time.time()
        with self._lock:
            members = self._members.get(group)
            if members is None:
                return False
            members.pop(channel, None)
            if any(end > now for end in members.values()):
                return False
            del self._members[group]
            return True

    def live(self, group: str) -> list[str] | None:
        """The live local members of group (expired ones are forgotten); None if none."""
        now = time.time()
        with self._lock:
            members = self._members.get(group)
            if not members:
                self._members.pop(group, None)
                return None
            alive = [c for c, end in members.items() if end > now]
            if len(alive) < len(members):
                for channel in [c for c, end in members.items() if end <= now]:
                    del members[channel]
            if not alive:
                del self._members[group]
                return None
            return alive

    def groups(self) -> list[str]:
        """Groups with members in the table."""
        with self._lock:
            return list(self._members)

    def clear(self) -> list[str]:
        """Forget every membership; return the groups there were."""
        with self._lock:
            groups = list(self._members)
            self._members.clear()
            return groups

    # -- the queue and its consumer -------------------------------------------------

    async def ensure(self) -> None:
        """Declare the inbox and run its consumer, here if no live loop runs it."""
        if self.running():
            return
        loop = asyncio.get_running_loop()
        task = self._starting
        if (
            task is None
            or task.get_loop().is_closed()
            or (task.done() and (task.cancelled() or task.exception() is not None))
        ):
            task = self._starting = loop.create_task(self._start(loop))
        if task.get_loop() is loop:
            await asyncio.shield(task)

    async def _start(self, loop: asyncio.AbstractEventLoop) -> None:
        link = await self.layer.links.here()
        channel = await link.connection.channel()
        await channel.set_qos(prefetch_count=self.layer.prefetch_count)
        queue = await channel.declare_queue(
            self.queue_name, arguments=self.layer.topology.inbox_arguments(), robust=True
        )
        await self.bind_all(link)
        await queue.consume(self._on_message)
        self._channel, self._queue, self._loop = channel, queue, loop
        self.declared = True

    async def bind_all(self, link: Link) -> None:
        """(Re)bind the inbox: dead letters from its own sends, and every group it has."""
        layer = self.layer
        await layer.broker.bind(
            link,
            self.queue_name,
            layer.topology.dead_letters,
            arguments={"x-match": "all", wire.SENDER: layer.client_id},
        )
        for group in self.groups():
            await layer.broker.bind(link, self.queue_name, layer.topology.groups, group)

    def running(self) -> bool:
        """True if the consumer runs in a live loop (ensure() would do nothing)."""
        return self._loop is not None and not self._loop.is_closed()

    def hosted_on(self, loop: asyncio.AbstractEventLoop) -> bool:
        """True if the consumer runs in loop."""
        return self._loop is loop

    def release(self) -> None:
        """Forget the consumer (its loop is ending): the next ensure() starts another."""
        self._channel = self._queue = self._loop = None
        self._starting = None

    async def stop(self) -> None:
        """Close the consumer's channel (in its loop), leaving the queue."""
        channel, loop = self._channel, self._loop
        self._channel = self._queue = self._loop = None
        self._starting = None
        if channel is None or loop is None or loop.is_closed():
            return
        if loop is asyncio.get_running_loop():
            await _quietly(channel.close())
        elif loop.is_running():
            done = asyncio.run_coroutine_threadsafe(_quietly(channel.close()), loop)
            await _quietly(asyncio.wait_for(asyncio.wrap_future(done), 5))

    # -- deliveries -------------------------------------------------------------------

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        try:
            if self._first_delivery(message):
                self._deliver(message)
        finally:
            await _quietly(message.ack())

    def _first_delivery(self, message: AbstractIncomingMessage) -> bool:
        """False for a redelivered message this inbox already delivered."""
        if self._seen.repeats(message):
            return False
        self._seen.add(message)
        return True

    def _deliver(self, message: AbstractIncomingMessage) -> None:
        layer = self.layer
        headers: dict[str, Any] = dict(message.headers or {})
        counters = layer.counters
        if "x-death" in headers:
            # One of our own sends expired unread in some queue and came back to us.
            counters.dropped_expired += 1
            return
        op = headers.get(wire.OP)
        if op is not None:
            self._control(op, headers)
            return
        deadline = wire.local_deadline(headers, layer.expiry)
        if deadline <= time.monotonic():
            counters.dropped_expired += 1
            return
        body = message.body
        group = headers.get(wire.GROUP)
        if isinstance(group, str):
            members = self.live(group)
            if members is None:
                layer.spawn(self._unbind_if_unused(group))
                return
            full = 0
            for channel in members:
                if not layer.local.put(channel, body, deadline, layer.capacity_rules(channel)):
                    full += 1
            if full:
                counters.dropped_full += full
                log.info("group message for %r skipped %d full local member(s)", group, full)
            return
        target = headers.get(wire.CHANNEL)
        if not self._ours(target):
            self._malformed("a message for no channel of ours", headers)
            return
        if not layer.local.put(target, body, deadline, layer.capacity_rules(target)):
            counters.dropped_full += 1
            log.info("dropped a message for full channel %r", target)

    def _control(self, op: object, headers: dict[str, Any]) -> None:
        group, channel = headers.get(wire.GROUP), headers.get(wire.CHANNEL)
        if not isinstance(group, str) or not self._ours(channel) or op not in wire.OPS:
            self._malformed("a malformed membership message", headers)
        elif op == wire.ADD:
            until = headers.get(wire.UNTIL)
            end = until / 1000 if isinstance(until, int) else time.time()
            self.add(group, channel, end)
        elif self.discard(group, channel):
            self.layer.spawn(self._unbind_if_unused(group))

    def _ours(self, channel: object) -> TypeGuard[str]:
        """True if channel is a process-local channel of this layer."""
        if not isinstance(channel, str) or not self.layer.owns(channel):
            return False
        try:
            check_channel(channel)
        except InvalidChannelName:
            return False
        return True

    def _malformed(self, what: str, headers: dict[str, Any]) -> None:
        # Not written by a layer (they always name one of our channels): drop, count.
        self.layer.counters.dropped_undecodable += 1
        log.warning("dropped %s on inbox %s, headers %.200r", what, self.queue_name, headers)

    async def _unbind_if_unused(self, group: str) -> None:
        if self.live(group) is not None:
            return
        link = await self.layer.links.here()
        await self.layer.broker.unbind(link, self.queue_name, group)


async def _quietly(awaitable: Any) -> None:
    try:
        await awaitable
    except Exception as exc:
        log.debug("ignored while closing: %r", exc)

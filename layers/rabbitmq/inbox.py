"""A layer instance's inbox: one queue for all its process-local channels.

One consumer per layer (in whichever event loop first needs it, moved when that loop
closes) puts each message into the LocalChannels buffers and only then acks it, so a
message taken off the broker is always either buffered or counted as dropped. The acks
of a run of deliveries go out together (acks.py).

How the process knows its local members of a group: a membership table here (group ->
channel -> until). group_add of one of our own channels writes it directly; group_add
of another process's channel publishes a control message on that process's inbox
*before* binding its queue to the group, so the control message is queued ahead of any
group message that binding lets in. A group message is then fanned out to the live
members of the table; one for a group with none left unbinds the inbox from it.

Per-channel capacity of process-local channels is checked here, at the receiver, and a
message for a full channel is dropped and counted as dropped_full in this process (a
sender in another process cannot be told). What the sender is told: the inbox queue
itself holds at most inbox_capacity messages (x-max-length, reject-publish), so a process
that does not keep up makes its senders' sends raise ChannelFull instead of growing the
broker without limit.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Coroutine
from enum import Enum
from typing import Any, Protocol, TypeGuard

from aio_pika.abc import AbstractIncomingMessage, AbstractQueue, AbstractRobustChannel

from ..capacity import CapacityRules
from ..counters import Counters
from ..exceptions import InvalidChannelName
from ..groups import GroupRegistry
from ..local import LocalChannels
from ..loops import run_in_loop
from ..naming import check_channel
from . import wire
from .acks import Acks
from .broker import Broker
from .connections import Link, Links, closed_under, quietly
from .recent import RecentIds
from .sending import unbundle
from .topology import ANCHOR, Topology

__all__ = ["Inbox", "InboxOwner", "State"]

log = logging.getLogger("layers.rabbitmq")


class InboxOwner(Protocol):
    """What the inbox uses of its layer."""

    client_id: str
    topology: Topology
    broker: Broker
    links: Links
    local: LocalChannels
    counters: Counters
    capacity_rules: CapacityRules
    expiry: float
    prefetch_count: int
    inbox_capacity: int

    @property
    def closed(self) -> bool:
        """True once the layer is closed."""

    def owns(self, channel: str) -> bool:
        """True for this layer's own process-local channels."""

    def spawn(self, coro: Coroutine[Any, Any, Any], waits_only: bool = False) -> asyncio.Task[Any]:
        """Run coro as a background task of the layer."""


class State(Enum):
    """Where the inbox's consumer is in its life."""

    IDLE = "idle"  # none: the next ensure() starts one (at first, or after release/stop)
    STARTING = "starting"  # declaring the queue and its bindings, then consuming
    RUNNING = "running"  # consuming in one event loop (hosted_on)


class Inbox:
    """The inbox queue of one layer instance, its consumer and its group memberships."""

    def __init__(self, layer: InboxOwner) -> None:
        self.layer = layer
        self.state = State.IDLE
        self.queue_name = layer.topology.inbox_queue(layer.client_id)
        # Memberships of our local channels, ending in wall-clock seconds: they come
        # from other processes (the group_add's until header).
        self._members = GroupRegistry()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._channel: AbstractRobustChannel | None = None
        self._queue: AbstractQueue | None = None
        self._starting: asyncio.Task[None] | None = None
        self.declared = False
        # To drop the broker's redelivery of a message whose ack was lost with a connection.
        self._seen = RecentIds(layer.prefetch_count)
        # A quarter of the prefetch window: the broker never waits on the acks.
        self._acks = Acks(layer.prefetch_count // 4, layer.spawn)

    # -- memberships ---------------------------------------------------------------

    def add(self, group: str, channel: str, until: float) -> bool:
        """Add or renew a member; True if the group had no live member before."""
        return self._members.add(group, channel, until, time.time())

    def discard(self, group: str, channel: str) -> bool:
        """Remove a member; True if the group now has no live member."""
        return self._members.discard(group, channel, time.time())

    def live(self, group: str) -> list[str] | None:
        """The live local members of group (expired ones are forgotten); None if none."""
        return self._members.members(group, time.time()) or None

    def has(self, group: str, channel: str) -> bool:
        """True if our channel (any of "x!*", for "x!") is a live member of group."""
        return self._members.has(group, channel, time.time())

    def groups(self) -> list[str]:
        """Groups with members in the table."""
        return self._members.groups()

    def clear(self) -> list[str]:
        """Forget every membership; return the groups there were."""
        return self._members.clear()

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
            self.state = State.STARTING
            task = self._starting = loop.create_task(self._start(loop))
        if task.get_loop() is loop:
            try:
                await asyncio.shield(task)
            except (asyncio.CancelledError, Exception) as exc:
                closed_under(self.layer.closed, "starting the inbox", exc)
                raise

    async def _start(self, loop: asyncio.AbstractEventLoop) -> None:
        try:
            link = await self.layer.links.here()
            channel = await link.connection.channel()
            await channel.set_qos(prefetch_count=self.layer.prefetch_count)
            queue = await channel.declare_queue(
                self.queue_name,
                arguments=self.layer.topology.inbox_arguments(self.layer.inbox_capacity),
                robust=True,
            )
            await self.bind_all(link)
            await queue.consume(self._on_message)
        except BaseException:
            self.state = State.IDLE  # the next ensure() tries again
            raise
        self._channel, self._queue, self._loop = channel, queue, loop
        self.state = State.RUNNING
        self.declared = True

    async def bind_all(self, link: Link) -> None:
        """(Re)bind the inbox: dead letters from its own sends, the anchor, every group it has."""
        layer = self.layer
        await layer.broker.bind(
            link,
            self.queue_name,
            layer.topology.dead_letters,
            arguments={"x-match": "all", wire.SENDER: layer.client_id},
        )
        await layer.broker.bind(link, self.queue_name, layer.topology.groups, ANCHOR)
        for group in self.groups():
            await layer.broker.bind(link, self.queue_name, layer.topology.groups, group)

    def running(self) -> bool:
        """True if the consumer runs in a live loop (ensure() would do nothing)."""
        loop = self._loop
        return self.state is State.RUNNING and loop is not None and not loop.is_closed()

    def hosted_on(self, loop: asyncio.AbstractEventLoop) -> bool:
        """True if the consumer runs in loop."""
        return self._loop is loop

    def release(self) -> None:
        """Forget the consumer (its loop is ending): the next ensure() starts another."""
        self._acks.forget()  # the broker requeues them; RecentIds knows them again
        self._channel = self._queue = self._loop = None
        self._starting = None
        self.state = State.IDLE

    async def stop(self) -> None:
        """Close the consumer's channel (in its loop), leaving the queue."""
        channel, loop, acks = self._channel, self._loop, self._acks
        self._acks = acks.renewed()  # the next consumer's, in its own loop
        self.release()
        if channel is None or loop is None or loop.is_closed():
            return

        async def close() -> None:
            await acks.settle()  # what this consumer delivered is not delivered again
            await quietly(channel.close())

        await run_in_loop(loop, close)

    # -- deliveries -------------------------------------------------------------------

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        try:
            if self._first_delivery(message):
                self._deliver(message)
        finally:
            self._acks.later(message)

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
        count = headers.get(wire.BUNDLE)
        if "x-death" in headers:
            # One of our own sends expired unread in some queue and came back to us.
            counters.dropped_expired += count if isinstance(count, int) and count > 0 else 1
            return
        op = headers.get(wire.OP)
        if op is not None:
            self._control(op, headers)
            return
        deadline = wire.local_deadline(headers, layer.expiry)
        body = message.body
        if count is not None:
            self._deliver_bundle(body, count, deadline, headers)
            return
        if deadline <= time.monotonic():
            counters.dropped_expired += 1
            return
        group = headers.get(wire.GROUP)
        if isinstance(group, str):
            members = self.live(group)
            if members is None:
                layer.spawn(self._unbind_if_unused(group))
                return
            full = layer.local.put_many(members, body, deadline, layer.capacity_rules.shared)
            if full:
                counters.dropped_full += len(full)
                log.info("group message for %r skipped %d full local member(s)", group, len(full))
            return
        target = headers.get(wire.CHANNEL)
        if not self._ours(target):
            self._malformed("a message for no channel of ours", headers)
            return
        if not layer.local.put(target, body, deadline, layer.capacity_rules(target)):
            counters.dropped_full += 1
            log.info("dropped a message for full channel %r", target)

    def _deliver_bundle(
        self, body: bytes, count: object, deadline: float, headers: dict[str, Any]
    ) -> None:
        """Deliver the items of a send_many's bundle (sending.py), each as if sent alone."""
        counters, local, capacity = self.layer.counters, self.layer.local, self.layer.capacity_rules
        pairs = unbundle(body, count)
        if pairs is None or not all(self._ours(channel) for channel, _ in pairs):
            self._malformed("a malformed bundle", headers)
            return
        if deadline <= time.monotonic():
            counters.dropped_expired += len(pairs)
            return
        for channel, payload in pairs:
            if not local.put(channel, payload, deadline, capacity(channel)):
                counters.dropped_full += 1
                log.info("dropped a message for full channel %r", channel)

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

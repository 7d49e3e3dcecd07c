"""Receiving on normal channels: a consumer per (event loop, channel) while receivers wait.

A normal channel is a real queue that any process may consume. A consumer runs only
while some receiver of this process waits on the channel, with prefetch_count
unacknowledged deliveries at most. A delivery goes into the LocalChannels buffer
unacknowledged, and is acked only once a receiver has taken it. When no receiver is
left, the consumer is cancelled and whatever it buffered is nacked with requeue, which
RabbitMQ puts back at its old place in the queue: another process gets it next, in
order, and a cancelled receive() never loses a message.

An ack written just before the connection dies may never reach the broker, which then
redelivers the message. This process remembers, per channel, the ids of the last
prefetch_count messages its receivers took, and acks and skips such a redelivery when it
comes back here: exactly once. A redelivery to another process cannot be recognised
there, so after a lost ack a message may be received once more elsewhere: at least once.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import OrderedDict
from functools import partial

from aio_pika.abc import AbstractIncomingMessage, AbstractQueue, AbstractRobustChannel
from aiormq.exceptions import ChannelInvalidStateError

from ..local import UNBOUNDED
from ..loops import run_in_loop
from . import wire
from .connections import quietly
from .parts import LayerParts
from .recent import RecentIds

__all__ = ["NormalReceivers"]

log = logging.getLogger("layers.rabbitmq")
# How long a consumer outlives its last receiver: the prefetched messages it holds are
# unavailable to other processes for at most this long. Long enough that a receiver
# descheduled for a moment on a busy host keeps them (a give-back while another
# process competes for the channel reorders them for that process).
_LINGER = 0.5
# Normal channels whose recent ids are kept: an app that makes up channel names as it
# goes must not grow this for ever; a redelivery comes within moments of its loss.
_TAKEN_CHANNELS = 4096
_ROUTES = 4096


class _Consumer:
    """One loop's consumer of one normal channel."""

    def __init__(self, owner: NormalReceivers, channel: str) -> None:
        self.owner = owner
        self.channel = channel
        self.loop = asyncio.get_running_loop()
        self.pending: dict[int, AbstractIncomingMessage] = {}
        self.amqp: AbstractRobustChannel | None = None
        self.queue: AbstractQueue | None = None
        self.tag: str | None = None
        self.stopping = False
        self.active = time.monotonic()
        self.acking: set[asyncio.Task[None]] = set()
        self._stopped: asyncio.Task[None] | None = None

    async def start(self) -> None:
        layer = self.owner.layer
        link = await layer.links.here()
        amqp = await link.connection.channel()
        self.amqp = amqp
        await amqp.set_qos(prefetch_count=layer.prefetch_count)
        self.queue = await amqp.declare_queue(
            layer.topology.channel_queue(self.channel),
            arguments=layer.broker.channel_arguments(self.channel),
            robust=True,
        )
        await layer.broker.catalogue(link, self.queue.name)
        self.tag = await self.queue.consume(self._on_message)
        layer.spawn(self.watch(), waits_only=True)  # (it stops the consumer in a task of its own)

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        layer = self.owner.layer
        if self.owner.repeats(self.channel, message):
            await message.ack()
            return
        if self.stopping:
            await message.nack(requeue=True)
            return
        deadline = wire.local_deadline(dict(message.headers or {}), layer.expiry)
        if deadline <= time.monotonic():
            layer.counters.dropped_expired += 1
            await message.ack()
            return
        body = message.body
        self.pending[id(body)] = message
        self.owner.index(body, self)
        layer.local.put(self.channel, body, deadline, UNBOUNDED)

    async def watch(self) -> None:
        """Stop once no receiver of this loop has waited or taken for a while.

        Not at the first instant with nobody waiting: a receiver that takes one message
        and comes straight back for the next is not waiting in between, and giving its
        prefetched messages back each time would hand them to other processes out of
        order (and cost a round trip per message).
        """
        local = self.owner.layer.local
        while not self.stopping:
            await asyncio.sleep(_LINGER)
            idle = time.monotonic() - self.active >= _LINGER
            if idle and local.waiting(self.channel) == 0 and not self.stopping:
                await self.stop()

    def touch(self) -> None:
        """A receiver of this loop waits or took a message."""
        self.active = time.monotonic()

    def stale(self, key: int) -> bool:
        """True (and forgotten) if key's delivery came on a channel that has since died."""
        message = self.pending.get(key)
        if message is None or not _dead(message):
            return False
        self.pending.pop(key, None)
        return True

    def ack(self, key: int) -> asyncio.Future[None] | None:
        """Ack a delivery a receiver took; a future (in the caller's loop) for its write."""
        here = asyncio.get_running_loop()
        if here is self.loop:
            return self._ack_now(key)
        if self.loop.is_closed():
            return None
        done = asyncio.run_coroutine_threadsafe(self._ack_there(key), self.loop)
        return asyncio.wrap_future(done, loop=here)

    async def _ack_there(self, key: int) -> None:
        task = self._ack_now(key)
        if task is not None:
            await task

    def _ack_now(self, key: int) -> asyncio.Task[None] | None:
        # In this consumer's loop. The delivery stays pending until its ack is written,
        # and stop() waits for these tasks (or acks what is left) before it closes the
        # channel: a channel closed with a delivery unacked would requeue it, and the
        # message would be received twice.
        self.touch()
        message = self.pending.get(key)
        if message is None:
            return None
        task = self.loop.create_task(self._ack(key, message))
        self.acking.add(task)
        task.add_done_callback(self.acking.discard)
        return task

    async def _ack(self, key: int, message: AbstractIncomingMessage) -> None:
        await quietly(message.ack())
        self.pending.pop(key, None)

    async def stop(self, restart: bool = True, graceful: bool = True) -> None:
        """Cancel the consumer, give back what no receiver took, close the channel.

        Not graceful: the connection is gone (its loop is shutting down), so nothing
        waits for the broker, which requeues what this consumer held unacked.

        A second caller (flush() while the linger watch stops it) waits for the first
        to finish, so nothing goes on to delete or close under a half-stopped consumer.
        """
        if self._stopped is None or self._stopped.cancelled():
            # (A stop cut short by its loop's end is run again at that loop's shutdown.)
            self._stopped = self.loop.create_task(self._stop(restart, graceful))
        await asyncio.shield(self._stopped)

    async def _stop(self, restart: bool, graceful: bool) -> None:
        self.stopping = True
        self.owner.forget(self)
        if graceful and self.queue is not None and self.tag is not None:
            await quietly(self.queue.cancel(self.tag))
        layer = self.owner.layer
        for _, payload in layer.local.drain_unwatched(self.channel):
            message = self.pending.pop(id(payload), None)
            self.owner.unindex(payload)
            if message is not None:
                if graceful and not _dead(message):  # else the broker requeues it
                    await quietly(message.nack(requeue=True))
            else:  # already acked, then handed back by a cancelled receive()
                await layer.republish(self.channel, payload)
        if graceful:
            # What is left was taken (its ack is on its way) or expired in the buffer.
            await asyncio.gather(*self.acking, return_exceptions=True)
            for message in list(self.pending.values()):
                if not message.processed:
                    await quietly(message.ack())
            if self.amqp is not None:
                await quietly(self.amqp.close())
        self.pending.clear()
        # A receiver that came while this one stopped needs a consumer of its own.
        if restart and layer.local.waiting(self.channel) and not layer.closed:
            self.owner.ensure(self.channel)


class NormalReceivers:
    """Every consumer of normal channels in this layer, and acks for taken messages."""

    def __init__(self, layer: LayerParts) -> None:
        self.layer = layer
        self._consumers: dict[tuple[asyncio.AbstractEventLoop, str], _Consumer] = {}
        self._starting: dict[tuple[asyncio.AbstractEventLoop, str], asyncio.Task[None]] = {}
        self._by_payload: dict[int, _Consumer] = {}
        self._threads: dict[asyncio.AbstractEventLoop, int] = {}
        # channel -> ids of the messages taken lately, in any loop of this layer; the
        # channels received on least lately are forgotten beyond _TAKEN_CHANNELS.
        self._taken: OrderedDict[str, RecentIds] = OrderedDict()
        # id(payload) -> (exchange, routing key) of a taken delivery, for routed().
        self._routes: dict[int, tuple[str, str]] = {}
        self._lock = threading.Lock()

    def thread_of(self, loop: asyncio.AbstractEventLoop) -> int:
        """The thread that runs loop."""
        return self._threads.get(loop, -1)

    def ensure(self, channel: str) -> None:
        """Make sure this loop consumes channel (LocalChannels' on_wait hook)."""
        loop = asyncio.get_running_loop()
        key = (loop, channel)
        consumer = self._consumers.get(key)
        if consumer is not None:
            consumer.touch()
            return
        self.layer._check_open()
        self._threads[loop] = threading.get_ident()
        consumer = _Consumer(self, channel)
        self._consumers[key] = consumer
        self._starting[key] = task = loop.create_task(self._start(key, consumer))
        task.add_done_callback(lambda _t: self._starting.pop(key, None))

    async def _start(self, key: tuple[asyncio.AbstractEventLoop, str], consumer: _Consumer) -> None:
        try:
            await consumer.start()
        except Exception as exc:
            log.warning("could not consume %r (%r); retrying on the next receive", key[1], exc)
            self._consumers.pop(key, None)
            if consumer.amqp is not None:
                await quietly(consumer.amqp.close())
            await asyncio.sleep(0.1)
            if self.layer.local.waiting(key[1]) and not self.layer.closed:
                self.ensure(key[1])

    def index(self, payload: bytes, consumer: _Consumer) -> None:
        """Remember which consumer holds payload's delivery."""
        with self._lock:
            self._by_payload[id(payload)] = consumer

    def repeats(self, channel: str, message: AbstractIncomingMessage) -> bool:
        """True if message is the broker's redelivery of one a receiver here took."""
        with self._lock:
            taken = self._taken.get(channel)
            return taken is not None and taken.repeats(message)

    def _took(self, channel: str, message: AbstractIncomingMessage) -> None:
        with self._lock:
            taken = self._taken.get(channel)
            if taken is None:
                taken = self._taken[channel] = RecentIds(self.layer.prefetch_count)
                if len(self._taken) > _TAKEN_CHANNELS:
                    self._taken.popitem(last=False)
            else:
                self._taken.move_to_end(channel)
            taken.add(message)

    def unindex(self, payload: bytes) -> None:
        """Forget payload's delivery."""
        with self._lock:
            self._by_payload.pop(id(payload), None)

    async def taken(self, channel: str, payload: bytes) -> bool:
        """A receiver took payload: ack its delivery, and wait until the ack is written.

        Waiting matters when the loop ends right after (asyncio.run): its connection
        dies with it, and an unwritten ack would redeliver the message to someone else.
        If the receiver is cancelled meanwhile, the message goes back to the local
        buffer (at its end) for the next receiver, or to the queue if none comes.

        False if the delivery is stale: its channel died (a lost connection), so the
        broker has requeued it and will deliver it again; the receiver skips this copy.
        """
        with self._lock:
            consumer = self._by_payload.pop(id(payload), None)
        if consumer is None:
            return True
        if consumer.stale(id(payload)):
            return False
        message = consumer.pending.get(id(payload))
        if message is not None:  # before its ack is written, which may be lost
            self._took(channel, message)
            if self.layer.codec.encrypted:
                self._route(payload, message)
        written = consumer.ack(id(payload))
        if written is None:
            return True
        try:
            await asyncio.shield(written)
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None and not task.cancelling():
                # Not this receiver's cancel: the consumer's own loop is shutting down
                # (asyncio.run ending in another thread) and cancelled the write with
                # its connection. The broker redelivers it, and _took above makes that
                # redelivery to this process a repeat: the message is this receiver's.
                return True
            layer = self.layer
            layer.local.put(channel, payload, time.monotonic() + layer.expiry, UNBOUNDED)
            raise
        return True

    def _route(self, payload: bytes, message: AbstractIncomingMessage) -> None:
        with self._lock:
            if len(self._routes) >= _ROUTES:
                self._routes.clear()  # of payloads never checked (undecodable ones)
            self._routes[id(payload)] = (message.exchange or "", message.routing_key or "")

    def routed(self, payload: bytes, group: str) -> bool | None:
        """True if the broker routed payload, just taken, through group's binding: the
        broker's own word on membership, where a listing of the group's records may
        be partial (registry.py). None otherwise: a delivery published straight to
        the queue (one a receiver gave back, say) proves nothing either way."""
        with self._lock:
            route = self._routes.pop(id(payload), None)
        return True if route == (self.layer.topology.groups, group) else None

    def forget(self, consumer: _Consumer) -> None:
        """A consumer is stopping: later receivers need a new one."""
        key = (consumer.loop, consumer.channel)
        if self._consumers.get(key) is consumer:
            del self._consumers[key]

    def watched(self) -> set[str]:
        """Channels some loop of this layer consumes."""
        return {channel for _, channel in self._consumers}

    async def stop_here(self, graceful: bool) -> None:
        """Stop this loop's consumers (its connection is about to close)."""
        here = asyncio.get_running_loop()
        for (loop, _), consumer in list(self._consumers.items()):
            if loop is here:
                await consumer.stop(restart=False, graceful=graceful)

    async def stop_all(self, restart: bool = False) -> None:
        """Stop every consumer: this loop's now, other live loops' in their loop."""
        here = asyncio.get_running_loop()
        for task in [t for t in self._starting.values() if t.get_loop() is here]:
            await asyncio.gather(task, return_exceptions=True)
        for (loop, _), consumer in list(self._consumers.items()):
            if not await run_in_loop(loop, partial(consumer.stop, restart)):
                self.forget(consumer)


def _dead(message: AbstractIncomingMessage) -> bool:
    """True if the channel message came on has closed (aio-pika raises on reading it)."""
    try:
        return message.channel.is_closed
    except ChannelInvalidStateError:
        return True

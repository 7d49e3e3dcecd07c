"""Deployment figures on RabbitMQ, which keeps no counters of its own.

Each layer instance publishes a snapshot of its counters every REPORT_EVERY seconds
to its own last-value queue, ``<prefix>:f:<client id>`` (at most one message, the
newest; the snapshot expires after 3 periods and the queue soon after, so a stopped
process's counts leave the sum with it). The queue is named in the prefix's catalog.

A reader opens a connection of its own, takes the catalog's names unacked (and so
gives them back when it closes, as it does every snapshot and membership record it
read): it sums the snapshots, counts each catalogued channel's and inbox's messages
by a passive declare, and folds each group's membership records. A passive declare of
a queue that is gone is a channel error, which closes only the reader's channel.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import msgpack
from aiormq.abc import AbstractChannel
from aiormq.exceptions import AMQPChannelError, ChannelNotFoundEntity

from ..exceptions import ChannelLayerConnectionError
from ..figures import SHARED_COUNTERS, Figures, add_counts, top
from .connections import Link, Outcome
from .parts import LayerParts
from .registry import latest_records, take
from .topology import SEP

__all__ = ["REPORT_EVERY", "Reporter", "read_figures"]

T = TypeVar("T")
log = logging.getLogger("layers.rabbitmq")

REPORT_EVERY = 1.0
"""Seconds between two snapshots of a process's counters."""
_NOTE = (
    "counters are the sum of the running processes' last snapshots (published every "
    f"{REPORT_EVERY:g} s): a process's counts leave the sum when it stops; a group_send "
    "counts once in sent, its deliveries in delivered; queued counts the queues' ready "
    "messages and what processes buffer"
)


class Reporter:
    """Publishes this layer's counters to its snapshot queue, now and then."""

    def __init__(self, layer: LayerParts) -> None:
        self.layer = layer
        self.queue = layer.topology.figures_queue(layer.client_id)
        self._ticker: asyncio.Task[None] | None = None
        self._published: tuple[Any, ...] | None = None
        self._published_at = 0.0

    def ensure(self) -> None:
        """Run the periodic publisher in the running loop, unless one runs already."""
        ticker = self._ticker
        if ticker is not None and not ticker.done() and not ticker.get_loop().is_closed():
            return
        self._ticker = self.layer.spawn(self._tick(), waits_only=True)

    async def _tick(self) -> None:
        publishing: asyncio.Task[Any] | None = None
        while True:
            # Its own task: a publish is never cancelled halfway by flush() or close().
            # One at a time: while the broker is away, they would pile up.
            if publishing is None or publishing.done():
                publishing = self.layer.spawn(self._publish_quietly())
            await asyncio.sleep(REPORT_EVERY)

    async def _publish_quietly(self) -> None:
        try:
            await self.publish()
        except ChannelLayerConnectionError as exc:  # the next tick tries again
            log.debug("could not publish this process's counters: %s", exc)

    def snapshot(self) -> dict[str, Any]:
        """This process's counters, and the depths of its local buffers."""
        layer = self.layer
        counts = layer.counters.shared(layer.dropped_unroutable)
        depths = layer.local.depths()
        return {
            "c": dict(zip(SHARED_COUNTERS, counts, strict=True)),
            "held": sum(depths.values()),
            "d": top(depths, 20),
        }

    async def publish(self) -> None:
        """Publish a snapshot if the counts changed, or else every other period (well
        within the snapshot's time to live of three)."""
        snapshot = self.snapshot()
        key = (tuple(snapshot["c"].values()), snapshot["held"])
        now = time.monotonic()
        if key == self._published and now - self._published_at < 1.5 * REPORT_EVERY:
            return
        layer = self.layer
        link = await layer.links.here()
        body: bytes = msgpack.packb(snapshot)
        outcome = Outcome.RETURNED
        if self.queue in layer.broker.ready:
            outcome = await link.publish(layer.timeout, "", self.queue, body, {})
        if outcome is Outcome.RETURNED:  # not declared yet, or gone (flush, x-expires)
            arguments = layer.topology.figures_arguments(REPORT_EVERY)
            await link.call(
                "declaring the figures queue",
                layer.timeout,
                lambda ch: ch.queue_declare(self.queue, arguments=arguments),
            )
            await layer.broker.catalogue(link, self.queue)
            await link.publish(layer.timeout, "", self.queue, body, {})
        self._published, self._published_at = key, now


async def _passive(ch: AbstractChannel, queue: str) -> int | None:
    """Messages ready in queue, or None if it does not exist (ch is then closed)."""
    try:
        declared = await ch.queue_declare(queue, passive=True)
    except ChannelNotFoundEntity:
        return None
    return declared.message_count or 0


async def _take_all(ch: AbstractChannel, queue: str) -> list[Any] | None:
    count = await _passive(ch, queue)
    if count is None:
        return None
    return await take(ch, queue, count) if count else []


async def read_figures(layer: LayerParts, limit: int) -> Figures:
    """The deployment's figures for layer's prefix, read on a connection of our own."""
    topo = layer.topology
    counts = layer.counters.shared(layer.dropped_unroutable)
    counters = dict(zip(SHARED_COUNTERS, counts, strict=True))
    depths: dict[str, int] = dict(layer.local.depths())  # the deepest only, for others
    buffered = sum(depths.values())  # what processes took from queues and hold
    ready = 0  # what queues hold
    sizes: dict[str, int] = {}
    try:
        async with layer.links.spare() as link:
            reader = _Reader(link, layer.timeout)
            names = await reader.run(_take_all, topo.catalog_queue) or []
            kinds: dict[str, set[str]] = {"c": set(), "p": set(), "m": set(), "f": set()}
            for message in names:
                kind, _, rest = message.body.decode().removeprefix(topo.prefix + SEP).partition(SEP)
                if kind in kinds:
                    kinds[kind].add(rest)
            for client in sorted(kinds["f"] - {layer.client_id}):
                taken = await reader.run(_take_all, topo.figures_queue(client)) or []
                if taken:  # more than one only if a snapshot came while another was held
                    snapshot = msgpack.unpackb(taken[-1].body)
                    add_counts(counters, snapshot["c"])
                    add_counts(depths, snapshot["d"])
                    buffered += snapshot["held"]
            for channel in kinds["c"]:
                count = await reader.run(_passive, topo.channel_queue(channel))
                if count:
                    add_counts(depths, {channel: count})
                    ready += count
            for client in kinds["p"]:
                count = await reader.run(_passive, topo.inbox_queue(client))
                if count:
                    depths[f"inbox {client}"] = count
                    ready += count
            now = time.time()
            for group in kinds["m"]:
                records = await reader.run(_take_all, topo.registry_queue(group)) or []
                live = [
                    c
                    for op, c, at in latest_records(records).values()
                    if op == "add" and at + layer.group_expiry > now
                ]
                if live:
                    sizes[group] = len(live)
    except (AMQPChannelError, OSError, ConnectionError, TimeoutError) as exc:
        raise ChannelLayerConnectionError(f"reading the figures from RabbitMQ: {exc!r}") from exc
    return Figures(
        backend="RabbitMQChannelLayer",
        prefix=layer.prefix,
        scope="deployment",
        counters=counters,
        queued=ready + buffered,
        groups=len(sizes),
        members=sum(sizes.values()),
        deepest=top(depths, limit),
        largest_groups=top(sizes, limit),
        notes=(_NOTE,),
    )


class _Reader:
    """The reader's channel, opened again after a passive declare of a missing queue."""

    def __init__(self, link: Link, limit: float) -> None:
        self.link = link
        self.limit = limit
        self.channel: AbstractChannel | None = None

    async def run(self, op: Callable[[AbstractChannel, str], Awaitable[T]], queue: str) -> T:
        """op(channel, queue) on an open channel, within the layer's timeout."""
        if self.channel is None or self.channel.is_closed:
            transport = self.link.connection.transport
            if transport is None:
                raise ConnectionError("the reader's connection is down")
            self.channel = await transport.connection.channel()
        async with asyncio.timeout(self.limit):
            return await op(self.channel, queue)

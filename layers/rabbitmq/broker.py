"""What a layer declared on the broker: declaring, binding, and removing it again.

flush() works without the management plugin because this keeps track of every queue
the layer declared (and the two exchanges every prefix has), and deletes exactly those.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from functools import partial
from typing import Any

from aiormq.abc import AbstractChannel
from aiormq.exceptions import ChannelNotFoundEntity, ChannelPreconditionFailed

from ..exceptions import ConfigError
from .connections import Link
from .topology import Topology

__all__ = ["Broker"]


async def _delete_queue(
    name: str, channel: AbstractChannel, if_unused: bool = False, if_empty: bool = False
) -> None:
    await channel.queue_delete(name, if_unused=if_unused, if_empty=if_empty)


async def _delete_exchange(name: str, channel: AbstractChannel) -> None:
    await channel.exchange_delete(name)


class Broker:
    """Declarations of one layer, and the record of them that flush() and close() use."""

    def __init__(self, topology: Topology, timeout: float, capacity: Callable[[str], int]) -> None:
        self.topology = topology
        self.timeout = timeout
        self._capacity = capacity
        self.queues: set[str] = set()  # every queue this layer declared, for flush()
        self.ready: set[str] = set()  # queues known to exist (declared since the last flush)
        self.grouped: set[str] = set()  # normal channel queues this layer bound to groups

    def track(self, name: str) -> None:
        """Note a queue this layer declared."""
        self.queues.add(name)
        self.ready.add(name)

    def channel_arguments(self, channel: str) -> dict[str, Any]:
        """Queue arguments of a normal channel."""
        return self.topology.channel_arguments(self._capacity(channel))

    async def declare_channel(self, link: Link, channel: str) -> str:
        """Declare a normal channel's queue (once, until flush or reconnect); its name."""
        name = self.topology.channel_queue(channel)
        if name in self.ready:
            return name
        arguments = self.channel_arguments(channel)
        try:
            await link.call(
                f"declaring channel {channel!r}",
                self.timeout,
                lambda ch: ch.queue_declare(name, arguments=arguments),
            )
        except ChannelPreconditionFailed as exc:
            raise ConfigError(
                f"queue {name!r} exists with other arguments than this layer's "
                f"(capacity {arguments['x-max-length']}, expiry {self.topology.expiry:g}s): "
                f"layers sharing prefix {self.topology.prefix!r} must agree on them ({exc})"
            ) from exc
        self.track(name)
        return name

    async def declare_exchange(self, link: Link, name: str) -> None:
        """Declare the group or dead-letter exchange, once per connection (and flush).

        Both are auto-delete: the broker removes them with their last binding, so a
        prefix leaves nothing behind once its queues are gone.
        """
        if name in link.exchanges:
            return
        kind = "headers" if name == self.topology.dead_letters else "direct"
        await link.call(
            f"declaring exchange {name!r}",
            self.timeout,
            lambda ch: ch.exchange_declare(name, exchange_type=kind, auto_delete=True),
        )
        link.exchanges.add(name)

    async def bind(
        self,
        link: Link,
        queue: str,
        exchange: str,
        group: str = "",
        arguments: dict[str, Any] | None = None,
    ) -> None:
        """Bind queue to exchange, declaring it again if it was auto-deleted meanwhile."""
        for attempt in range(2):
            await self.declare_exchange(link, exchange)
            try:
                await link.call(
                    f"binding {queue!r}",
                    self.timeout,
                    lambda ch: ch.queue_bind(
                        queue, exchange, routing_key=group, arguments=arguments
                    ),
                )
                return
            except ChannelNotFoundEntity:
                link.exchanges.discard(exchange)
                if attempt:
                    raise

    async def unbind(self, link: Link, queue: str, group: str) -> None:
        """Unbind queue from group; an exchange or queue already gone is fine."""
        groups = self.topology.groups
        try:
            await link.call(
                f"unbinding group {group!r}",
                self.timeout,
                lambda ch: ch.queue_unbind(queue, groups, routing_key=group),
            )
        except ChannelNotFoundEntity:
            link.exchanges.discard(groups)

    async def flush(self, link: Link, links: list[Link]) -> None:
        """Delete every queue this layer declared, and the prefix's exchanges."""
        for queue in sorted(self.queues):
            await link.call("flushing", self.timeout, partial(_delete_queue, queue))
        self.queues.clear()
        self.ready.clear()
        self.grouped.clear()
        topo = self.topology
        for exchange in (topo.groups, topo.dead_letters):
            await link.call("flushing", self.timeout, partial(_delete_exchange, exchange))
        for other in links:
            other.exchanges.clear()

    async def remove_idle(self, link: Link, inbox: str | None) -> None:
        """Delete the inbox, and normal channel queues this layer made that nobody needs.

        A normal channel's queue goes only if it is empty, has no consumer, and this
        layer never bound it to a group: it holds nothing, and another process that
        sends to it declares it again. A queue in a group is left to x-expires, since
        deleting it would drop the memberships other processes gave it.
        """
        if inbox is not None:
            await link.call("deleting the inbox", self.timeout, partial(_delete_queue, inbox))
        prefix = self.topology.channel_queue("")
        for queue in sorted(q for q in self.queues - self.grouped if q.startswith(prefix)):
            with contextlib.suppress(ChannelPreconditionFailed):  # in use or not empty
                await link.call(
                    "removing an idle queue",
                    self.timeout,
                    partial(_delete_queue, queue, if_unused=True, if_empty=True),
                )

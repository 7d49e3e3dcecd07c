"""What a layer declared on the broker: declaring, binding, and removing it again.

flush() works without the management plugin because every queue a layer declares is
also named once, by each layer instance that declares it, in the prefix's catalog queue
(a queue of names). flush() reads the catalog, deletes every queue named there and
every one this instance declared, then the catalog and the prefix's two exchanges; so
it also removes queues that other processes declared, which have since exited.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from functools import partial
from typing import Any

from aiormq import spec
from aiormq.abc import AbstractChannel
from aiormq.exceptions import ChannelNotFoundEntity, ChannelPreconditionFailed

from ..exceptions import ChannelLayerError, ConfigError
from .connections import Link
from .topology import Topology

__all__ = ["Broker"]


async def _delete_queue(
    name: str, channel: AbstractChannel, if_unused: bool = False, if_empty: bool = False
) -> None:
    await channel.queue_delete(name, if_unused=if_unused, if_empty=if_empty)


async def _delete_exchange(name: str, channel: AbstractChannel) -> None:
    await channel.exchange_delete(name)


async def _read_catalog(name: str, channel: AbstractChannel) -> set[str]:
    """Take every queue name the catalog holds (none if it does not exist)."""
    names: set[str] = set()
    while True:
        message = await channel.basic_get(name, no_ack=True)
        if isinstance(message.delivery, spec.Basic.GetEmpty):
            return names
        names.add(message.body.decode())


class Broker:
    """Declarations of one layer, and the record of them that flush() and close() use."""

    def __init__(self, topology: Topology, timeout: float, capacity: Callable[[str], int]) -> None:
        self.topology = topology
        self.timeout = timeout
        self._capacity = capacity
        self.queues: set[str] = set()  # every queue this layer declared, for flush()
        self.ready: set[str] = set()  # queues known to exist (declared since the last flush)
        self.catalogued: set[str] = set()  # queues this instance named in the catalog

    def track(self, name: str) -> None:
        """Note a queue this layer declared."""
        self.queues.add(name)
        self.ready.add(name)

    async def catalogue(self, link: Link, name: str) -> None:
        """Track queue name, and name it in the prefix's catalog once per instance."""
        self.track(name)
        if name in self.catalogued:
            return
        catalog = self.topology.catalog_queue
        arguments = self.topology.catalog_arguments()
        if catalog not in self.ready:
            await link.call(
                "declaring the catalog",
                self.timeout,
                lambda ch: ch.queue_declare(catalog, arguments=arguments),
            )
            self.ready.add(catalog)
        await link.publish(self.timeout, "", catalog, name.encode(), {})
        self.catalogued.add(name)

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
        await self.catalogue(link, name)
        return name

    async def declare_exchange(self, link: Link, name: str) -> None:
        """Declare the group or dead-letter exchange, once per connection (and flush).

        Both are auto-delete: the broker removes them with their last binding, so a
        prefix leaves nothing behind once its queues are gone. Every live inbox keeps
        both bound (Inbox.bind_all), so neither goes while a layer of the prefix runs:
        a publish or bind to a missing exchange is a channel error (404), which closes
        the channel every call of the connection shares.
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
        """Bind queue to exchange, declaring it again if it was deleted meanwhile (a flush)."""
        for attempt in range(2):
            try:
                await self.declare_exchange(link, exchange)
                await link.call(
                    f"binding {queue!r}",
                    self.timeout,
                    lambda ch: ch.queue_bind(
                        queue, exchange, routing_key=group, arguments=arguments
                    ),
                )
                return
            except ChannelNotFoundEntity as exc:
                link.exchanges.discard(exchange)
                if attempt:
                    raise ChannelLayerError(
                        f"could not bind {queue!r} to {exchange!r}: {exc}"
                    ) from exc

    async def unbind(self, link: Link, queue: str, group: str) -> None:
        """Unbind queue from group; an exchange or queue already gone is fine."""
        groups = self.topology.groups
        with contextlib.suppress(ChannelNotFoundEntity):
            await link.call(
                f"unbinding group {group!r}",
                self.timeout,
                lambda ch: ch.queue_unbind(queue, groups, routing_key=group),
            )

    async def flush(self, link: Link, links: list[Link]) -> None:
        """Delete every queue of the prefix's catalog or this layer, and the exchanges."""
        catalog = self.topology.catalog_queue
        arguments = self.topology.catalog_arguments()
        try:
            # Declared first: reading a queue that does not exist would close the channel.
            await link.call(
                "declaring the catalog",
                self.timeout,
                lambda ch: ch.queue_declare(catalog, arguments=arguments),
            )
            named = await link.call(
                "reading the catalog", self.timeout, partial(_read_catalog, catalog)
            )
        except ChannelNotFoundEntity:
            named = set()  # nothing was ever catalogued (or a peer flushed just now)
        for queue in sorted(named | self.queues | {catalog}):
            await link.call("flushing", self.timeout, partial(_delete_queue, queue))
        self.queues.clear()
        self.ready.clear()
        self.catalogued.clear()
        topo = self.topology
        for exchange in (topo.groups, topo.dead_letters):
            await link.call("flushing", self.timeout, partial(_delete_exchange, exchange))
        for other in links:
            other.exchanges.clear()

    async def remove_idle(self, link: Link, inbox: str | None, figures: str) -> None:
        """Delete the inbox and the figures queue; normal channel queues stay (x-expires
        removes them).

        Another process may have bound a normal channel's queue to a group, or may be
        about to send to it; deleting it here would drop those memberships, which this
        layer cannot see (it knows only its own group_adds).
        """
        if inbox is not None:
            await link.call("deleting the inbox", self.timeout, partial(_delete_queue, inbox))
        if figures in self.queues:
            await link.call("deleting the figures", self.timeout, partial(_delete_queue, figures))

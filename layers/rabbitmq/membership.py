"""Group membership operations: bindings for delivery, records for listing and lapsing.

group_add binds the member's queue to the group exchange (a process inbox is bound
once per group, however many of its channels join) and appends a record to the
group's registry queue (registry.py). A member that is another process's local
channel is announced to that process first, by a control message on its inbox.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from aiormq.exceptions import ChannelNotFoundEntity

from . import registry, wire
from .connections import Link, Outcome
from .topology import client_of

if TYPE_CHECKING:
    from .layer import RabbitMQChannelLayer

__all__ = ["Memberships"]

_MAX_COMPACT_INTERVAL = 30.0


class Memberships:
    """group_add, group_discard and group_channels of one layer."""

    def __init__(self, layer: RabbitMQChannelLayer) -> None:
        self.layer = layer
        self._compacted: dict[str, float] = {}
        self._interval = min(layer.group_expiry / 2, _MAX_COMPACT_INTERVAL)

    async def add(self, group: str, channel: str) -> None:
        """Add or renew channel's membership of group."""
        layer = self.layer
        topo, broker = layer.topology, layer.broker
        link = await layer.links.here()
        until = time.time() + layer.group_expiry
        if layer.owns(channel):
            await layer.inbox.ensure()
            if layer.inbox.add(group, channel, until):
                await broker.bind(link, layer.inbox.queue_name, topo.groups, group)
        elif "!" in channel:
            queue = topo.inbox_queue(client_of(channel))
            control = {
                wire.OP: wire.ADD,
                wire.GROUP: group,
                wire.CHANNEL: channel,
                wire.UNTIL: int(until * 1000),
            }
            # The owner learns of the member before any group message can reach it.
            if await link.publish(layer.timeout, "", queue, b"", control) is Outcome.RETURNED:
                layer.unroutable(channel)
                return
            await broker.bind(link, queue, topo.groups, group)
        else:
            queue = await broker.declare_channel(link, channel)
            await broker.bind(link, queue, topo.groups, group)
        await self._record(link, group, "add", channel)

    async def discard(self, group: str, channel: str) -> None:
        """Remove channel from group (a no-op for a non-member)."""
        layer = self.layer
        link = await layer.links.here()
        await self._record(link, group, "discard", channel)
        if layer.owns(channel):
            if layer.inbox.discard(group, channel):
                await layer.broker.unbind(link, layer.inbox.queue_name, group)
        elif "!" in channel:
            queue = layer.topology.inbox_queue(client_of(channel))
            control = {wire.OP: wire.DISCARD, wire.GROUP: group, wire.CHANNEL: channel}
            await link.publish(layer.timeout, "", queue, b"", control)  # gone: nothing to do
        else:
            queue = await layer.broker.declare_channel(link, channel)
            await layer.broker.unbind(link, queue, group)

    async def _record(self, link: Link, group: str, op: str, channel: str) -> None:
        layer = self.layer
        queue = layer.topology.registry_queue(group)
        await layer.broker.catalogue(link, queue)
        await registry.record(
            link, layer.timeout, queue, layer.topology.registry_arguments(), op, channel
        )

    async def compact(self, link: Link, group: str) -> list[str]:
        """The live members of group (and unbind normal channels whose membership lapsed)."""
        layer = self.layer
        queue = layer.topology.registry_queue(group)
        await layer.broker.catalogue(link, queue)
        try:
            fold = await registry.compact(
                link, layer.timeout, queue, layer.topology.registry_arguments(), layer.group_expiry
            )
        except ChannelNotFoundEntity:  # deleted meanwhile (a peer's flush): no members
            return []
        self._compacted[group] = time.monotonic()
        for channel in fold.lapsed:
            if "!" not in channel:  # a process drops its own lapsed members itself
                queue = await layer.broker.declare_channel(link, channel)
                await layer.broker.unbind(link, queue, group)
        return sorted(fold.members, key=fold.members.__getitem__)

    def maybe_compact(self, link: Link, group: str) -> None:
        """Compact group in the background if it has not been for a while.

        This is what lets memberships of normal channels lapse (nobody else would unbind
        them), and it keeps the records short; off the group_send's path.
        """
        last = self._compacted.get(group)
        if last is None or time.monotonic() - last > self._interval:
            self._compacted[group] = time.monotonic()
            self.layer.spawn(self.compact(link, group))

    def forget(self) -> None:
        """After flush(): every group starts afresh."""
        self._compacted.clear()

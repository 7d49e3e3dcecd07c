"""Group membership operations: bindings for delivery, records for listing and lapsing.

group_add binds the member's queue to the group exchange (a process inbox is bound
once per group, however many of its channels join) and appends a record to the
group's registry queue (registry.py). A member that is another process's local
channel is announced to that process first, by a control message on its inbox.
"""

from __future__ import annotations

import asyncio
import time

from aiormq.exceptions import ChannelNotFoundEntity

from ..exceptions import ChannelFull
from . import registry, wire
from .connections import Link, Outcome
from .parts import LayerParts
from .topology import client_of

__all__ = ["Memberships", "inbox_full"]

_MAX_COMPACT_INTERVAL = 30.0


def inbox_full(channel: str) -> ChannelFull:
    """The error for a message that the inbox of channel's process refused."""
    return ChannelFull(
        f"channel {channel!r}: the inbox of the process that receives it is full "
        "(it holds at most that layer's inbox_capacity messages: the process is not "
        "keeping up)"
    )


class Memberships:
    """group_add, group_discard and group_channels of one layer."""

    def __init__(self, layer: LayerParts) -> None:
        self.layer = layer
        self._compacted: dict[str, float] = {}
        self._interval = min(layer.group_expiry / 2, _MAX_COMPACT_INTERVAL)

    async def add(self, group: str, channel: str) -> None:
        """Add or renew channel's membership of group."""
        layer = self.layer
        topo, broker = layer.topology, layer.broker
        link = await layer.links.here()
        until = time.time() + layer.group_expiry
        await layer.inbox.ensure()  # its anchor keeps the group exchange (broker.py)
        if layer.owns(channel):
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
            outcome = await link.publish(layer.timeout, "", queue, b"", control)
            if outcome is Outcome.RETURNED:
                layer.unroutable(channel)
                return
            if outcome is Outcome.NACKED:
                raise inbox_full(channel)
            await broker.bind(link, queue, topo.groups, group)
        else:
            queue = await broker.declare_channel(link, channel)
            await broker.bind(link, queue, topo.groups, group)
        await self._record(link, group, "add", channel)

    async def discard(self, group: str, channel: str) -> None:
        """Remove channel from group (a no-op for a non-member)."""
        layer = self.layer
        link = await layer.links.here()
        await layer.inbox.ensure()  # its anchor keeps the group exchange (broker.py)
        await self._record(link, group, "discard", channel)
        if layer.owns(channel):
            if not layer.inbox.discard(group, channel):
                return  # another local member stays
            await layer.broker.unbind(link, layer.inbox.queue_name, group)
        elif "!" in channel:
            queue = layer.topology.inbox_queue(client_of(channel))
            control = {wire.OP: wire.DISCARD, wire.GROUP: group, wire.CHANNEL: channel}
            outcome = await link.publish(layer.timeout, "", queue, b"", control)
            if outcome is Outcome.NACKED:  # (RETURNED: the process is gone, nothing to do)
                raise inbox_full(channel)
        else:
            queue = await layer.broker.declare_channel(link, channel)
            await layer.broker.unbind(link, queue, group)
        await self.compact(link, group, delete_if_empty=True)

    async def leave_all(self) -> None:
        """At close(): this layer's channels leave their groups, which go if now empty.

        Their bindings go with the inbox; their records would otherwise list them, and
        keep the group's queue, until group_expiry.
        """
        layer = self.layer
        link = await layer.links.here()
        groups = layer.inbox.groups()
        # Published together: each still awaits its confirm (connections.py).
        await asyncio.gather(
            *(
                self._record(link, group, "discard", channel)
                for group in groups
                for channel in layer.inbox.live(group) or []
            )
        )
        for group in groups:
            await self.compact(link, group, delete_if_empty=True)

    async def _record(self, link: Link, group: str, op: str, channel: str) -> None:
        layer = self.layer
        queue = layer.topology.registry_queue(group)
        await layer.broker.catalogue(link, queue)
        await registry.record(
            link, layer.timeout, queue, layer.topology.registry_arguments(), op, channel
        )

    async def compact(self, link: Link, group: str, delete_if_empty: bool = False) -> list[str]:
        """The live members of group (and unbind normal channels whose membership lapsed).

        delete_if_empty: a member just left; with none left anywhere, nothing of the
        group stays on the broker.
        """
        layer = self.layer
        queue = layer.topology.registry_queue(group)
        await layer.broker.catalogue(link, queue)
        arguments = layer.topology.registry_arguments()
        try:
            fold = await registry.compact(
                link, layer.timeout, queue, arguments, layer.group_expiry, delete_if_empty
            )
        except ChannelNotFoundEntity:  # deleted meanwhile (a peer's flush): no members
            return []
        if fold.deleted:
            layer.broker.ready.discard(queue)
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
        now = time.monotonic()
        last = self._compacted.get(group)
        if last is None:
            # Not at the first group_send: the group's records were just written by its
            # group_adds, and rewriting them all (one publish per member) would compete
            # with the deliveries. Nothing can lapse before group_expiry anyway.
            self._compacted[group] = now
        elif now - last > self._interval:
            self._compacted[group] = now
            self.layer.spawn(self.compact(link, group))

    def forget(self) -> None:
        """After flush(): every group starts afresh."""
        self._compacted.clear()

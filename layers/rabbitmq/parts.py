"""What the layer's helpers (membership.py, normal.py) use of RabbitMQChannelLayer.

They are typed against this Protocol rather than the layer class, so that layer.py,
which builds them, is the only module that imports the other.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, Protocol

from ..codec import Codec
from ..counters import Counters
from ..local import LocalChannels
from .broker import Broker
from .connections import Links
from .inbox import Inbox
from .topology import Topology

__all__ = ["LayerParts"]


class LayerParts(Protocol):
    """The parts of a RabbitMQChannelLayer that its helpers share."""

    topology: Topology
    broker: Broker
    links: Links
    inbox: Inbox
    local: LocalChannels
    counters: Counters
    codec: Codec
    prefix: str
    client_id: str
    dropped_unroutable: int
    expiry: float
    group_expiry: float
    timeout: float
    prefetch_count: int

    @property
    def closed(self) -> bool:
        """True once the layer is closed."""

    def _check_open(self) -> None:
        """Raise ChannelLayerClosed if the layer is closed."""

    def owns(self, channel: str) -> bool:
        """True for this layer's own process-local channels."""

    def spawn(self, coro: Coroutine[Any, Any, Any], waits_only: bool = False) -> asyncio.Task[Any]:
        """Run coro as a background task of the layer (waits_only: cancel it at once)."""

    def unroutable(self, channel: str) -> None:
        """Count and log a message the broker could not route."""

    async def republish(self, channel: str, payload: bytes) -> None:
        """Put a taken message back on its normal channel's queue."""

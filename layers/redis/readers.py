"""What the inbox reader and the normal-channel fetchers share: held batches, back-off,
the non-consuming wait for a list's head, and the check that stops their loops.

They take the layer as a Reader, the Protocol of what they use of it, so that the
layer module, which starts them, is the only one that imports the other.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Protocol

from redis.asyncio.cluster import RedisCluster

from .connections import Connections
from .counting import SharedCounts

__all__ = ["Held", "Reader", "back_off", "retry_or_stop", "wait_nonempty"]

log = logging.getLogger("layers.redis")
_MAX_BACKOFF = 2.0
_HELD_CACHE_SIZE = 4096


class Held:
    """One reader's batch kept in Redis until acknowledged: its key, and the number of
    the last pop whose reply this reader got (-1: not known, so nothing is replayed)."""

    __slots__ = ("acked", "key")

    def __init__(self, key: str) -> None:
        self.key = key
        self.acked = -1

    @classmethod
    def of(cls, records: dict[str, Held], key: str) -> Held:
        """The record for key in records, made on first use (forgotten records just
        stop replays)."""
        held = records.get(key)
        if held is None:
            if len(records) >= _HELD_CACHE_SIZE:
                records.clear()
            held = records[key] = cls(key)
        return held

    def replied(self, number: int, task: asyncio.Future[Any]) -> None:
        """Done callback of pop number: the reply arrived, so its batch is ours."""
        if not task.cancelled() and task.exception() is None:
            self.acked = number


class Reader(Protocol):
    """What a reader's loop uses of a RedisChannelLayer."""

    connections: Connections
    shard_names: list[str]
    blocking_timeout: float
    counts: SharedCounts
    held: dict[str, Held]
    """Readers' unacknowledged batches, by key."""
    key_ttl_ms: int
    """How long Redis keeps a key after its last write (a held batch, a depth hash)."""

    @property
    def closed(self) -> bool:
        """True once the layer is closed."""


def retry_or_stop(layer: Reader) -> None:
    """Raise CancelledError if this task was asked to stop.

    A client library may turn a cancellation that lands mid-command into its own
    error, or swallow it and retry (redis-py's cluster client, seen at a loop's end
    in asyncio.run): every pass of a loop checks, or the task outlives close() and
    asyncio.run waits for it for ever.
    """
    task = asyncio.current_task()
    if layer.closed or (task is not None and task.cancelling()):
        raise asyncio.CancelledError


async def back_off(layer: Reader, what: str, shard: int, exc: Exception, backoff: float) -> float:
    """Stop if asked to; else log, wait backoff seconds, and return the next backoff."""
    retry_or_stop(layer)
    log.warning(
        "%s from %s failed (%s); retrying in %.2fs", what, layer.shard_names[shard], exc, backoff
    )
    await asyncio.sleep(backoff)
    return min(backoff * 2, _MAX_BACKOFF)


async def wait_nonempty(layer: Reader, shard: int, key: str) -> bytes | None:
    """Block until the list has a head; return it (None after the blocking timeout)."""
    clients = await layer.connections.here()
    client = clients.blocking(shard)
    if isinstance(client, RedisCluster):
        # Learning the slots (on first use, or after a failure) takes round trips of
        # its own: done before the check below, which must come last before the block.
        await client.initialize()
    # A cancel lost in a command's send (see retry_or_stop) must not start a block whose
    # connections close() has already dropped (a client just reconnects).
    retry_or_stop(layer)
    # Moving a list's head onto itself blocks until there is one, and takes nothing.
    block = layer.blocking_timeout
    head: bytes | None = await client.blmove(key, key, block, "LEFT", "LEFT")  # type: ignore[arg-type,assignment]
    return head

"""Redis clients per event loop, closed when their loop shuts down (layers/loops.py).

redis-py connections belong to the loop that opened them, so a layer used from several
loops (async_to_sync in threads) keeps one set of clients per loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from typing import Any, TypeGuard

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.connection import Connection

from ..loops import PerLoop
from .hosts import Shard
from .multiplex import Multiplexed, supported
from .scripts import SOURCES

__all__ = ["Clients", "Connections", "unlink_matching"]

log = logging.getLogger("layers.redis")
Client = Redis | RedisCluster

_REDROP_AFTER = 0.05
"""Seconds outwait() gives the tasks to end before it drops the connections again."""


class Clients:
    """The clients of one event loop: per shard, one for commands and one for blocking."""

    def __init__(self, shards: Sequence[Shard], command: dict[str, Any], blocking: dict[str, Any]):
        self._shards = shards
        self._options = (command, blocking)
        self._made: list[dict[int, Client]] = [{}, {}]
        self._helpers: list[Client] = []
        self._scripting: dict[int, Client | Multiplexed] = {}
        self._multiplex = supported()

    def _get(self, kind: int, shard: int) -> Client:
        client = self._made[kind].get(shard)
        if client is None:
            client, helpers = self._shards[shard].connect(self._options[kind])
            self._made[kind][shard] = client
            self._helpers += helpers
        return client

    def command(self, shard: int) -> Client:
        """The client for ordinary commands on shard."""
        return self._get(0, shard)

    def scripting(self, shard: int) -> Client | Multiplexed:
        """What runs the layer's scripts on shard: one pipelined connection, or (for a
        cluster, or a redis-py that Multiplexed was not tested with) the client itself."""
        runner = self._scripting.get(shard)
        if runner is not None:
            return runner
        client = self.command(shard)
        made = Multiplexed(client, SOURCES) if self._multiplex and _tcp(client) else None
        self._scripting[shard] = made or client
        return made or client

    def blocking(self, shard: int) -> Client:
        """The client for blocking commands, whose socket timeout exceeds the block."""
        return self._get(1, shard)

    async def interrupt(self) -> None:
        """Drop every open connection (ending blocked reads) but keep the clients."""
        await self._close_scripting()
        for client in [c for kind in self._made for c in kind.values()]:
            with contextlib.suppress(Exception):
                if isinstance(client, Redis):
                    await client.connection_pool.disconnect()
                else:
                    await client.aclose()

    async def _close_scripting(self) -> None:
        # A closed Multiplexed reconnects on its next use, so interrupt() keeps them.
        for runner in self._scripting.values():
            if isinstance(runner, Multiplexed):
                with contextlib.suppress(Exception):
                    await runner.aclose()

    async def aclose(self) -> None:
        """Close every client of this loop.

        Each client is forgotten only once closed: if the loop stops halfway (a close
        scheduled from another thread), the loop's shutdown finalizer closes the rest.
        """
        await self._close_scripting()
        self._scripting.clear()
        for kind in self._made:
            for shard, client in list(kind.items()):
                await _close_client(client)
                kind.pop(shard, None)
        while self._helpers:
            await _close_client(self._helpers[0])
            self._helpers.pop(0)


def _tcp(client: Client) -> TypeGuard[Redis]:
    """True for a client whose connections are TCP streams (plain, TLS or found through
    Sentinel), which Multiplexed takes over; a Unix socket's keep redis-py's own path."""
    return isinstance(client, Redis) and issubclass(
        client.connection_pool.connection_class, Connection
    )


async def unlink_matching(client: Client, pattern: str) -> None:
    """Remove every key matching pattern, in batches (SCAN: no KEYS, no long block)."""
    batch: list[Any] = []
    async for key in client.scan_iter(match=pattern, count=1000):
        batch.append(key)
        if len(batch) >= 500:
            await client.unlink(*batch)
            batch = []
    if batch:
        await client.unlink(*batch)


async def _close_client(client: Client) -> None:
    with contextlib.suppress(Exception):
        if isinstance(client, Redis):
            # A pool handed to Redis() is not closed with it unless asked.
            await client.aclose(close_connection_pool=True)
        else:
            await client.aclose()


class Connections(PerLoop[Clients]):
    """One Clients per event loop."""

    def __init__(
        self,
        shards: Sequence[Shard],
        command: dict[str, Any],
        blocking: dict[str, Any],
        on_loop: Callable[[], None] = lambda: None,
    ):
        async def make() -> Clients:
            on_loop()  # the first use in a loop
            return Clients(shards, command, blocking)

        super().__init__(make, Clients.aclose)

    async def outwait(self, tasks: list[asyncio.Task[Any]]) -> None:
        """Wait for tasks that read through this loop's clients, ending blocked reads.

        redis-py lets a blocked read finish before a cancel lands: dropping the
        connections ends a BLMOVE at once instead of after blocking_timeout. A
        connection still being made survives the drop, and redis-py may swallow the
        cancel meanwhile, so the drop repeats until the tasks end.
        """
        clients = self.current()
        pending = set(tasks)
        while pending:
            if clients is not None:
                await clients.interrupt()
            _, pending = await asyncio.wait(pending, timeout=_REDROP_AFTER)
        await asyncio.gather(*tasks, return_exceptions=True)  # their errors, retrieved

"""Redis clients per event loop, closed when their loop shuts down.

redis-py connections belong to the loop that opened them. A layer used from several
loops (async_to_sync in threads) keeps one set of clients per loop, and an async
generator registered with each loop closes that set during the loop's
shutdown_asyncgens(), which asyncio.run, asyncio.Runner and asgiref all call.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import weakref
from collections.abc import AsyncIterator, Sequence
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from .hosts import Shard

__all__ = ["Clients", "Connections"]

log = logging.getLogger("layers.redis")
Client = Redis | RedisCluster


class Clients:
    """The clients of one event loop: per shard, one for commands and one for blocking."""

    def __init__(self, shards: Sequence[Shard], command: dict[str, Any], blocking: dict[str, Any]):
        self._shards = shards
        self._options = (command, blocking)
        self._made: list[dict[int, Client]] = [{}, {}]
        self._helpers: list[Client] = []
        self._finalizer: AsyncIterator[None] | None = None

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

    def blocking(self, shard: int) -> Client:
        """The client for blocking commands, whose socket timeout exceeds the block."""
        return self._get(1, shard)

    async def interrupt(self) -> None:
        """Drop every open connection (ending blocked reads) but keep the clients."""
        for client in [c for kind in self._made for c in kind.values()]:
            with contextlib.suppress(Exception):
                if isinstance(client, Redis):
                    await client.connection_pool.disconnect()
                else:
                    await client.aclose()

    async def aclose(self) -> None:
        """Close every client of this loop.

        Each client is forgotten only once closed: if the loop stops halfway (a close
        scheduled from another thread), the loop's shutdown finalizer closes the rest.
        """
        for kind in self._made:
            for shard, client in list(kind.items()):
                await _close_client(client)
                kind.pop(shard, None)
        while self._helpers:
            await _close_client(self._helpers[0])
            self._helpers.pop(0)


async def _close_client(client: Client) -> None:
    with contextlib.suppress(Exception):
        if isinstance(client, Redis):
            # A pool handed to Redis() is not closed with it unless asked.
            await client.aclose(close_connection_pool=True)
        else:
            await client.aclose()


async def _close_at_loop_shutdown(clients: Clients) -> AsyncIterator[None]:
    try:
        yield
    finally:
        await clients.aclose()


class Connections:
    """One Clients per event loop."""

    def __init__(self, shards: Sequence[Shard], command: dict[str, Any], blocking: dict[str, Any]):
        self._shards = shards
        self._command = command
        self._blocking = blocking
        self._per_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Clients] = (
            weakref.WeakKeyDictionary()
        )
        self._lock = threading.Lock()

    async def here(self) -> Clients:
        """The clients of the running loop, made on first use."""
        loop = asyncio.get_running_loop()
        clients = self._per_loop.get(loop)
        if clients is None:
            with self._lock:
                clients = self._per_loop[loop] = Clients(
                    self._shards, self._command, self._blocking
                )
            finalizer = _close_at_loop_shutdown(clients)
            await finalizer.__anext__()  # registers it with this loop's shutdown_asyncgens
            clients._finalizer = finalizer
        return clients

    def current(self) -> Clients | None:
        """The running loop's clients, if it has made any."""
        return self._per_loop.get(asyncio.get_running_loop())

    async def aclose(self) -> None:
        """Close this loop's clients now, and other live loops' clients in their loop."""
        here = asyncio.get_running_loop()
        with self._lock:
            per_loop = list(self._per_loop.items())
            self._per_loop.clear()
        for loop, clients in per_loop:
            if loop is here:
                await clients.aclose()
            elif loop.is_running() and not loop.is_closed():
                # Wait for it: a close cut short when that loop stops would leave
                # clients (a RedisCluster marks itself closed before it is) open.
                # Bounded, in case that loop is itself waiting on this one.
                done = asyncio.run_coroutine_threadsafe(clients.aclose(), loop)
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(asyncio.wrap_future(done), 5)

"""One robust AMQP connection per event loop, and publishing that survives an outage.

aio-pika connections belong to the loop that opened them. A layer used from several
loops (async_to_sync in threads, asyncio.run per call) keeps one Link per loop, closed
when that loop shuts down (layers/loops.py).

Every call that talks to the broker goes through Link.call: while the connection is
down it waits for aio-pika's reconnect, at most ``timeout`` seconds in all, then raises
ChannelLayerConnectionError. A channel the broker closed (a missing exchange after a
peer's flush, mismatched queue arguments) is reopened before the next call.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import secrets
import ssl
from collections.abc import Awaitable, Callable
from enum import Enum
from typing import Any, TypeVar

import aio_pika
import aiormq
from aio_pika.abc import AbstractRobustChannel, AbstractRobustConnection
from aiormq.abc import AbstractChannel
from aiormq.exceptions import (
    AMQPChannelError,
    AMQPConnectionError,
    AMQPError,
    ChannelInvalidStateError,
    DeliveryError,
    PublishError,
)

from ..exceptions import ChannelLayerConnectionError
from ..loops import PerLoop

__all__ = ["Link", "Links", "Outcome"]

log = logging.getLogger("layers.rabbitmq")
T = TypeVar("T")
_RETRY_PAUSE = 0.05
_RESTORE_POLLS = 50
# aio-pika waits 5 s between reconnect attempts by default: long next to the bounded
# wait of a send during an outage (connect_timeout, 10 s by default).
_RECONNECT = 1.0
_TRANSIENT: tuple[type[BaseException], ...] = (
    AMQPConnectionError,
    ChannelInvalidStateError,
    ConnectionError,
    OSError,
    asyncio.TimeoutError,
)

_CONNECT_ERRORS: tuple[type[BaseException], ...] = (*_TRANSIENT, AMQPError)


class Outcome(Enum):
    """What the broker said about a mandatory, confirmed publish."""

    ACKED = "acked"  # queued on every queue it was routed to
    NACKED = "nacked"  # a queue refused it (x-overflow: reject-publish: full)
    RETURNED = "returned"  # no queue matched: unroutable


class Link:
    """One event loop's robust connection and its publishing channel (with confirms)."""

    def __init__(self, connection: AbstractRobustConnection, channel: AbstractRobustChannel):
        self.connection = connection
        self.channel = channel
        self.loop = asyncio.get_running_loop()
        # Message ids unique across processes: a receiver that gets a redelivery (its
        # ack was lost with a connection) recognises a message it already delivered.
        self._id_prefix = secrets.token_hex(8)
        self._ids = itertools.count()
        self.closed = False
        self.exchanges: set[str] = set()  # declared on this connection since it connected

    async def _underlay(self) -> AbstractChannel:
        # A channel the broker closed (a channel error) is restored by aio-pika itself,
        # under its own lock; reopening it here as well would race that restore.
        for _ in range(_RESTORE_POLLS):
            await self.channel.ready()
            underlay = await self.channel.get_underlay_channel()
            if not underlay.is_closed:
                return underlay
            await asyncio.sleep(_RETRY_PAUSE / 5)
        raise ChannelInvalidStateError("the publishing channel was not restored")

    async def call(
        self, what: str, limit: float, op: Callable[[AbstractChannel], Awaitable[T]]
    ) -> T:
        """Run op on the publishing channel, riding out a reconnect for up to limit seconds."""
        deadline = self.loop.time() + limit
        while True:
            remaining = deadline - self.loop.time()
            try:
                async with asyncio.timeout(max(remaining, 0.001)):
                    return await op(await self._underlay())
            except (DeliveryError, AMQPChannelError):
                raise
            except _TRANSIENT as exc:
                if self.closed:
                    raise ChannelLayerConnectionError(f"{what}: the connection is closed") from exc
                if self.loop.time() >= deadline:
                    raise ChannelLayerConnectionError(
                        f"{what}: RabbitMQ did not answer within {limit:g}s ({exc!r})"
                    ) from exc
                log.debug("%s failed (%r); waiting for the connection", what, exc)
                await asyncio.sleep(_RETRY_PAUSE)

    async def publish(
        self,
        limit: float,
        exchange: str,
        routing_key: str,
        body: bytes,
        headers: dict[str, Any],
        expiration: int | None = None,
    ) -> Outcome:
        """Publish mandatory and wait for the broker's confirm."""
        properties = aiormq.spec.Basic.Properties(
            headers=headers,
            message_id=f"{self._id_prefix}.{next(self._ids)}",
            expiration=None if expiration is None else str(max(expiration, 0)),
        )

        async def op(channel: AbstractChannel) -> Outcome:
            try:
                await channel.basic_publish(
                    body,
                    exchange=exchange,
                    routing_key=routing_key,
                    properties=properties,
                    mandatory=True,
                )
            except PublishError:
                return Outcome.RETURNED
            except DeliveryError:
                return Outcome.NACKED
            return Outcome.ACKED

        return await self.call(f"publishing to {exchange or routing_key!r}", limit, op)

    async def aclose(self) -> None:
        """Close the connection (and so every channel and consumer on it)."""
        self.closed = True
        with contextlib.suppress(Exception):
            await self.connection.close()


class Links(PerLoop[Link]):
    """One Link per event loop, made on first use."""

    def __init__(
        self,
        url: str,
        ssl_context: ssl.SSLContext | None,
        timeout: float,
        on_connect: Callable[[Link], Awaitable[None]],
        on_reconnect: Callable[[Link], Awaitable[None]],
        on_loop_close: Callable[[Link], Awaitable[None]],
    ) -> None:
        super().__init__(self._connect, Link.aclose, self._loop_ended)
        self.url = url
        self.ssl_context = ssl_context
        self.timeout = timeout
        self._on_connect = on_connect
        self._on_reconnect = on_reconnect
        self._on_loop_close = on_loop_close

    async def _connect(self) -> Link:
        options: dict[str, Any] = {"timeout": self.timeout, "reconnect_interval": _RECONNECT}
        if self.ssl_context is not None:
            options["ssl_context"] = self.ssl_context
        try:
            connection = await aio_pika.connect_robust(self.url, **options)
        except _CONNECT_ERRORS as exc:
            raise ChannelLayerConnectionError(
                f"could not connect to RabbitMQ at {_redact(self.url)}: {exc!r}"
            ) from exc
        try:
            channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
        except BaseException:
            # A channel that fails to open (a link that stalls now) must not leave the
            # connection behind: it would reconnect forever and leak its socket.
            with contextlib.suppress(Exception):
                await connection.close()
            raise
        link = Link(connection, channel)

        async def reconnected(*_: Any) -> None:
            await self._on_reconnect(link)

        connection.reconnect_callbacks.add(reconnected)
        try:
            await self._on_connect(link)
        except BaseException:
            await link.aclose()
            raise
        return link

    async def _loop_ended(self, link: Link) -> None:
        try:
            await self._on_loop_close(link)
        finally:
            await link.aclose()


def _redact(url: str) -> str:
    """url without its password."""
    scheme, sep, rest = url.partition("://")
    creds, at, host = rest.rpartition("@")
    if not at:
        return url
    user = creds.partition(":")[0]
    return f"{scheme}{sep}{user}:***@{host}"

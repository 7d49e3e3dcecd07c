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
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable
from enum import Enum
from typing import Any, TypeVar, cast

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

from ..exceptions import ChannelLayerClosed, ChannelLayerConnectionError
from ..loops import PerLoop
from ..redact import redact, redact_url
from .quiet import first_connect

__all__ = ["Link", "Links", "Outcome", "closed_under", "quietly"]

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

# A connection whose reader is gone closes at once; a live one waits this long at most
# for the broker's close-ok.
_CLOSE_LIMIT = 2.0

_CONNECT_ERRORS: tuple[type[BaseException], ...] = (*_TRANSIENT, AMQPError)


# aiormq warns "Closing channel ... because RPC call ... cancelled" whenever a call on an
# open channel is cancelled. This layer cancels its calls on purpose: asyncio.run ending
# a loop cancels its background calls, close() during a connect cancels the connect.
_CANCELLED_RPC = (
    "Closing channel %r because RPC call %s cancelled",
    "Closing channel %r locally because RPC call %s cancelled before Channel.Open was sent",
)
_OURS: weakref.WeakSet[object] = weakref.WeakSet()  # this module's aiormq connections


class _OurCancelsAreDebug(logging.Filter):
    """Demote aiormq's warning about a cancelled call to debug, on this layer's connections."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if (
            record.msg in _CANCELLED_RPC
            and isinstance(args, tuple)
            and args
            and getattr(args[0], "connection", None) in _OURS
        ):
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return True


logging.getLogger("aiormq.channel").addFilter(_OurCancelsAreDebug())


def _own(connection: AbstractRobustConnection) -> None:
    """Note connection's current aiormq connection as this layer's."""
    transport = connection.transport
    if transport is not None:
        _OURS.add(transport.connection)


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
        self._underlay_seen: AbstractChannel | None = None

    async def _underlay(self) -> AbstractChannel:
        underlay = self._underlay_seen
        if underlay is not None and not underlay.is_closed and self.channel.is_initialized:
            return underlay  # still the open channel of the last call: no wait needed
        # A channel the broker closed (a channel error) is restored by aio-pika itself,
        # under its own lock; reopening it here as well would race that restore.
        for _ in range(_RESTORE_POLLS):
            await self.channel.ready()
            underlay = await self.channel.get_underlay_channel()
            if not underlay.is_closed:
                self._underlay_seen = underlay
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
            except (asyncio.CancelledError, Exception) as exc:
                closed_under(self.closed, what, exc)
                raise

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
                # wait=False: the channel's lock is let go once the frames are queued
                # for the writer rather than once they are written, so concurrent
                # publishes are in flight together. Each still awaits its own confirm,
                # which a lost connection fails: an error, never a silent loss.
                await cast(aiormq.Channel, channel).basic_publish(  # (wait is not in the ABC)
                    body,
                    exchange=exchange,
                    routing_key=routing_key,
                    properties=properties,
                    mandatory=True,
                    wait=False,
                )
            except asyncio.CancelledError:
                _orphan_confirms(channel)
                raise
            except PublishError:
                return Outcome.RETURNED
            except DeliveryError:
                return Outcome.NACKED
            return Outcome.ACKED

        return await self.call(f"publishing to {exchange or routing_key!r}", limit, op)

    def usable(self) -> bool:
        """True if the connection still runs its reader and writer.

        False at a loop's shutdown under asyncio.run, which has cancelled them (and
        aio-pika's reconnect task) by then: a call waiting for the broker would wait
        for ever.
        """
        transport = self.connection.transport
        return not self.closed and transport is not None and transport.connection.is_opened

    async def aclose(self) -> None:
        """Close the connection (and so every channel and consumer on it)."""
        self.closed = True
        with contextlib.suppress(Exception):
            async with asyncio.timeout(_CLOSE_LIMIT):
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
        self._closing = False

    async def aclose(self) -> None:
        """Close every loop's link; a connect under way closes its own when it is done."""
        self._closing = True
        await super().aclose()

    async def _connect(self) -> Link:
        link = await self._open()
        if self._closing:  # close() came while this connected: nothing may outlive it
            await link.aclose()
            raise ChannelLayerClosed("the layer was closed while it connected to RabbitMQ")

        async def reconnected(*_: Any) -> None:
            _own(link.connection)
            await self._on_reconnect(link)

        link.connection.reconnect_callbacks.add(reconnected)
        try:
            await self._on_connect(link)
        except BaseException:
            await link.aclose()
            raise
        return link

    @contextlib.asynccontextmanager
    async def spare(self) -> AsyncIterator[Link]:
        """A link of its own for one job, closed after it.

        For the job a loop's own link can no longer do at that loop's shutdown.
        """
        link = await self._open()
        try:
            yield link
        finally:
            await link.aclose()

    async def _open(self) -> Link:
        options: dict[str, Any] = {"timeout": self.timeout, "reconnect_interval": _RECONNECT}
        if self.ssl_context is not None:
            options["ssl_context"] = self.ssl_context
        try:
            with first_connect():
                connection = await aio_pika.connect_robust(self.url, **options)
        except _CONNECT_ERRORS as exc:
            raise ChannelLayerConnectionError(
                f"could not connect to RabbitMQ at {redact_url(self.url)}: {redact(repr(exc))}"
            ) from exc
        _own(connection)
        try:
            channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
        except BaseException:
            # A channel that fails to open (a link that stalls now) must not leave the
            # connection behind: it would reconnect forever and leak its socket.
            with contextlib.suppress(Exception):
                await connection.close()
            raise
        return Link(connection, channel)

    async def _loop_ended(self, link: Link) -> None:
        try:
            await self._on_loop_close(link)
        finally:
            await link.aclose()


async def quietly(awaitable: Awaitable[Any]) -> None:
    """Await a clean-up (an ack, a close) whose failure changes nothing: logged at debug."""
    try:
        await awaitable
    except Exception as exc:
        log.debug("ignored: %r", exc)


def closed_under(closed: bool, what: str, exc: BaseException) -> None:
    """Raise ChannelLayerClosed instead of exc if closing the connection caused it.

    Closing a connection fails the calls in flight on it (CancelledError, or a bare
    Exception from aiormq 7); their callers were not cancelled and must hear why.
    """
    if not closed:
        return
    if isinstance(exc, asyncio.CancelledError):
        task = asyncio.current_task()
        if task is None or task.cancelling():
            return  # the caller's own cancel
    raise ChannelLayerClosed(
        f"{what}: the connection was closed under it (the layer's close(), or its loop's end)"
    ) from exc


def _orphan_confirms(channel: AbstractChannel) -> None:
    """Mark the pending confirms of a channel whose publisher was cancelled as nobody's.

    The connection's close rejects them later, and asyncio would report each one as a
    "Future exception was never retrieved" on stderr.
    """
    for confirmation in list(getattr(channel, "confirmations", {}).values()):
        if isinstance(confirmation, asyncio.Future):
            confirmation.add_done_callback(_retrieve)


def _retrieve(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()

"""RabbitMQChannelLayer: channels as queues, groups as exchange bindings, over aio-pika.

* A normal channel (no '!') is a real queue, ``<prefix>.c.<name>``, bounded with
  ``x-max-length`` and ``x-overflow: reject-publish``: a publisher confirm that comes
  back as a nack is ChannelFull. Any process can consume it (normal.py).
* Each layer instance has one inbox queue, ``<prefix>.p.<client id>``, for its
  process-local channels; it is deleted by close() and lapses (``x-expires``) soon after
  its process dies (inbox.py). A send to our own process-local channel goes straight
  into the local buffers, where its per-channel capacity is exact. A send to another
  process's channel is published to that inbox, and capacity is checked by the receiver.
* A group message is published once to ``<prefix>.g`` with the group as routing key;
  the broker copies it to every inbox with members and every normal channel in it.
* Everything is published mandatory with confirms. A returned message (no such queue:
  the process is gone) is counted as ``dropped_unroutable`` and logged, never reported
  as delivered. Expiry is a per-queue TTL plus a deadline check on receive; a message
  the broker expires is dead-lettered back to its sender's inbox, which counts it.
* flush() deletes what this layer declared (tracked, no management plugin needed).
"""

from __future__ import annotations

import asyncio
import logging
import math
import ssl
import time
from collections.abc import Coroutine
from functools import partial
from typing import Any
from urllib.parse import urlsplit

from aiormq.exceptions import AMQPChannelError, ChannelNotFoundEntity

from ..base import ChannelLayer, GroupSendResult
from ..exceptions import ChannelFull, ConfigError
from ..local import LocalChannels
from . import wire
from .broker import Broker
from .connections import Link, Links, Outcome
from .inbox import Inbox
from .membership import Memberships
from .normal import NormalReceivers
from .topology import Topology, client_of

__all__ = ["RabbitMQChannelLayer"]

# What aiormq (and aio-pika's robust connection) read from an AMQP URL's query; a key
# that is neither theirs nor ours is a typo, which they would ignore without a word.
_CLIENT_URL_OPTIONS = frozenset(
    {"auth", "cadata", "cafile", "capath", "certfile", "heartbeat", "keyfile", "name"}
    | {"no_verify_ssl", "timeout", "fail_fast", "reconnect_interval"}
)
log = logging.getLogger("layers.rabbitmq")
DEFAULT_URL = "amqp://guest:guest@127.0.0.1:5672/"


def _positive(name: str, value: object, kind: type = float) -> Any:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < math.inf:
        raise ConfigError(f"{name} must be a positive number, got {value!r}")
    if kind is int and not isinstance(value, int):
        raise ConfigError(f"{name} must be a whole number, got {value!r}")
    return kind(value)


def _resolve_url(host: object, url: object) -> str:
    if host is not None and url is not None:
        raise ConfigError("give either host or url, not both")
    chosen = url if url is not None else host
    if chosen is None:
        return DEFAULT_URL
    if not isinstance(chosen, str) or not chosen:
        raise ConfigError(f"host/url must be a non-empty str, got {chosen!r}")
    if "://" not in chosen:
        return f"amqp://guest:guest@{chosen}/"
    scheme = urlsplit(chosen).scheme
    if scheme not in ("amqp", "amqps"):
        raise ConfigError(f"a RabbitMQ URL starts with amqp:// or amqps://, got {chosen!r}")
    return chosen


class RabbitMQChannelLayer(ChannelLayer):
    """Channel layer over RabbitMQ (aio-pika, robust per-loop connections)."""

    def __init__(
        self,
        *,
        host: str | None = None,
        url: str | None = None,
        ssl_context: ssl.SSLContext | None = None,
        prefetch_count: int = 100,
        connect_timeout: float = 10.0,
        **options: Any,
    ) -> None:
        super().__init__(**options)
        self.url = _resolve_url(host, url)
        if ssl_context is not None and not isinstance(ssl_context, ssl.SSLContext):
            raise ConfigError(f"ssl_context must be an ssl.SSLContext, got {ssl_context!r}")
        self.prefetch_count: int = _positive("prefetch_count", prefetch_count, int)
        self.timeout: float = _positive("connect_timeout", connect_timeout)
        self.topology = Topology(self.prefix, self.expiry, self.group_expiry)
        self.local = LocalChannels(self.counters, sweep_interval=min(self.expiry, 30.0) / 2)
        self.links = Links(
            self.url,
            ssl_context,
            self.timeout,
            self._on_connect,
            self._on_reconnect,
            self._on_loop_close,
        )
        self.inbox = Inbox(self)
        self.normal = NormalReceivers(self)
        self.dropped_unroutable = 0
        self.broker = Broker(self.topology, self.timeout, self.capacity_rules)
        self.memberships = Memberships(self)
        self._tasks: set[asyncio.Task[Any]] = set()

    @classmethod
    def from_url(cls, url: str, **overrides: Any) -> RabbitMQChannelLayer:
        """A layer from amqp:// or amqps://; our options in the query, the rest kept."""
        from ..config import options_from_query

        base, _, query = url.partition("?")
        known = cls.known_options()
        ours, theirs = {}, []
        for part in filter(None, query.split("&")):
            key = part.partition("=")[0]
            if key in known:
                ours.update(options_from_query(part))
            elif key in _CLIENT_URL_OPTIONS:
                theirs.append(part)
            else:
                raise ConfigError(
                    f"unknown option {key!r} in the URL query: not a layer option "
                    f"({', '.join(sorted(known))}) nor one of aiormq's or aio-pika's "
                    f"({', '.join(sorted(_CLIENT_URL_OPTIONS))})"
                )
        full = base + ("?" + "&".join(theirs) if theirs else "")
        return cls(url=full, **{**ours, **overrides})

    # -- helpers -------------------------------------------------------------------------

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        """Run coro in the background of the running loop, logging its failure."""
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("background task failed: %r", task.exception())

    async def _on_connect(self, link: Link) -> None:
        link.exchanges.clear()

    async def _on_loop_close(self, link: Link) -> None:
        # Acks still owed for messages receivers took go out before the connection
        # closes; buffered, untaken ones go back to the queue.
        await self.normal.stop_here()
        if self.inbox.hosted_on(link.loop) and not self.closed:
            # Receivers in other loops may be waiting on process-local channels: move
            # the inbox consumer to a loop that lives on (its unacked deliveries are
            # requeued by the broker when this connection closes).
            self.inbox.release()
            for other in self.links.all():
                if other.loop is not link.loop and other.loop.is_running():
                    asyncio.run_coroutine_threadsafe(self.inbox.ensure(), other.loop)
                    break

    async def _on_reconnect(self, link: Link) -> None:
        # The broker may have restarted: declare again what this loop relies on.
        link.exchanges.clear()
        self.broker.ready.clear()
        if self.inbox.hosted_on(link.loop):
            await self.inbox.bind_all(link)

    async def republish(self, channel: str, payload: bytes) -> None:
        """Put a message a receiver handed back at the end of its normal channel's queue."""
        link = await self.links.here()
        queue = self.topology.channel_queue(channel)
        outcome = await link.publish(self.timeout, "", queue, payload, self._headers())
        if outcome is not Outcome.ACKED:
            self.counters.requeue_failed += 1
            log.error("could not give a message of %r back to its queue: %s", channel, outcome)

    def unroutable(self, channel: str) -> None:
        """Count and log a message no queue would take (its process is gone)."""
        self.dropped_unroutable += 1
        log.warning(
            "dropped a message for %r: no such queue (its process is gone); "
            "counted as dropped_unroutable",
            channel,
        )

    def _headers(self, **extra: Any) -> dict[str, Any]:
        return {
            wire.SENDER: self.client_id,
            wire.DEADLINE: wire.deadline_header(self.expiry),
            **extra,
        }

    # -- the transport ---------------------------------------------------------------------

    async def _send(self, channel: str, payload: bytes) -> None:
        capacity = self.capacity_rules(channel)
        if self.owns(channel):
            deadline = time.monotonic() + self.expiry
            if not self.local.put(channel, payload, deadline, capacity):
                raise ChannelFull(f"channel {channel!r} is at its capacity of {capacity} messages")
            return
        link = await self.links.here()
        if not self.inbox.running():
            await self.inbox.ensure()  # expired sends come back to it and are counted
        if "!" in channel:
            queue = self.topology.inbox_queue(client_of(channel))
            headers = self._headers(**{wire.CHANNEL: channel})
            outcome = await link.publish(self.timeout, "", queue, payload, headers)
        else:
            queue = await self.broker.declare_channel(link, channel)
            outcome = await link.publish(self.timeout, "", queue, payload, self._headers())
            if outcome is Outcome.RETURNED:
                # Deleted under us (a peer's flush, x-expires): declare again, once.
                self.broker.ready.discard(queue)
                queue = await self.broker.declare_channel(link, channel)
                outcome = await link.publish(self.timeout, "", queue, payload, self._headers())
        if outcome is Outcome.NACKED:
            raise ChannelFull(f"channel {channel!r} is at its capacity of {capacity} messages")
        if outcome is Outcome.RETURNED:
            self.unroutable(channel)

    async def _receive(self, channel: str) -> bytes:
        self.local.maybe_sweep()
        if "!" in channel:
            self.require_own(channel)
            if not self.inbox.running():
                await self.inbox.ensure()
            return await self.local.get(channel)
        on_wait = partial(self.normal.ensure, channel)
        while True:
            payload = await self.local.get(channel, on_wait)
            if await self.normal.taken(channel, payload):
                return payload

    async def _new_channel(self, name: str) -> None:
        await self.inbox.ensure()

    async def _group_add(self, group: str, channel: str) -> None:
        await self.memberships.add(group, channel)

    async def _group_discard(self, group: str, channel: str) -> None:
        await self.memberships.discard(group, channel)

    async def _group_send(self, group: str, payload: bytes) -> GroupSendResult:
        link = await self.links.here()
        if not self.inbox.running():
            await self.inbox.ensure()
        self.memberships.maybe_compact(link, group)
        headers = self._headers(**{wire.GROUP: group})
        try:
            outcome = await link.publish(
                self.timeout, self.topology.groups, group, payload, headers
            )
        except ChannelNotFoundEntity:
            link.exchanges.discard(self.topology.groups)
            return 0, 0  # no exchange: nobody ever joined a group (or all left)
        if outcome is Outcome.RETURNED:
            return 0, 0  # no member anywhere
        if outcome is Outcome.NACKED:
            return 0, 1  # at least one normal channel in the group was full
        return 1, 0

    async def _group_channels(self, group: str) -> list[str]:
        return await self.memberships.compact(await self.links.here(), group)

    async def _flush(self) -> None:
        # A compaction running now would hit the queues being deleted (and a channel
        # error closes the channel every call shares): stop this loop's first.
        here = asyncio.get_running_loop()
        mine = [t for t in self._tasks if t.get_loop() is here and not t.done()]
        for task in mine:
            task.cancel()
        await asyncio.gather(*mine, return_exceptions=True)
        self.local.clear()
        self.inbox.clear()
        watched = self.normal.watched()
        await self.normal.stop_all(restart=False)
        link = await self.links.here()
        await self.broker.flush(link, self.links.all())
        self.memberships.forget()
        if self.inbox.declared:
            name = self.inbox.queue_name
            await link.call("flushing", self.timeout, lambda ch: ch.queue_purge(name))
            await self.inbox.bind_all(link)
        for channel in watched:
            if self.local.waiting(channel):
                self.normal.ensure(channel)

    async def _close(self) -> None:
        self.local.close()
        try:
            await self.normal.stop_all()
            await self.inbox.stop()
            if self.inbox.declared or self.broker.queues:
                inbox = self.inbox.queue_name if self.inbox.declared else None
                await self.broker.remove_idle(await self.links.here(), inbox)
        except (AMQPChannelError, OSError, ConnectionError) as exc:
            log.warning("closing %s: %r", type(self).__name__, exc)
        finally:
            for task in list(self._tasks):
                task.cancel()
            await self.links.aclose()

    def _stats(self) -> dict[str, Any]:
        return {
            **self.local.snapshot(),
            "dropped_unroutable": self.dropped_unroutable,
            "inbox": self.inbox.queue_name,
        }

"""RabbitMQChannelLayer: channels as queues, groups as exchange bindings, over aio-pika.

* A normal channel (no '!') is a real queue, ``<prefix>:c:<name>``, bounded with
  ``x-max-length`` and ``x-overflow: reject-publish``: a publisher confirm that comes
  back as a nack is ChannelFull. Any process can consume it (normal.py).
* Each layer instance has one inbox queue, ``<prefix>:p:<client id>``, for its
  process-local channels; it is deleted by close() and lapses (``x-expires``) soon after
  its process dies (inbox.py). A send to our own process-local channel goes straight
  into the local buffers, where its per-channel capacity is exact. A send to another
  process's channel is published to that inbox, and capacity is checked by the receiver;
  the inbox itself holds at most ``inbox_capacity`` messages, and a send to a process
  whose inbox is full raises ChannelFull.
* A group message is published once to ``<prefix>:g`` with the group as routing key;
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
import time
from collections.abc import Coroutine
from functools import partial
from typing import Any

from aiormq.exceptions import AMQPChannelError, ChannelNotFoundEntity

from ..base import BatchResult, ChannelLayer, GroupSendResult, sweep_interval
from ..capacity import channel_full
from ..exceptions import ChannelFull, ChannelLayerConnectionError, ChannelLayerError
from ..figures import Figures
from ..local import LocalChannels
from ..options import Option, Options, as_given, positive_int, seconds
from . import wire
from .background import Background
from .broker import Broker
from .connections import Link, Links, Outcome
from .figures import Reporter, read_figures
from .inbox import Inbox
from .membership import Memberships, inbox_full
from .normal import NormalReceivers
from .sending import Publish, bundles, publish_in_windows
from .topology import Topology, client_of
from .urls import DEFAULT_URL, check_tls, resolve_url, split_query, ssl_context

__all__ = ["RabbitMQChannelLayer"]

log = logging.getLogger("layers.rabbitmq")


def _log_failure(error: BaseException) -> None:
    log.warning("background task failed: %r", error)


class RabbitMQChannelLayer(ChannelLayer):
    """Channel layer over RabbitMQ (aio-pika, robust per-loop connections)."""

    OPTIONS = Options(
        Option(
            "url", as_given, None, f"the broker's `amqp://` or `amqps://` URL (`{DEFAULT_URL}`)"
        ),
        Option("host", as_given, None, "a host name, or a URL: instead of `url`"),
        Option(
            "ssl_context",
            ssl_context,
            None,
            "an `ssl.SSLContext` for `amqps://` (or aiormq's URL options, `?cafile=...`)",
        ),
        Option("prefetch_count", positive_int, 100, "messages a receiver takes ahead"),
        Option(
            "connect_timeout",
            seconds(),
            10,
            "seconds a send waits for a lost connection before `ChannelLayerConnectionError`",
        ),
        Option(
            "inbox_capacity",
            positive_int,
            10_000,
            "messages this process's inbox queue holds; past it, a send to one of its "
            "channels raises `ChannelFull`",
        ),
        extends=ChannelLayer.OPTIONS,
    )
    """The options of RabbitMQChannelLayer."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.url = resolve_url(self.options["host"], self.options["url"])
        check_tls(self.url, self.options["ssl_context"])
        self.prefetch_count: int = self.options["prefetch_count"]
        self.timeout: float = self.options["connect_timeout"]
        self.inbox_capacity: int = self.options["inbox_capacity"]
        self.topology = Topology(self.prefix, self.expiry, self.group_expiry)
        self.local = LocalChannels(self.counters, sweep_interval=sweep_interval(self.expiry))
        self.links = Links(
            self.url,
            self.options["ssl_context"],
            self.timeout,
            self._on_connect,
            self._on_reconnect,
            self._on_loop_close,
        )
        self.inbox = Inbox(self)
        self.normal = NormalReceivers(self)
        self.dropped_unroutable = 0
        self.group_outcomes = dict.fromkeys(Outcome, 0)
        self.broker = Broker(self.topology, self.timeout, self.capacity_rules)
        self.memberships = Memberships(self)
        self.reporter = Reporter(self)
        self._tasks = Background(on_failure=_log_failure)

    @classmethod
    def from_url(cls, url: str, **overrides: Any) -> RabbitMQChannelLayer:
        """A layer from amqp:// or amqps://; our options in the query, the rest kept."""
        full, ours = split_query(url, cls.known_options())
        return cls(url=full, **{**ours, **overrides})

    # -- helpers -------------------------------------------------------------------------

    def spawn(self, coro: Coroutine[Any, Any, Any], waits_only: bool = False) -> asyncio.Task[Any]:
        """Run coro in the background of the running loop, logging its failure.

        waits_only: it never talks to the broker itself, so flush() and close() may
        cancel it at once (the others they let finish first).
        """
        return self._tasks.spawn(coro, waits_only)

    async def _on_connect(self, link: Link) -> None:
        link.exchanges.clear()
        self.reporter.ensure()

    async def _on_loop_close(self, link: Link) -> None:
        # Buffered, untaken messages go back to their queue. Under asyncio.run the
        # connection is gone already (see Link.usable): the broker requeues what this
        # loop's consumers held unacked, and nothing here may wait for it.
        await self.normal.stop_here(graceful=link.usable())
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
            # Not awaited: aio-pika awaits this callback inside its reconnect, so a
            # re-bind that waited for the link (cut again meanwhile) would hold up the
            # very reconnect it waits for, for connect_timeout, failing every send then.
            self.spawn(self.inbox.bind_all(link))

    async def republish(self, channel: str, payload: bytes) -> None:
        """Put a message a receiver handed back at the end of its normal channel's queue."""
        link = await self.links.here()
        queue = self.topology.channel_queue(channel)
        headers = self._headers()
        if link.usable():
            outcome = await link.publish(self.timeout, "", queue, payload, headers)
        else:  # this loop is shutting down, its connection gone with its tasks
            try:
                async with self.links.spare() as spare:
                    outcome = await spare.publish(self.timeout, "", queue, payload, headers)
            except ChannelLayerConnectionError as exc:
                self.counters.requeue_failed += 1
                log.error("could not give a message of %r back to its queue: %s", channel, exc)
                return
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
        if self.owns(channel):
            error = self._send_here(channel, payload)
        else:
            link = await self._sending_link()
            queue, headers = await self._route(link, channel)
            outcome = await link.publish(self.timeout, "", queue, payload, headers)
            error = await self._outcome(link, channel, payload, outcome)
        if error is not None:
            raise error

    async def _send_many(self, items: list[tuple[str, bytes]]) -> BatchResult:
        """Items for other processes' channels bundled per inbox (sending.py), the rest
        one publish each; many in flight at once, each confirm awaited and checked. The
        broker keeps one channel's publishes (ours) in order."""
        results: BatchResult = [None] * len(items)
        publishes: list[Publish] = []
        inboxes: dict[str, list[int]] = {}
        link: Link | None = None
        for index, (channel, payload) in enumerate(items):
            if self.owns(channel):
                results[index] = self._send_here(channel, payload)
                continue
            try:
                link = link or await self._sending_link()
                if "!" in channel:
                    inboxes.setdefault(client_of(channel), []).append(index)
                    continue
                queue = await self.broker.declare_channel(link, channel)
            except ChannelLayerError as exc:  # every publish would fail alike: none tried
                for i, (other, _) in enumerate(items):
                    if i >= index or not self.owns(other):
                        results[i] = exc
                return results
            publishes.append(Publish([index], queue, self._headers(), payload))
        if link is None:  # every item was for this layer's own channels
            return results
        for client, indexes in inboxes.items():
            queue = self.topology.inbox_queue(client)
            publishes.extend(bundles(items, indexes, queue, self._headers))
        publishes.sort(key=lambda p: p.indexes[0])  # in the batch's order
        await publish_in_windows(link, self.timeout, items, publishes, results, self._outcome)
        return results

    def _send_here(self, channel: str, payload: bytes) -> ChannelFull | None:
        """Put payload in one of our own channels' buffers; the error if it is full."""
        capacity = self.capacity_rules(channel)
        if self.local.put(channel, payload, time.monotonic() + self.expiry, capacity):
            return None
        return channel_full(channel, capacity)

    async def _sending_link(self) -> Link:
        link = await self.links.here()
        if not self.inbox.running():
            await self.inbox.ensure()  # expired sends come back to it and are counted
        return link

    async def _route(self, link: Link, channel: str) -> tuple[str, dict[str, Any]]:
        """(queue, headers) of a send to channel (a normal channel's queue declared)."""
        if "!" in channel:
            queue = self.topology.inbox_queue(client_of(channel))
            return queue, self._headers(**{wire.CHANNEL: channel})
        return await self.broker.declare_channel(link, channel), self._headers()

    async def _outcome(
        self, link: Link, channel: str, payload: bytes, outcome: Outcome
    ) -> ChannelFull | None:
        """What a send's confirm means: None if stored (or counted unroutable), else
        its error. A normal channel's queue deleted under us is declared again, once."""
        if outcome is Outcome.RETURNED and "!" not in channel:
            # Deleted under us (a peer's flush, x-expires).
            self.broker.ready.discard(self.topology.channel_queue(channel))
            queue = await self.broker.declare_channel(link, channel)
            outcome = await link.publish(self.timeout, "", queue, payload, self._headers())
        if outcome is Outcome.NACKED:
            return inbox_full(channel) if "!" in channel else self._full(channel)
        if outcome is Outcome.RETURNED:
            self.unroutable(channel)
        return None

    def _full(self, channel: str) -> ChannelFull:
        return channel_full(channel, self.capacity_rules(channel))

    def _receive_now(self, channel: str) -> bytes | None:
        return self.local.take(channel) if "!" in channel else None

    def _receive(self, channel: str) -> Coroutine[Any, Any, bytes]:
        # Not a coroutine itself: an idle receiver of a process-local channel holds one
        # frame less.
        self.local.maybe_sweep()
        if "!" not in channel:
            return self._receive_normal(channel)
        self.require_own(channel)
        if not self.inbox.running():
            return self._receive_starting(channel)
        return self.local.get(channel)

    async def _receive_starting(self, channel: str) -> bytes:
        await self.inbox.ensure()
        return await self.local.get(channel)

    async def _receive_normal(self, channel: str) -> bytes:
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
        """(1, 0) confirmed, (0, 1) refused by a member's queue, (0, 0) no member.

        What the broker's confirm says: every queue the message reached took it, or
        one refused it (a full normal channel, a full inbox); never how many members
        that was (another process fans out to its own). So `sent` counts a confirmed
        group_send once, whatever its member count, a refusal counts one drop however
        many members refused, and the number of members reached is unknown here: each
        receiving process counts what it received and dropped. stats() counts the
        outcomes: group_sends_confirmed, group_sends_no_member, group_sends_refused.
        """
        link = await self.links.here()
        if not self.inbox.running():
            await self.inbox.ensure()
        self.memberships.maybe_compact(link, group)
        headers = self._headers(**{wire.GROUP: group})
        groups = self.topology.groups
        try:
            outcome = await link.publish(self.timeout, groups, group, payload, headers)
        except ChannelNotFoundEntity:
            # A peer's flush deleted the exchange and this inbox's anchor with it.
            link.exchanges.discard(groups)
            await self.inbox.bind_all(link)
            outcome = await link.publish(self.timeout, groups, group, payload, headers)
        self.group_outcomes[outcome] += 1
        return int(outcome is Outcome.ACKED), int(outcome is Outcome.NACKED)

    async def _group_channels(self, group: str) -> list[str]:
        return await self.memberships.compact(await self.links.here(), group)

    def _member_here(self, group: str, channel: str, payload: bytes) -> bool | None:
        if self.owns(channel):  # the inbox's table, which its fan-out follows
            return self.inbox.has(group, channel)
        return self.normal.routed(payload, group)

    async def _flush(self) -> None:
        # A compaction running now would hit the queues being deleted (and a channel
        # error closes the channel every call shares): this loop's finish first.
        await self._tasks.settle_here(self.timeout)
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
        self.reporter.ensure()  # flush() stopped it with the other waiting tasks

    async def _close(self) -> None:
        self.local.close()
        await self._tasks.settle_here(self.timeout)
        try:
            if self.inbox.groups():
                await self.memberships.leave_all()
            await self.normal.stop_all()
            await self.inbox.stop()
            if self.inbox.declared or self.broker.queues:
                inbox = self.inbox.queue_name if self.inbox.declared else None
                await self.broker.remove_idle(await self.links.here(), inbox, self.reporter.queue)
        except (AMQPChannelError, OSError, ConnectionError) as exc:
            log.warning("closing %s: %r", type(self).__name__, exc)
        finally:
            self._tasks.cancel_all()
            await self.links.aclose()

    async def _figures(self, limit: int) -> Figures:
        return await read_figures(self, limit)

    def _stats(self) -> dict[str, Any]:
        return {
            **self.local.snapshot(),
            "dropped_unroutable": self.dropped_unroutable,
            "group_sends_confirmed": self.group_outcomes[Outcome.ACKED],
            "group_sends_no_member": self.group_outcomes[Outcome.RETURNED],
            "group_sends_refused": self.group_outcomes[Outcome.NACKED],
            "inbox": self.inbox.queue_name,
        }

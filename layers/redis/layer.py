"""RedisChannelLayer: channels and groups sharded over Redis servers."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Coroutine, Iterator
from functools import partial
from typing import Any

from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import InvalidResponse, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from ..base import BatchResult, ChannelLayer, GroupSendResult, sweep_interval
from ..capacity import channel_full
from ..exceptions import ChannelLayerConnectionError, ChannelLayerError
from ..figures import Figures
from ..inbox import HEADER
from ..loops import cancel_everywhere
from ..naming import non_local_name
from ..options import (
    Option,
    Options,
    as_given,
    flag,
    no_meaning_here,
    options_from_query,
    positive_int,
    seconds,
)
from ..redact import redact
from . import batches, scripts
from .connections import Connections, unlink_matching
from .counting import SharedCounts
from .fetching import Fetchers, give_back_all
from .figures import read_figures
from .groups import GroupPlans, channels_of, target_of
from .hosts import parse_hosts
from .inbox import RedisInbox
from .keys import Keys
from .readers import Held
from .receiving import flush_acks, read_inbox
from .ring import HashRing

__all__ = ["RedisChannelLayer"]

_RECEIVING_CACHE_SIZE = 65536
# Entries carry their expiry as 13 digits of Unix ms (good until the year 2286): an
# expiry must keep it at 13 digits for long after the message was sent.
_MAX_EXPIRY = 100 * 365 * 86400


class RedisChannelLayer(ChannelLayer):
    """Channel layer over one or more Redis servers, Sentinel, or a Redis Cluster."""

    OPTIONS = Options(
        Option(
            "hosts",
            as_given,
            None,
            "the servers: URLs, `(host, port)` pairs, dicts with `address` and redis-py pool "
            "options, or Sentinel dicts (default `redis://localhost:6379`)",
        ),
        Option("cluster", flag, False, "the hosts are a Redis Cluster"),
        Option(
            "expiry",
            seconds(_MAX_EXPIRY, " (100 years)"),
            60,
            "seconds a message waits unread before it is dropped (at most 100 years)",
        ),
        Option("socket_timeout", seconds(), 5, "seconds an ordinary command may take"),
        Option("socket_connect_timeout", seconds(), 5, "seconds a connection may take to open"),
        Option(
            "blocking_timeout",
            seconds(),
            5,
            "seconds an idle reader blocks per round trip (its socket gets this plus "
            "`socket_timeout`)",
        ),
        Option("batch_size", positive_int, 100, "messages a reader pops per round trip"),
        Option(
            "prefetch",
            positive_int,
            100,
            "messages of a normal channel a receiving process takes per round trip "
            "(held 0.5 s for its receivers, then given back)",
        ),
        # channels_redis's own options, so its CONFIG dicts work unchanged.
        Option(
            "random_prefix_length",
            no_meaning_here(
                "a process-local channel name carries this process's fixed random id "
                "(new_channel's names are unique without a per-name prefix)"
            ),
            None,
            "channels_redis's; accepted with a warning, no effect",
        ),
        Option(
            "serializer_format",
            no_meaning_here(
                "messages are always msgpack (bytes stay bytes); the format in Redis is "
                "this layer's own, not channels_redis's, so nothing else reads it",
                meaningful=lambda value: value == "msgpack",
            ),
            None,
            'channels_redis\'s; `"msgpack"` is what happens anyway, others warn',
        ),
        extends=ChannelLayer.OPTIONS,
    )
    """The options of RedisChannelLayer."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.socket_timeout: float = self.options["socket_timeout"]
        self.blocking_timeout: float = self.options["blocking_timeout"]
        connect_timeout = self.options["socket_connect_timeout"]
        self.batch_size: int = self.options["batch_size"]
        self.prefetch: int = self.options["prefetch"]
        shards = parse_hosts(self.options["hosts"], self.options["cluster"])
        self.shard_names = [s.name for s in shards]  # for people: no password
        self.ring = HashRing([s.ident for s in shards])
        self.cluster = shards[0].cluster
        self.keys = Keys(self.prefix, self.cluster)
        command = {"socket_timeout": self.socket_timeout, "socket_connect_timeout": connect_timeout}
        # A blocking read may take the whole block plus an ordinary reply's time: a
        # timeout then means a dead link, never an idle channel (channels_redis#422).
        # No retry in redis-py: the reader retries, and stops once the layer is closed,
        # where a cluster client would re-send a BLMOVE whose connection close() dropped.
        block_timeout = self.socket_timeout + self.blocking_timeout
        blocking = {**command, "socket_timeout": block_timeout, "retry": Retry(NoBackoff(), 0)}
        self.counts = SharedCounts(self)
        self.scripted = self.counts.scripted
        self.connections = Connections(shards, command, blocking, self.counts.ensure)
        self.inbox = RedisInbox(
            self.counters,
            sweep_interval(self.expiry),
            self._start_reader,
            self._check_open,
            # One number when no channel_capacity rule applies: the fan-out's fast path.
            self.capacity_rules if self.capacity_rules.rules else self.capacity,
        )
        self.local = self.inbox.local
        self.fetchers = Fetchers()
        self.expiry_ms = int(self.expiry * 1000)
        # Readers' unacknowledged batches (readers.Held).
        self.held: dict[str, Held] = {}
        # How long a key outlives its last write: a channel's list, an inbox's depth
        # hash, a reader's held batch (twice the expiry, so expired entries are still
        # there to drop and count).
        self.key_ttl_ms = self.expiry_ms * 2 + 1000
        # Per channel received on: its inbox (None for a normal channel) and on_wait.
        self._receiving: dict[str, tuple[str | None, Callable[[], None]]] = {}
        self.group_plans = GroupPlans(
            self.keys, self.ring.index, self.capacity_rules, self.delivers_here, self.cluster
        )
        self._bound: dict[Callable[[], None], tuple[str | None, Callable[[], None]]] = {}
        self._group_expiry_ms = int(self.group_expiry * 1000)

    @classmethod
    def from_url(cls, url: str, **overrides: Any) -> RedisChannelLayer:
        """A layer from redis://, rediss://, unix://, redis+sentinel:// or redis+cluster://."""
        base, _, query = url.partition("?")
        options = {**options_from_query(query), **overrides}
        return cls(hosts=[base], **options)

    # -- helpers -------------------------------------------------------------------------

    @contextlib.contextmanager
    def _reaching(self, shard: int) -> Iterator[None]:
        try:
            yield
        except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
            raise ChannelLayerConnectionError(
                f"Redis at {self.shard_names[shard]} did not answer: {redact(str(exc))}"
            ) from exc
        except InvalidResponse as exc:  # something else listens there (an HTTP port...)
            raise ChannelLayerConnectionError(
                f"{self.shard_names[shard]} did not answer as a Redis server does: "
                f"{redact(str(exc))}"
            ) from exc
        except ResponseError as exc:  # WRONGTYPE: a key of an older format, not flushed
            raise ChannelLayerError(
                f"Redis at {self.shard_names[shard]} refused the command: {exc}"
            ) from exc

    def send_call(self, channel: str, capacity: int) -> tuple[int, list[str], list[Any]]:
        """(shard, keys, ARGV before the payloads) of send.lua for a channel; ARGV[2] is
        its local part, "" for a normal channel."""
        keys = self.keys
        if "!" not in channel:
            key = keys.channel(channel)
            shard, keys_of, part = self.ring.index(channel), [key, keys.counts(key)], ""
        else:
            inbox = non_local_name(channel)
            key, part = keys.inbox(inbox), channel[len(inbox) :]
            shard, keys_of = self.ring.index(inbox), [key, keys.depth(inbox), keys.counts(key)]
        lifetime = self.counts.lifetime(keys_of[-1])
        return shard, keys_of, [self.expiry_ms, capacity, part, lifetime, self.key_ttl_ms]

    def group_send_args(self, payload: bytes, keys: list[str], plan: list[Any]) -> list[Any]:
        """group_send.lua's ARGV for one of a GroupPlan's calls (its keys and args)."""
        head = [payload, self.expiry_ms, self.key_ttl_ms]
        return [*head, *plan, self.counts.lifetime(keys[-1]), HEADER]

    def _start_reader(
        self, inbox: str, loop: asyncio.AbstractEventLoop
    ) -> tuple[asyncio.Task[None], ...]:
        return (
            loop.create_task(read_inbox(self, inbox), name=f"chanlayers inbox {inbox}"),
            loop.create_task(flush_acks(self, inbox), name=f"chanlayers acks {inbox}"),
        )

    def _ensure_fetcher(self, channel: str) -> None:
        self._check_open()
        self.fetchers.want(self, channel)

    # -- the transport ---------------------------------------------------------------------

    def delivers_here(self, channel: str) -> bool:
        """True for this layer's own process-local channels: they skip Redis."""
        return self.owns(channel)

    def deliver_here(self, members: list[tuple[str, int]], payload: bytes) -> int:
        """Put a message for (channel, capacity) pairs of this layer's own channels
        straight into their buffers; return how many were full.

        Redis never sees it, but their depth counts do (as negative acks, sent with the
        next batch of acks), so that other processes' sends count it against capacity.
        """
        # Reserved before they can be taken, so a release never precedes its reserve.
        self.inbox.acks.add_each([channel for channel, _ in members], -1)
        capacities = dict(members)
        full = self.local.put_many(
            capacities, payload, time.monotonic() + self.expiry, capacities.__getitem__
        )
        if full:
            self.inbox.acks.add_each(full, 1)
        return len(full)

    async def _send(self, channel: str, payload: bytes) -> None:
        capacity = self.capacity_rules(channel)
        if self.delivers_here(channel):
            if self.deliver_here([(channel, capacity)], payload):
                raise channel_full(channel, capacity)
            return
        shard, keys, args = self.send_call(channel, capacity)
        args.append(HEADER + payload if args[2] else payload)
        clients = await self.connections.here()
        with self._reaching(shard):
            queued, expired = await scripts.SEND(clients.scripting(shard), keys, args)
        self.scripted.sent += queued
        if expired:
            self.counters.dropped_expired += expired
            self.scripted.dropped_expired += expired
        if not queued:
            raise channel_full(channel, capacity)

    async def _send_many(self, items: list[tuple[str, bytes]]) -> BatchResult:
        return await batches.send_many(self, items)

    async def _group_send_many(
        self, items: list[tuple[str, bytes]]
    ) -> list[GroupSendResult | BaseException]:
        return await batches.group_send_many(self, items)

    def _receive_now(self, channel: str) -> bytes | None:
        return self.local.take(channel) if "!" in channel else None

    def _receive(self, channel: str) -> Coroutine[Any, Any, bytes]:
        # Not a coroutine itself: an idle receiver holds one frame less.
        bound = self._receiving.get(channel)
        if bound is None:
            bound = self._bind_receive(channel)
        inbox, on_wait = bound
        if inbox is not None:
            # No reader check here: get() runs on_wait (ensure_reader) before it waits,
            # and a receive that finds a message buffered needs none.
            return self.local.get(channel, on_wait)
        return self._receive_normal(channel, on_wait)

    async def _receive_normal(self, channel: str, on_wait: Callable[[], None]) -> bytes:
        payload = await self.local.get(channel, on_wait)
        self.fetchers.claimed(channel)
        return payload

    def _bind_receive(self, channel: str) -> tuple[str | None, Callable[[], None]]:
        """(inbox or None, what to run before waiting) for receiving on channel."""
        if "!" in channel:
            self.require_own(channel)
            inbox = non_local_name(channel)
            # Shared by the inbox's channels: an idle receiver holds none of its own.
            hook = self.inbox.reader_hook(inbox)
            bound: tuple[str | None, Callable[[], None]] = self._bound.get(hook) or (inbox, hook)
            self._bound[hook] = bound
        else:
            bound = (None, partial(self._ensure_fetcher, channel))
        if len(self._receiving) >= _RECEIVING_CACHE_SIZE:
            self._receiving.clear()
        self._receiving[channel] = bound
        return bound

    async def _new_channel(self, name: str) -> None:
        self.inbox.ensure_reader(non_local_name(name))

    async def _group_add(self, group: str, channel: str) -> None:
        await self._on_group(scripts.GROUP_ADD, group, [*target_of(channel), self._group_expiry_ms])

    async def _group_discard(self, group: str, channel: str) -> None:
        await self._on_group(scripts.GROUP_DISCARD, group, list(target_of(channel)))

    async def _on_group(
        self, script: scripts.Script, group: str, args: list[Any], counted: bool = False
    ) -> Any:
        shard = self.ring.index(group)
        key = self.keys.group(group)
        clients = await self.connections.here()
        with self._reaching(shard):
            if counted:
                keys = [key, self.keys.counts(key)]
                args = [*args, self.counts.lifetime(keys[1])]
            else:
                keys = [key]
            return await script(clients.scripting(shard), keys, args)

    async def _group_channels(self, group: str) -> list[str]:
        return channels_of(await self._on_group(scripts.MEMBERS, group, []))

    def deliver_group_here(self, channels: list[str], payload: bytes) -> int:
        """Put a group message into this layer's own channels' buffers, capped at each
        one's capacity and counted nowhere else; return how many were full."""
        deadline = time.monotonic() + self.expiry
        return self.inbox.fanout.deliver_uncounted(channels, payload, deadline)

    async def _group_send(self, group: str, payload: bytes) -> GroupSendResult:
        # members.lua counts the group_send: the one script every group_send runs once.
        plan = self.group_plans.plan(await self._on_group(scripts.MEMBERS, group, [1], True))
        dropped = self.deliver_group_here(plan.here, payload) if plan.here else 0
        delivered = len(plan.here) - dropped + plan.handed
        results: list[Any] = []
        if plan.calls:
            clients = await self.connections.here()
            runs = [
                self._group_send_on(clients.scripting(s), s, k, self.group_send_args(payload, k, a))
                for s, k, a in plan.calls
            ]
            # One shard (the common case) needs no tasks.
            results = [await runs[0]] if len(runs) == 1 else await asyncio.gather(*runs)
        # Done: the base class counts it now, so what the scripts counted is no longer
        # this process's to carry (a failed one is left as Redis counted it).
        self.scripted.group_sends += 1
        reached, full, expired = self.scripted.group_sent(results)
        self.counters.dropped_expired += expired
        return delivered + reached, dropped + full

    async def _group_send_on(
        self, client: Any, shard: int, keys: list[str], args: list[Any]
    ) -> Any:
        with self._reaching(shard):
            return await scripts.GROUP_SEND(client, keys, args)

    async def _flush(self) -> None:
        self.local.clear()
        clients = await self.connections.here()
        for shard in range(len(self.shard_names)):
            with self._reaching(shard):
                await unlink_matching(clients.command(shard), self.keys.pattern)

    async def _close(self) -> None:
        await self.counts.close()
        fetcher_tasks = self.fetchers.tasks()
        # What fetchers took and nobody received goes back before the buffers go.
        fetching = self.fetchers.clear()
        await give_back_all(self, fetching)
        self.local.close()
        mine = self.inbox.readers.cancel() + cancel_everywhere(fetcher_tasks)
        # The clients are closed for good only once the tasks are done, since a task
        # may reconnect on its way out.
        await self.connections.outwait(mine)
        await self.connections.aclose()

    # -- channels_redis compatibility ----------------------------------------------------

    async def close_pools(self) -> None:
        """channels_redis's: nothing to do here, since each event loop's connections
        close with that loop (code that calls it before its loop ends keeps working)."""
        self._check_open()

    async def wait_received(self) -> None:
        """channels_redis's: nothing to wait for (a receive leaves no cleanup behind)."""
        self._check_open()

    async def _figures(self, limit: int) -> Figures:
        return await read_figures(self, self.counts, limit)

    def _stats(self) -> dict[str, Any]:
        return {**self.local.snapshot(), "shards": len(self.shard_names)}

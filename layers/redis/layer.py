"""RedisChannelLayer: channels and groups sharded over Redis servers."""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from ..base import ChannelLayer, GroupSendResult
from ..exceptions import ChannelFull, ChannelLayerConnectionError, ConfigError
from ..local import LocalChannels
from ..naming import non_local_name
from . import scripts
from .connections import Connections
from .hosts import parse_hosts
from .keys import Keys
from .receiving import Acks, Held, fetch_normal, flush_acks, read_inbox
from .ring import HashRing

__all__ = ["RedisChannelLayer"]

_RECEIVING_CACHE_SIZE = 65536
_GROUP_PLAN_CACHE_SIZE = 256
# Entries carry their expiry as 13 digits of Unix ms (good until the year 2286): an
# expiry must keep it at 13 digits for long after the message was sent.
_MAX_EXPIRY = 100 * 365 * 86400


def _timeout(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < math.inf:
        raise ConfigError(f"{name} must be a positive number of seconds, got {value!r}")
    return float(value)


# A group_send's plan: (shard, keys, args) per script, and (channel, capacity) of the
# members that are this layer's own channels, delivered without Redis.
_Plan = tuple[list[tuple[int, list[str], list[Any]]], list[tuple[str, int]]]


@dataclass
class _Bundle:
    """One shard's share of a group_send."""

    normal: list[tuple[str, int]] = field(default_factory=list)
    inboxes: dict[str, list[tuple[str, int]]] = field(default_factory=dict)

    def keys_and_args(self, keys: Keys) -> tuple[list[str], list[Any]]:
        names = [key for key, _ in self.normal]
        args: list[Any] = [len(self.normal), *(cap for _, cap in self.normal)]
        for inbox, parts in self.inboxes.items():
            names += [keys.inbox(inbox), keys.depth(inbox)]
            args.append(",".join([f"{part}={cap}" for part, cap in parts]))
        return names, args

    def split(self) -> Iterator[_Bundle]:
        """One bundle per cluster slot group: each channel, each inbox."""
        for item in self.normal:
            yield _Bundle(normal=[item])
        for inbox, parts in self.inboxes.items():
            yield _Bundle(inboxes={inbox: parts})


class RedisChannelLayer(ChannelLayer):
    """Channel layer over one or more Redis servers, Sentinel, or a Redis Cluster."""

    def __init__(
        self,
        *,
        hosts: object = None,
        cluster: bool = False,
        socket_timeout: float = 5.0,
        socket_connect_timeout: float = 5.0,
        blocking_timeout: float = 5.0,
        batch_size: int = 100,
        **options: Any,
    ) -> None:
        super().__init__(**options)
        if self.expiry > _MAX_EXPIRY:
            raise ConfigError(
                f"expiry must be at most {_MAX_EXPIRY} seconds (100 years), got {self.expiry:g}"
            )
        self.socket_timeout = _timeout("socket_timeout", socket_timeout)
        self.blocking_timeout = _timeout("blocking_timeout", blocking_timeout)
        connect_timeout = _timeout("socket_connect_timeout", socket_connect_timeout)
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ConfigError(
                f"batch_size must be a whole number of at least 1, got {batch_size!r}"
            )
        self.batch_size = batch_size
        shards = parse_hosts(hosts, bool(cluster))
        self.shard_names = [s.ident for s in shards]
        self.ring = HashRing(self.shard_names)
        self.cluster = shards[0].cluster
        self.keys = Keys(self.prefix)
        command = {"socket_timeout": self.socket_timeout, "socket_connect_timeout": connect_timeout}
        # A blocking read may take the whole block plus an ordinary reply's time: a
        # timeout then means a dead link, never an idle channel (channels_redis#422).
        blocking = {**command, "socket_timeout": self.socket_timeout + self.blocking_timeout}
        self.connections = Connections(shards, command, blocking)
        self.acks = Acks()
        # Inbox -> the head its reader delivered before popping it (see receiving.py).
        self.heads: dict[str, bytes] = {}
        self.local = LocalChannels(
            self.counters, sweep_interval=min(self.expiry, 30.0) / 2, on_remove=self.acks.add
        )
        self._readers: dict[str, tuple[asyncio.Task[None], asyncio.Task[None]]] = {}
        self._fetchers: dict[tuple[asyncio.AbstractEventLoop, str], asyncio.Task[None]] = {}
        self._expiry_ms = int(self.expiry * 1000)
        # Readers' unacknowledged batches (receiving.Held), and how long Redis keeps one.
        self.held: dict[str, Held] = {}
        self.held_ttl_ms = self._expiry_ms * 2 + 1000
        # Per channel received on: its inbox (None for a normal channel) and on_wait.
        self._receiving: dict[str, tuple[str | None, Callable[[], None]]] = {}
        self._group_plans: dict[bytes, _Plan] = {}
        # Per inbox entry header naming several local parts: the channels it names.
        self.fanouts: dict[tuple[str, bytes], list[str]] = {}
        self._group_expiry_ms = int(self.group_expiry * 1000)

    @classmethod
    def from_url(cls, url: str, **overrides: Any) -> RedisChannelLayer:
        """A layer from redis://, rediss://, unix://, redis+sentinel:// or redis+cluster://."""
        from ..config import options_from_query

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
                f"Redis at {self.shard_names[shard]} did not answer: {exc}"
            ) from exc

    def _target(self, channel: str) -> tuple[int, list[str], str | None]:
        """(shard, keys, local part or None) of a channel."""
        if "!" in channel:
            inbox = non_local_name(channel)
            return (
                self.ring.index(inbox),
                [self.keys.inbox(inbox), self.keys.depth(inbox)],
                channel[len(inbox) :],
            )
        return self.ring.index(channel), [self.keys.channel(channel)], None

    def _ensure_reader(self, inbox: str) -> None:
        tasks = self._readers.get(inbox)
        if tasks is not None and not tasks[0].done() and not tasks[0].get_loop().is_closed():
            return
        self._check_open()
        loop = asyncio.get_running_loop()
        self._readers[inbox] = (
            loop.create_task(read_inbox(self, inbox), name=f"chanlayers inbox {inbox}"),
            loop.create_task(flush_acks(self, inbox), name=f"chanlayers acks {inbox}"),
        )

    def _ensure_fetcher(self, channel: str) -> None:
        key = (asyncio.get_running_loop(), channel)
        task = self._fetchers.get(key)
        if task is None or task.done():
            self._check_open()
            self._fetchers[key] = key[0].create_task(
                fetch_normal(self, channel), name=f"chanlayers fetch {channel}"
            )

    def fetcher_done(self, channel: str) -> None:
        """A fetcher of this loop stopped (called by the fetcher itself)."""
        with contextlib.suppress(RuntimeError):
            self._fetchers.pop((asyncio.get_running_loop(), channel), None)

    # -- the transport ---------------------------------------------------------------------

    def _delivers_here(self, channel: str) -> bool:
        """True for this layer's own process-local channels: they skip Redis."""
        return self.owns(channel)

    def _deliver_here(self, members: list[tuple[str, int]], payload: bytes) -> int:
        """Put a message for (channel, capacity) pairs of this layer's own channels
        straight into their buffers; return how many were full.

        Redis never sees it, but their depth counts do (as negative acks, sent with the
        next batch of acks), so that other processes' sends count it against capacity.
        """
        # Reserved before they can be taken, so a release never precedes its reserve.
        self.acks.add_each([channel for channel, _ in members], -1)
        deadline, put, full = time.monotonic() + self.expiry, self.local.put, 0
        for channel, capacity in members:
            if not put(channel, payload, deadline, capacity):
                self.acks.add(channel, 1)
                full += 1
        return full

    async def _send(self, channel: str, payload: bytes) -> None:
        capacity = self.capacity_rules(channel)
        if self._delivers_here(channel):
            if self._deliver_here([(channel, capacity)], payload):
                raise ChannelFull(f"channel {channel!r} is at its capacity of {capacity} messages")
            return
        shard, keys, part = self._target(channel)
        args: list[Any] = [payload, self._expiry_ms, capacity]
        if part is not None:
            args.append(part)
        clients = await self.connections.here()
        with self._reaching(shard):
            queued, expired = await scripts.SEND(clients.scripting(shard), keys, args)
        if expired:
            self.counters.dropped_expired += expired
        if not queued:
            raise ChannelFull(f"channel {channel!r} is at its capacity of {capacity} messages")

    async def _receive(self, channel: str) -> bytes:
        bound = self._receiving.get(channel)
        if bound is None:
            bound = self._bind_receive(channel)
        inbox, on_wait = bound
        if inbox is not None:
            tasks = self._readers.get(inbox)
            if tasks is None or tasks[0].done() or tasks[0].get_loop().is_closed():
                self._ensure_reader(inbox)
        return await self.local.get(channel, on_wait)

    def _bind_receive(self, channel: str) -> tuple[str | None, Callable[[], None]]:
        """(inbox or None, what to run before waiting) for receiving on channel."""
        if "!" in channel:
            self.require_own(channel)
            inbox = non_local_name(channel)
            bound: tuple[str | None, Callable[[], None]] = (
                inbox,
                partial(self._ensure_reader, inbox),
            )
        else:
            bound = (None, partial(self._ensure_fetcher, channel))
        if len(self._receiving) >= _RECEIVING_CACHE_SIZE:
            self._receiving.clear()
        self._receiving[channel] = bound
        return bound

    async def _new_channel(self, name: str) -> None:
        self._ensure_reader(non_local_name(name))

    async def _group_add(self, group: str, channel: str) -> None:
        shard = self.ring.index(group)
        clients = await self.connections.here()
        with self._reaching(shard):
            await scripts.GROUP_ADD(
                clients.scripting(shard), [self.keys.group(group)], [channel, self._group_expiry_ms]
            )

    async def _group_discard(self, group: str, channel: str) -> None:
        shard = self.ring.index(group)
        clients = await self.connections.here()
        with self._reaching(shard):
            await clients.command(shard).zrem(self.keys.group(group), channel)

    async def _members(self, group: str) -> bytes:
        """The live members of group, joined by ','."""
        shard = self.ring.index(group)
        clients = await self.connections.here()
        with self._reaching(shard):
            members: bytes = await scripts.MEMBERS(
                clients.scripting(shard), [self.keys.group(group)], []
            )
        return members

    async def _group_channels(self, group: str) -> list[str]:
        members = await self._members(group)
        return members.decode().split(",") if members else []

    async def _group_send(self, group: str, payload: bytes) -> GroupSendResult:
        calls, here = self._group_plan(await self._members(group))
        delivered = dropped = 0
        if here:
            dropped = self._deliver_here(here, payload)
            delivered = len(here) - dropped
            if not calls:
                return delivered, dropped
        clients = await self.connections.here()
        head = [payload, self._expiry_ms]
        if len(calls) == 1:
            shard, keys, args = calls[0]
            results = [
                await self._group_send_on(clients.scripting(shard), shard, keys, head + args)
            ]
        else:
            results = await asyncio.gather(
                *(self._group_send_on(clients.scripting(s), s, k, head + a) for s, k, a in calls)
            )
        delivered += sum(r[0] for r in results)
        dropped += sum(r[1] for r in results)
        self.counters.dropped_expired += sum(r[2] for r in results)
        return delivered, dropped

    def _group_plan(self, members: bytes) -> _Plan:
        """How a group_send reaches members: scripts to run, each (shard, keys, args
        after payload and expiry), and this layer's own channels with their capacities.

        A group's membership seldom changes between sends: the plan is cached by it.
        """
        plan = self._group_plans.get(members)
        if plan is not None:
            return plan
        bundles: dict[int, _Bundle] = {}
        here: list[tuple[str, int]] = []
        for channel in members.decode().split(",") if members else []:
            capacity = self.capacity_rules(channel)
            if self._delivers_here(channel):
                here.append((channel, capacity))
                continue
            shard, keys, part = self._target(channel)
            bundle = bundles.setdefault(shard, _Bundle())
            if part is None:
                bundle.normal.append((keys[0], capacity))
            else:
                bundle.inboxes.setdefault(non_local_name(channel), []).append((part, capacity))
        calls: list[tuple[int, list[str], list[Any]]] = []
        for shard, bundle in bundles.items():
            for piece in bundle.split() if self.cluster else [bundle]:
                calls.append((shard, *piece.keys_and_args(self.keys)))
        if len(self._group_plans) >= _GROUP_PLAN_CACHE_SIZE:
            self._group_plans.clear()
        plan = self._group_plans[members] = (calls, here)
        return plan

    async def _group_send_on(
        self, client: Any, shard: int, keys: list[str], args: list[Any]
    ) -> Any:
        with self._reaching(shard):
            return await scripts.GROUP_SEND(client, keys, args)

    async def _flush(self) -> None:
        self.local.clear()
        clients = await self.connections.here()
        for shard in range(len(self.shard_names)):
            client = clients.command(shard)
            with self._reaching(shard):
                batch: list[Any] = []
                async for key in client.scan_iter(match=self.keys.pattern, count=1000):
                    batch.append(key)
                    if len(batch) >= 500:
                        await client.unlink(*batch)
                        batch = []
                if batch:
                    await client.unlink(*batch)

    async def _close(self) -> None:
        here = asyncio.get_running_loop()
        tasks = [t for pair in self._readers.values() for t in pair]
        tasks += list(self._fetchers.values())
        self._readers.clear()
        self._fetchers.clear()
        self.local.close()
        mine = [t for t in tasks if t.get_loop() is here and not t.done()]
        for task in tasks:
            if task.get_loop() is here:
                task.cancel()
            elif not task.get_loop().is_closed():
                task.get_loop().call_soon_threadsafe(task.cancel)
        # redis-py lets a blocked read finish before a cancel lands: dropping the
        # connections ends a BLMOVE at once instead of after blocking_timeout. The
        # clients are closed for good only once the tasks are done, since a task may
        # reconnect on its way out.
        clients = self.connections.current()
        if clients is not None:
            await clients.interrupt()
        await asyncio.gather(*mine, return_exceptions=True)
        await self.connections.aclose()

    def _stats(self) -> dict[str, Any]:
        return {**self.local.snapshot(), "shards": len(self.shard_names)}

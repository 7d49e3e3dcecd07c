"""Prefetching receivers on normal channels: one fetcher task per channel and loop.

While receivers of this process wait on a normal channel, its fetcher takes up to
``prefetch`` messages per round trip (fetch.lua) into the process's buffers. A consume
loop has nobody waiting between two receives, so the fetcher lingers: it keeps what it
took for as long as receivers come back for it within ``LINGER`` seconds. Once a window
passes with nobody waiting or taking, and when the fetcher is cancelled or the layer
closed, what nobody took goes back to the head of the list in its order (requeue.lua).
So a channel holds up to capacity messages in Redis, plus up to prefetch taken by each
receiving process.

Each fetched batch stays in Redis under the reader's lease until its next fetch or its
requeue. A process killed while holding one loses at most that batch: the next fetch
by any process after the lease ends counts the batch's messages as lost
(``dropped_crashed`` in its stats) and removes it; none is handed out twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from functools import partial
from typing import Any, Protocol

from redis.exceptions import RedisError

from . import scripts
from .counting import packed
from .entries import FIRST_ENTRY, Sink, deliver
from .keys import Keys
from .readers import Held, Reader, back_off, retry_or_stop, wait_nonempty
from .ring import HashRing

__all__ = ["LINGER", "Fetcher", "Fetchers", "FetchingLayer", "fetch_normal", "give_back_all"]

log = logging.getLogger("layers.redis")
LINGER = 0.5
"""Seconds a fetcher keeps its batch for receivers that will be back (RabbitMQ's too)."""
_NUMBERS = itertools.count(1)


class FetchingLayer(Reader, Sink, Protocol):
    """What fetching from normal channels uses of a RedisChannelLayer."""

    ring: HashRing
    keys: Keys
    client_id: str
    socket_timeout: float
    prefetch: int
    expiry_ms: int
    fetchers: Fetchers


class Fetcher:
    """A fetcher's task, and what its receivers tell it: that one waits, that one took."""

    __slots__ = ("claimed", "task", "wanted")

    def __init__(self, layer: FetchingLayer, channel: str) -> None:
        loop = asyncio.get_running_loop()
        self.wanted = asyncio.Event()
        self.claimed = time.monotonic()
        self.task = loop.create_task(
            fetch_normal(layer, channel, self), name=f"chanlayers fetch {channel}"
        )


class Fetchers:
    """A layer's fetchers, one per channel and event loop."""

    def __init__(self) -> None:
        self._made: dict[tuple[asyncio.AbstractEventLoop, str], Fetcher] = {}

    def want(self, layer: FetchingLayer, channel: str) -> None:
        """A receiver of this loop is about to wait on channel: start or wake its fetcher."""
        key = (asyncio.get_running_loop(), channel)
        fetcher = self._made.get(key)
        if fetcher is None or fetcher.task.done():
            self._made[key] = Fetcher(layer, channel)
        else:
            fetcher.wanted.set()  # a lingering fetcher fetches again

    def claimed(self, channel: str) -> None:
        """A receiver of this loop took a message of channel."""
        fetcher = self._made.get((asyncio.get_running_loop(), channel))
        if fetcher is not None:
            fetcher.claimed = time.monotonic()

    def done(self, channel: str, fetcher: Fetcher) -> None:
        """fetcher (of this loop) stopped."""
        key = (asyncio.get_running_loop(), channel)
        if self._made.get(key) is fetcher:
            del self._made[key]

    def tasks(self) -> list[asyncio.Task[None]]:
        """Every fetcher's task."""
        return [fetcher.task for fetcher in self._made.values()]

    def clear(self) -> set[str]:
        """Forget every fetcher (the layer closes); the channels they fetched from."""
        channels = {channel for _, channel in self._made}
        self._made.clear()
        return channels


class _Reader:
    """One fetcher's place in Redis: the channel's keys, its held batch, its lease."""

    def __init__(self, layer: FetchingLayer, channel: str) -> None:
        self.channel = channel
        self.shard = layer.ring.index(channel)
        self.list = layer.keys.channel(channel)
        self.counts = layer.keys.counts(self.list)
        self.readers = layer.keys.readers(channel)
        # Several processes (and loops) take from one channel: each keeps its own batch.
        self.name = f"{layer.client_id}.{id(asyncio.get_running_loop()):x}"
        self.held_prefix = layer.keys.held(channel, "-")[:-1]
        self.held = Held.of(layer.held, self.held_prefix + self.name)
        # Long enough for any pause between two fetches of a live reader.
        self.lease_ms = int(1000 * (2 * LINGER + 2 * layer.socket_timeout))


async def _fetch(layer: FetchingLayer, reader: _Reader, count: int) -> list[Any]:
    """Run fetch.lua (count 0 only renews the lease); if cancelled meanwhile, still
    deliver what it took."""
    clients = await layer.connections.here()
    number = next(_NUMBERS)
    held = reader.held
    carried = layer.counts.carry()
    args: list[Any] = [count, number, held.acked, layer.key_ttl_ms]
    args += [reader.name, reader.lease_ms, reader.held_prefix, layer.codec.max_message_size]
    args += [packed(carried), layer.counts.lifetime(reader.counts)]
    task = asyncio.ensure_future(
        scripts.FETCH(
            clients.scripting(reader.shard),
            [reader.list, held.key, reader.readers, reader.counts],
            args,
            finish=True,
        )
    )
    if count:
        task.add_done_callback(partial(held.replied, number))
    if carried:
        task.add_done_callback(partial(layer.counts.settle, carried))
    try:
        result: list[Any] = await asyncio.shield(task)
    except asyncio.CancelledError:
        # The server may have popped already: finish, hand the batch over, then stop.
        _deliver(layer, reader, await task)
        raise
    return result


def _deliver(layer: FetchingLayer, reader: _Reader, result: list[Any]) -> None:
    """Put a fetch's entries into the buffers; count what a dead reader had taken."""
    lost = result.pop(2)
    if lost:
        layer.counters.dropped_crashed += lost
        layer.scripted.dropped_dead_owner += lost
        log.warning(
            "%d message(s) of %r were taken by a process that died before giving them back",
            lost,
            reader.channel,
        )
    deliver(layer, [reader.list], result, reader.channel)


async def fetch_normal(layer: FetchingLayer, channel: str, fetcher: Fetcher) -> None:
    """Take messages of a normal channel while receivers in this process want them."""
    reader = _Reader(layer, channel)
    backoff = 0.05
    try:
        while True:
            retry_or_stop(layer)
            demand = layer.local.waiting(channel)
            if demand == 0:
                if not await _linger(layer, reader, fetcher):
                    return
                continue
            try:
                result = await _fetch(layer, reader, max(demand, layer.prefetch))
                _deliver(layer, reader, result)
                if len(result) <= FIRST_ENTRY:
                    await wait_nonempty(layer, reader.shard, reader.list)
                backoff = 0.05
            except RedisError as exc:
                what = f"receiving {channel!r}"
                backoff = await back_off(layer, what, reader.shard, exc, backoff)
    finally:
        with contextlib.suppress(RuntimeError):
            layer.fetchers.done(channel, fetcher)
        await _give_back(layer, reader)


async def _linger(layer: FetchingLayer, reader: _Reader, fetcher: Fetcher) -> bool:
    """Nobody waits: keep the batch while receivers come back within LINGER seconds;
    True when one waits again, False once a window passed without one waiting or taking."""
    while True:
        retry_or_stop(layer)
        fetcher.wanted.clear()
        if layer.local.waiting(reader.channel):
            return True
        start = time.monotonic()
        try:
            async with asyncio.timeout(LINGER):
                await fetcher.wanted.wait()
        except TimeoutError:
            if fetcher.claimed < start:
                return False
        else:
            return True
        # Receivers are taking what was fetched, just not waiting: renew the lease.
        try:
            await _fetch(layer, reader, 0)
        except RedisError as exc:
            log.warning("renewing the hold on %r failed (%s)", reader.channel, exc)


async def _give_back(layer: FetchingLayer, reader: _Reader, own: bool = True) -> None:
    """Give a normal channel's unreceived messages back to Redis for other receivers;
    own: and end this reader's hold, giving back a held batch whose reply never came.

    Only the fetcher itself may end its hold: no fetch of its own is on its way then.
    """
    leftovers = layer.local.drain_unwatched(reader.channel)
    now, wall = time.monotonic(), time.time() * 1000
    entries = [b"%013d" % int(wall + (deadline - now) * 1000) + p for deadline, p in leftovers]
    if not entries and not own:
        return
    carried = layer.counts.carry()
    args = [reader.name if own else "", reader.held.acked, layer.expiry_ms, packed(carried)]
    args.append(layer.counts.lifetime(reader.counts))
    try:
        clients = await layer.connections.here()
        # finish: a loop shutting down cancels this (a fetcher's last act) mid-reply.
        _, expired = await scripts.REQUEUE(
            clients.scripting(reader.shard),
            [reader.list, reader.held.key, reader.readers, reader.counts],
            [*args, *entries],
            finish=True,
        )
    except BaseException as exc:
        layer.counts.give_back(carried)
        if not isinstance(exc, RedisError | RuntimeError):
            raise
        if entries:
            layer.counters.requeue_failed += len(entries)
            log.error(
                "could not give %d message(s) of %r back to Redis: %s",
                len(entries),
                reader.channel,
                exc,
            )
    else:
        # The script counted these in Redis already (as deliver() does for a fetch's).
        layer.counters.dropped_expired += expired
        layer.scripted.dropped_expired += expired


async def give_back_all(layer: FetchingLayer, channels: set[str]) -> None:
    """Give back what nobody received on channels (the layer closing, while fetchers
    may still have a fetch on its way: their own give-back sees to its batch)."""
    await asyncio.gather(*(_give_back(layer, _Reader(layer, c), own=False) for c in channels))

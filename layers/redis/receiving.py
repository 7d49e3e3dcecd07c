"""Background tasks that move messages from Redis into the process's local buffers.

Nothing here cancels a command that consumes: a task waits with a non-consuming
BLMOVE (list to itself), then takes a batch with a short pop script whose result is
kept even if the task is cancelled meanwhile. So cancellation never loses a message.
A reply lost on the wire does not either: the script keeps each batch until the
reader's next pop acknowledges it, and hands it over again if it was not (pop.lua).

An inbox has one reader, this process, so the head that BLMOVE returns is delivered at
once, a round trip before the pop that removes it: the layer remembers it in ``heads``
until a pop has removed it, so a reader that dies in between never delivers it twice.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import threading
import time
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any

from redis.exceptions import RedisError

from ..naming import non_local_name
from . import scripts
from .entries import deliver

if TYPE_CHECKING:
    from .layer import RedisChannelLayer

__all__ = ["Acks", "Held", "fetch_normal", "flush_acks", "read_inbox"]

log = logging.getLogger("layers.redis")
_MAX_BACKOFF = 2.0
_SPLIT_CACHE_SIZE = 65536
_HELD_CACHE_SIZE = 4096
# Pop request numbers: increasing for the whole process, so a late request is always
# recognised as such, even by a reader whose Held record was forgotten.
_POP_NUMBERS = itertools.count(1)
# How long flush_acks lets acks gather before releasing them (when the reader has not
# taken them with its next pop meanwhile): short next to any sender's retry interval.
_ACK_DELAY = 0.001


class Acks:
    """Depth counts to release per inbox, as local messages leave the buffers.

    A negative count reserves depth instead: a message the layer put straight into one
    of its own channels' buffers (see RedisChannelLayer._deliver_here).

    The inbox reader hands pending counts to its next pop script, and flush_acks
    releases what is left once the loop has had a moment: one script releases many.
    """

    def __init__(self) -> None:
        self._pending: dict[str, dict[str, int]] = {}
        self._wakers: dict[str, Callable[[], None]] = {}
        self._split: dict[str, tuple[str, str]] = {}
        self._reading: set[str] = set()
        self._lock = threading.Lock()

    def add(self, channel: str, count: int) -> None:
        """Note that count messages of channel left the buffers."""
        inbox, part = self._split_of(channel)
        with self._lock:
            waker = self._add_locked(inbox, part, count)
        if waker is not None:
            waker()

    def add_each(self, channels: list[str], count: int) -> None:
        """add(channel, count) for each of channels, under one lock."""
        split = self._split_of
        with self._lock:
            wakers = {self._add_locked(*split(channel), count) for channel in channels}
        for waker in wakers:
            if waker is not None:
                waker()

    def _split_of(self, channel: str) -> tuple[str, str]:
        split = self._split.get(channel)
        if split is None:
            inbox = non_local_name(channel)
            split = (inbox, channel[len(inbox) :])
            if len(self._split) >= _SPLIT_CACHE_SIZE:
                self._split.clear()
            self._split[channel] = split
        return split

    def _add_locked(self, inbox: str, part: str, count: int) -> Callable[[], None] | None:
        """Add count for part; the waker to call if the flusher must be woken."""
        parts = self._pending.get(inbox)
        if parts is not None:
            # The flusher was woken when these became pending and has not taken them.
            parts[part] = parts.get(part, 0) + count
            return None
        self._pending[inbox] = {part: count}
        return self._wakers.get(inbox)

    def take(self, inbox: str) -> dict[str, int] | None:
        """Everything pending for inbox that does not cancel out, or None."""
        with self._lock:
            parts = self._pending.pop(inbox, None)
        if parts is None:
            return None
        # A message delivered in-process and received before the next release nets 0.
        return {part: n for part, n in parts.items() if n} or None

    def give_back(self, inbox: str, parts: dict[str, int]) -> None:
        """Re-queue acks that could not be sent."""
        with self._lock:
            pending = self._pending.setdefault(inbox, {})
            for part, count in parts.items():
                pending[part] = pending.get(part, 0) + count
            waker = self._wakers.get(inbox)
        if waker is not None:
            waker()

    def reading(self, inbox: str, busy: bool) -> None:
        """Note whether inbox's reader is about to pop (and so take pending acks itself)
        or to block; wake the flusher for what is pending when it stops popping."""
        with self._lock:
            if busy:
                self._reading.add(inbox)
                return
            self._reading.discard(inbox)
            waker = self._wakers.get(inbox) if inbox in self._pending else None
        if waker is not None:
            waker()

    def is_reading(self, inbox: str) -> bool:
        """True while inbox's reader pops: its next pop releases what is pending."""
        return inbox in self._reading

    def set_waker(self, inbox: str, event: asyncio.Event) -> None:
        """Wake event (from any thread) whenever acks for inbox become pending."""
        loop, thread = asyncio.get_running_loop(), threading.get_ident()

        def wake() -> None:
            if threading.get_ident() == thread:
                event.set()
            elif not loop.is_closed():
                loop.call_soon_threadsafe(event.set)

        with self._lock:
            self._wakers[inbox] = wake


class Held:
    """One reader's batch kept in Redis until acknowledged: its key, and the number of
    the last pop whose reply this reader got (-1: not known, so nothing is replayed)."""

    __slots__ = ("acked", "key")

    def __init__(self, key: str) -> None:
        self.key = key
        self.acked = -1

    @classmethod
    def of(cls, layer: RedisChannelLayer, key: str) -> Held:
        """The record for key, made on first use (forgotten records just stop replays)."""
        held = layer.held.get(key)
        if held is None:
            if len(layer.held) >= _HELD_CACHE_SIZE:
                layer.held.clear()
            held = layer.held[key] = cls(key)
        return held

    def replied(self, number: int, task: asyncio.Future[Any]) -> None:
        """Done callback of pop number: the reply arrived, so its batch is ours."""
        if not task.cancelled() and task.exception() is None:
            self.acked = number


def pack_counts(counts: dict[str, int]) -> str:
    """(local part, number) pairs as the scripts take them: "part=n,part=-n"."""
    return ",".join([f"{part}={n}" for part, n in counts.items()])


def _retry_or_stop(layer: RedisChannelLayer) -> None:
    """Raise CancelledError if this task was asked to stop.

    A client library may turn a cancellation that lands mid-command into its own
    error; a retry loop must not swallow it, or the task outlives close().
    """
    task = asyncio.current_task()
    if layer.closed or (task is not None and task.cancelling()):
        raise asyncio.CancelledError


async def _back_off(
    layer: RedisChannelLayer, what: str, shard: int, exc: Exception, backoff: float
) -> float:
    """Stop if asked to; else log, wait backoff seconds, and return the next backoff."""
    _retry_or_stop(layer)
    log.warning(
        "%s from %s failed (%s); retrying in %.2fs", what, layer.shard_names[shard], exc, backoff
    )
    await asyncio.sleep(backoff)
    return min(backoff * 2, _MAX_BACKOFF)


async def _pop(
    layer: RedisChannelLayer,
    shard: int,
    keys: list[str],
    held: Held,
    count: int,
    channel: str | None = None,
    inbox: str | None = None,
) -> list[Any]:
    """Run the pop script; if cancelled meanwhile, still deliver what it took.

    For an inbox, the script first removes the head already delivered, if any, and
    releases the acks pending for it; they are given back if the script fails.
    """
    clients = await layer.connections.here()
    number = next(_POP_NUMBERS)
    args: list[Any] = [count, number, held.acked, layer.held_ttl_ms]
    acks = head = None
    if inbox is not None:
        acks, head = layer.acks.take(inbox), layer.heads.get(inbox)
        if acks or head is not None:
            args.append(pack_counts(acks) if acks else "")
        if head is not None:
            args.append(head)
    task = asyncio.ensure_future(
        scripts.POP(clients.scripting(shard), [keys[0], held.key, *keys[1:]], args, finish=True)
    )
    task.add_done_callback(partial(held.replied, number))
    if inbox is not None and (acks or head is not None):
        task.add_done_callback(partial(_popped, layer, inbox, acks, head))
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        # The server may have popped already: finish, hand the batch over, then stop.
        deliver(layer, keys, await task, channel)
        raise


def _popped(
    layer: RedisChannelLayer,
    inbox: str,
    acks: dict[str, int] | None,
    head: bytes | None,
    task: asyncio.Future[Any],
) -> None:
    if task.cancelled() or task.exception() is not None:
        if acks:
            layer.acks.give_back(inbox, acks)
    elif head is not None and layer.heads.get(inbox) is head:
        del layer.heads[inbox]


async def _wait_nonempty(layer: RedisChannelLayer, shard: int, key: str) -> bytes | None:
    """Block until the list has a head; return it (None after the blocking timeout)."""
    clients = await layer.connections.here()
    # Moving a list's head onto itself blocks until there is one, and takes nothing.
    block = layer.blocking_timeout
    head: bytes | None = await clients.blocking(shard).blmove(key, key, block, "LEFT", "LEFT")  # type: ignore[arg-type,assignment]
    return head


async def read_inbox(layer: RedisChannelLayer, inbox: str) -> None:
    """The one reader of a process inbox: batches of entries into the local buffers."""
    shard = layer.ring.index(inbox)
    keys = [layer.keys.inbox(inbox), layer.keys.depth(inbox)]
    held = Held.of(layer, layer.keys.held(inbox))
    backoff = 0.05
    acks = layer.acks
    offset_ms = 0.0  # server clock minus ours, from the last pop: dates a delivered head
    try:
        while not layer.closed:
            acks.reading(inbox, True)
            try:
                result = await _pop(layer, shard, keys, held, layer.batch_size, inbox=inbox)
                offset_ms = result[0] - time.time() * 1000
                deliver(layer, keys, result)
                if len(result) <= 2:
                    layer.local.maybe_sweep()
                    acks.reading(inbox, False)
                    head = await _wait_nonempty(layer, shard, keys[0])
                    if head is not None and inbox not in layer.heads:
                        layer.heads[inbox] = head
                        deliver(layer, keys, [time.time() * 1000 + offset_ms, 0, head])
                backoff = 0.05
            except RedisError as exc:
                acks.reading(inbox, False)
                backoff = await _back_off(layer, f"reading inbox {inbox}", shard, exc, backoff)
    finally:
        acks.reading(inbox, False)


async def flush_acks(layer: RedisChannelLayer, inbox: str) -> None:
    """Release depth counts for inbox in batches, whenever receivers took messages."""
    event = asyncio.Event()
    layer.acks.set_waker(inbox, event)
    event.set()  # anything pending from before this task
    shard = layer.ring.index(inbox)
    keys = [layer.keys.depth(inbox)]
    while not layer.closed:
        await event.wait()
        event.clear()
        # Let the receivers woken with these take their messages too before releasing.
        await asyncio.sleep(_ACK_DELAY)
        if layer.acks.is_reading(inbox):
            continue  # the reader's next pop releases them; it wakes us if it blocks
        parts = layer.acks.take(inbox)
        if not parts:
            continue
        try:
            clients = await layer.connections.here()
            await scripts.ACK(
                clients.scripting(shard), keys, [pack_counts(parts), layer.held_ttl_ms]
            )
        except RedisError as exc:
            layer.acks.give_back(inbox, parts)
            _retry_or_stop(layer)
            log.warning("releasing capacity on %s failed (%s); retrying", inbox, exc)
            await asyncio.sleep(0.5)
            event.set()
        except asyncio.CancelledError:
            layer.acks.give_back(inbox, parts)
            raise


async def fetch_normal(layer: RedisChannelLayer, channel: str) -> None:
    """Take messages of a normal channel while receivers in this process wait for them."""
    shard = layer.ring.index(channel)
    keys = [layer.keys.channel(channel)]
    # Several processes (and loops) take from one channel: each keeps its own batch.
    reader = f"{layer.client_id}.{id(asyncio.get_running_loop()):x}"
    held = Held.of(layer, layer.keys.held(channel, reader))
    backoff = 0.05
    try:
        while True:
            demand = layer.local.waiting(channel)
            if demand == 0:
                await asyncio.sleep(0)  # let receivers already woken take their message
                if layer.local.waiting(channel) == 0:
                    return
                continue
            try:
                result = await _pop(layer, shard, keys, held, demand, channel)
                deliver(layer, keys, result, channel)
                if len(result) <= 2:
                    await _wait_nonempty(layer, shard, keys[0])
                backoff = 0.05
            except RedisError as exc:
                backoff = await _back_off(layer, f"receiving {channel!r}", shard, exc, backoff)
    finally:
        layer.fetcher_done(channel)
        await _requeue(layer, shard, keys[0], channel)


async def _requeue(layer: RedisChannelLayer, shard: int, key: str, channel: str) -> None:
    """Give a normal channel's unreceived messages back to Redis for other receivers."""
    leftovers = layer.local.drain_unwatched(channel)
    if not leftovers:
        return
    now, wall = time.monotonic(), time.time() * 1000
    entries = [b"%013d" % int(wall + (deadline - now) * 1000) + p for deadline, p in leftovers]
    try:
        clients = await layer.connections.here()
        # finish: a loop shutting down cancels this (a fetcher's last act) mid-reply.
        await scripts.REQUEUE(clients.scripting(shard), [key], entries, finish=True)
    except (RedisError, RuntimeError) as exc:
        layer.counters.requeue_failed += len(entries)
        log.error(
            "could not give %d message(s) of %r back to Redis: %s", len(entries), channel, exc
        )

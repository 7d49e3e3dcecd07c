"""Background tasks that move messages from Redis into the process's local buffers.

Nothing here cancels a command that consumes: a task waits with a non-consuming
BLMOVE (list to itself), then takes a batch with a short pop script whose result is
kept even if the task is cancelled meanwhile. So cancellation never loses a message.
A reply lost on the wire does not either: the script keeps each batch until the
reader's next pop acknowledges it, and hands it over again if it was not (pop.lua).

An inbox has one reader, this process, so the head that BLMOVE returns is delivered at
once, a round trip before the pop that removes it (see inbox.RedisInbox.heads).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from functools import partial
from typing import Any, Protocol

from redis.exceptions import RedisError

from . import scripts
from .counting import packed
from .entries import FIRST_ENTRY, Sink, deliver, fits
from .keys import Keys
from .readers import Held, Reader, back_off, retry_or_stop, wait_nonempty
from .ring import HashRing

__all__ = ["InboxReader", "flush_acks", "read_inbox"]

log = logging.getLogger("layers.redis")
# Pop request numbers: increasing for the whole process, so a late request is always
# recognised as such, even by a reader whose Held record was forgotten.
_POP_NUMBERS = itertools.count(1)
# How long flush_acks lets acks gather before releasing them (when the reader has not
# taken them with its next pop meanwhile): short next to any sender's retry interval.
_ACK_DELAY = 0.001


class InboxReader(Reader, Sink, Protocol):
    """What reading a process inbox uses of a RedisChannelLayer."""

    ring: HashRing
    keys: Keys
    batch_size: int


async def _pop(
    layer: InboxReader,
    shard: int,
    keys: list[str],
    held: Held,
    count: int,
    channel: str | None = None,
    inbox: str | None = None,
) -> list[Any]:
    """Run the pop script; if cancelled meanwhile, still deliver what it took.

    For an inbox, the script first removes the head already delivered, if any, and
    releases the acks pending for it; they are given back if the script fails, as are
    the counts it carries.
    """
    clients = await layer.connections.here()
    number = next(_POP_NUMBERS)
    carried = layer.counts.carry()
    args: list[Any] = [count, number, held.acked, layer.key_ttl_ms, layer.codec.max_message_size]
    args += [packed(carried), layer.counts.lifetime(keys[-1])]
    acks = head = None
    if inbox is not None:
        acks, head = layer.inbox.acks.take(inbox), layer.inbox.heads.get(inbox)
        if acks or head is not None:
            args.append(packed(acks))
        if head is not None:
            args.append(head)
    task = asyncio.ensure_future(
        scripts.POP(clients.scripting(shard), [keys[0], held.key, *keys[1:]], args, finish=True)
    )
    task.add_done_callback(partial(held.replied, number))
    if carried:
        task.add_done_callback(partial(layer.counts.settle, carried))
    if inbox is not None and (acks or head is not None):
        task.add_done_callback(partial(_popped, layer, inbox, acks, head))
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        # The server may have popped already: finish, hand the batch over, then stop.
        deliver(layer, keys, await task, channel)
        raise


def _popped(
    layer: InboxReader,
    inbox: str,
    acks: dict[str, int] | None,
    head: bytes | None,
    task: asyncio.Future[Any],
) -> None:
    if task.cancelled() or task.exception() is not None:
        if acks:
            layer.inbox.acks.give_back(inbox, acks)
    elif head is not None and layer.inbox.heads.get(inbox) is head:
        del layer.inbox.heads[inbox]


async def read_inbox(layer: InboxReader, inbox: str) -> None:
    """The one reader of a process inbox: batches of entries into the local buffers."""
    shard = layer.ring.index(inbox)
    key = layer.keys.inbox(inbox)
    keys = [key, layer.keys.depth(inbox), layer.keys.counts(key)]
    held = Held.of(layer.held, layer.keys.held(inbox))
    backoff = 0.05
    state = layer.inbox
    offset_ms = 0.0  # server clock minus ours, from the last pop: dates a delivered head
    try:
        while not layer.closed:
            retry_or_stop(layer)
            state.reading(inbox, True)
            try:
                result = await _pop(layer, shard, keys, held, layer.batch_size, inbox=inbox)
                offset_ms = result[0] - time.time() * 1000
                deliver(layer, keys, result)
                if len(result) <= FIRST_ENTRY:
                    layer.local.maybe_sweep()
                    state.reading(inbox, False)
                    head = await wait_nonempty(layer, shard, keys[0])
                    # One over the size limit is left for the next pop to drop and count.
                    if head is not None and inbox not in state.heads and fits(layer, head):
                        state.heads[inbox] = head
                        deliver(layer, keys, [time.time() * 1000 + offset_ms, 0, 0, head])
                backoff = 0.05
            except RedisError as exc:
                state.reading(inbox, False)
                backoff = await back_off(layer, f"reading inbox {inbox}", shard, exc, backoff)
    finally:
        state.reading(inbox, False)


async def flush_acks(layer: InboxReader, inbox: str) -> None:
    """Release depth counts for inbox in batches, whenever receivers took messages."""
    event = asyncio.Event()
    state = layer.inbox
    state.set_flusher(inbox, event)
    event.set()  # anything pending from before this task
    shard = layer.ring.index(inbox)
    depth = layer.keys.depth(inbox)
    keys = [depth, layer.keys.counts(depth)]
    while not layer.closed:
        retry_or_stop(layer)
        await event.wait()
        event.clear()
        # Let the receivers woken with these take their messages too before releasing.
        await asyncio.sleep(_ACK_DELAY)
        if state.is_reading(inbox):
            continue  # the reader's next pop releases them; it wakes us if it blocks
        parts = state.acks.take(inbox)
        if not parts:
            continue
        carried = layer.counts.carry()
        try:
            clients = await layer.connections.here()
            lifetime = layer.counts.lifetime(keys[-1])
            args = [packed(parts), layer.key_ttl_ms, packed(carried), lifetime]
            await scripts.ACK(clients.scripting(shard), keys, args)
        except RedisError as exc:
            state.acks.give_back(inbox, parts)
            layer.counts.give_back(carried)
            retry_or_stop(layer)
            log.warning("releasing capacity on %s failed (%s); retrying", inbox, exc)
            await asyncio.sleep(0.5)
            event.set()
        except asyncio.CancelledError:
            state.acks.give_back(inbox, parts)
            layer.counts.give_back(carried)
            raise

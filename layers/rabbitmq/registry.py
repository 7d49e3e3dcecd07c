"""Group membership records, so group_channels() works without the management plugin.

Each group has a queue of records ``[op, channel, wall-clock seconds]``: group_add
appends an "add", group_discard a "discard". The broker routes group messages through
bindings (see layer.py); these records only answer "who is in the group" and let
memberships of normal channels lapse.

Reading is a compaction: take the N records the queue holds (one consumer burst, unacked), fold
them (the latest record per channel wins; an add older than group_expiry is dead),
publish the folded set back, then ack the N taken. A crash halfway leaves duplicates,
which the next fold removes. Records published meanwhile stay in the queue untouched.
Two compactions of one group at the same instant each see only the records they took
(both write theirs back, so nothing is lost, but each listing may be partial).

A check after a discard reads the records the same way: if a live member is left it
gives them back untouched (nacked with requeue); if none is, it deletes the queue
unless a record came meanwhile (``if_empty``), so nothing of a group stays on the
broker once its last member left. A record published after that finds no queue, and
declares it again.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import msgpack
from aiormq.abc import AbstractChannel, DeliveredMessage
from aiormq.exceptions import (
    AMQPConnectionError,
    ChannelInvalidStateError,
    ChannelPreconditionFailed,
)

from .connections import Link, Outcome

__all__ = ["Fold", "compact", "latest_records", "record", "take"]

Record = tuple[str, str, float]
_READ_WAIT = 0.5


@dataclass
class Fold:
    """The result of a compaction."""

    members: dict[str, float] = field(default_factory=dict)  # channel -> joined at
    lapsed: list[str] = field(default_factory=list)  # adds that outlived group_expiry
    deleted: bool = False  # no member was left, and the queue is gone


def pack(op: str, channel: str, at: float) -> bytes:
    """A record's bytes."""
    return msgpack.packb([op, channel, at])  # type: ignore[no-any-return]


def _unpack(body: bytes) -> Record | None:
    try:
        op, channel, at = msgpack.unpackb(body)
    except (ValueError, TypeError):
        return None
    if isinstance(op, str) and isinstance(channel, str) and isinstance(at, int | float):
        return op, channel, float(at)
    return None


async def record(
    link: Link, limit: float, queue: str, arguments: dict[str, Any], op: str, channel: str
) -> None:
    """Append one record to a group's queue (declaring it if it is missing)."""
    await _put(link, limit, queue, arguments, pack(op, channel, time.time()))


async def _put(
    link: Link,
    limit: float,
    queue: str,
    arguments: dict[str, Any],
    body: bytes,
    expiration: int | None = None,
) -> None:
    outcome = await link.publish(limit, "", queue, body, {}, expiration)
    if outcome is Outcome.RETURNED:  # deleted as empty meanwhile (or never declared)
        await link.call(
            "declaring a group registry",
            limit,
            lambda ch: ch.queue_declare(queue, arguments=arguments),
        )
        await link.publish(limit, "", queue, body, {}, expiration)


async def take(channel: AbstractChannel, queue: str, count: int) -> list[DeliveredMessage]:
    """Up to count records, unacked: one consumer burst rather than a get per record."""
    got: list[DeliveredMessage] = []
    enough = asyncio.Event()

    async def on_message(message: DeliveredMessage) -> None:
        got.append(message)
        if len(got) >= count:
            enough.set()

    ok = await channel.basic_consume(queue, on_message, no_ack=False)
    try:
        # Another compaction may hold some of the count: stop waiting for those soon.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(enough.wait(), _READ_WAIT)
    finally:
        # Every delivery before the cancel-ok has been handed to on_message by then.
        await channel.basic_cancel(str(ok.consumer_tag))
    return got


def latest_records(taken: list[DeliveredMessage]) -> dict[str, Record]:
    """The latest record of each channel among those taken (unreadable ones skipped)."""
    latest: dict[str, Record] = {}
    for message in taken:
        rec = _unpack(message.body)
        if rec is not None and (rec[1] not in latest or latest[rec[1]][2] <= rec[2]):
            latest[rec[1]] = rec
    return latest


async def compact(
    link: Link,
    limit: float,
    queue: str,
    arguments: dict[str, Any],
    group_expiry: float,
    delete_if_empty: bool = False,
) -> Fold:
    """Read, fold and rewrite a group's records (or delete them all); its live members."""
    declared = await link.call(
        "reading a group registry", limit, lambda ch: ch.queue_declare(queue, arguments=arguments)
    )
    count = declared.message_count or 0
    taken = (
        await link.call("reading a group registry", limit, partial(take, queue=queue, count=count))
        if count
        else []
    )
    latest = latest_records(taken)
    now = time.time()
    fold = Fold()
    alive = any(op == "add" and at + group_expiry > now for op, _, at in latest.values())
    if delete_if_empty and alive:
        # Only asked whether the group is empty: the records go back as they were, not
        # rewritten (that is O(members) publishes, for every member that leaves).
        await _ack_taken(taken, limit, requeue=True)
        fold.members = {
            c: at for op, c, at in latest.values() if op == "add" and at + group_expiry > now
        }
        return fold
    if delete_if_empty:
        await _ack_taken(taken, limit)
        fold.lapsed = [channel for op, channel, _ in latest.values() if op == "add"]
        fold.deleted = await link.call(
            "deleting an empty group", limit, lambda _: _delete_if_empty(link, queue)
        )
        return fold
    rewrite = []
    for op, channel, at in latest.values():
        if op == "add" and at + group_expiry > now:
            fold.members[channel] = at
        elif op == "add":
            fold.lapsed.append(channel)
        if at + group_expiry > now:
            # A discard is kept while an add it overrides could still be alive; an add
            # keeps no expiration, so the compaction after it lapses sees it and the
            # layer can unbind a normal channel's queue.
            expiration = int((at + group_expiry - now) * 1000) if op != "add" else None
            body = pack(op, channel, at)
            rewrite.append(_put(link, limit, queue, arguments, body, expiration))
    await asyncio.gather(*rewrite)  # confirmed before the originals are acked
    await _ack_taken(taken, limit)
    return fold


async def _delete_if_empty(link: Link, queue: str) -> bool:
    """Delete queue unless it holds a record; True if it did.

    On a channel of its own: the broker refuses with a channel error (406), which would
    close the channel every other call shares.
    """
    transport = link.connection.transport
    if transport is None:
        raise ChannelInvalidStateError("the connection is down")
    channel = await transport.connection.channel()
    try:
        await channel.queue_delete(queue, if_empty=True)
    except ChannelPreconditionFailed:
        return False  # and the broker closed the channel: closing it again is an error
    await channel.close()
    return True


async def _ack_taken(taken: list[DeliveredMessage], limit: float, requeue: bool = False) -> None:
    """Ack (or give back) the records taken, on their channel, if it is still open.

    A delivery tag means something only on its own channel. If that channel closed
    meanwhile (a channel error of any call sharing it), the broker has put the records
    back already, and the next fold removes the duplicates our rewrite made; acking the
    tags on the reopened channel would be "unknown delivery tag", a channel error that
    closes it again under every other call.
    """
    acks = [
        message.channel.basic_nack(tag, requeue=True) if requeue else message.channel.basic_ack(tag)
        for message in taken
        if (tag := getattr(message.delivery, "delivery_tag", None)) is not None
        and not message.channel.is_closed
    ]
    with contextlib.suppress(ChannelInvalidStateError, AMQPConnectionError, ConnectionError):
        async with asyncio.timeout(limit):
            await asyncio.gather(*acks)

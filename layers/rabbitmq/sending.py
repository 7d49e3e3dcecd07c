"""send_many's publishes: bundled per inbox, in windows, each confirm awaited and checked.

The items of one send_many for another process's channels travel to its inbox as
bundles: one message of up to BUNDLE items (header ``wire.BUNDLE`` = the item count,
body a msgpack array channel, payload, channel, payload...). One publish, one confirm
and one ack then carry up to BUNDLE items; the broker's confirm covers them all, so
each item's result is the bundle's. The receiving inbox unpacks it (inbox.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import msgpack

from ..base import BatchResult
from ..exceptions import ChannelFull, ChannelLayerError
from . import wire
from .connections import Link, Outcome

__all__ = ["BUNDLE", "Publish", "bundles", "publish_in_windows", "unbundle"]

# Publishes of one send_many in flight at once, at most: each holds a task and a future.
_PIPELINE = 64
BUNDLE = 100
"""Items of one send_many to one inbox per message, at most."""
# Payload bytes per bundle, about: far below the broker's largest message (16 MiB by
# default since RabbitMQ 4), so a bundle of items that fit alone fits too.
BUNDLE_BYTES = 1 << 20

Judge = Callable[[Link, str, bytes, Outcome], Awaitable[ChannelFull | None]]
"""(link, channel, payload, outcome) -> the error a send's outcome means, or None."""


@dataclass(slots=True)
class Publish:
    """One publish of a send_many: the batch items it carries, where, and what."""

    indexes: list[int]
    queue: str
    headers: dict[str, Any]
    body: bytes


def bundles(
    items: list[tuple[str, bytes]],
    indexes: list[int],
    queue: str,
    headers: Callable[..., dict[str, Any]],
) -> list[Publish]:
    """The publishes of items[i], i in indexes, to one inbox queue: bundles of up to
    BUNDLE items and about BUNDLE_BYTES (a lone item as itself). headers(**extra): a
    publish's headers."""
    chunks: list[list[int]] = []
    size = 0
    for index in indexes:
        length = len(items[index][1])
        if not chunks or len(chunks[-1]) >= BUNDLE or size + length > BUNDLE_BYTES:
            chunks.append([])
            size = 0
        chunks[-1].append(index)
        size += length
    publishes = []
    for chunk in chunks:
        if len(chunk) == 1:
            channel, payload = items[chunk[0]]
            publishes.append(Publish(chunk, queue, headers(**{wire.CHANNEL: channel}), payload))
            continue
        flat: list[str | bytes] = []
        for index in chunk:
            flat.extend(items[index])
        body = msgpack.packb(flat, use_bin_type=True)
        publishes.append(Publish(chunk, queue, headers(**{wire.BUNDLE: len(chunk)}), body))
    return publishes


def unbundle(body: bytes, count: object) -> list[tuple[str, bytes]] | None:
    """The (channel, payload) pairs of a bundle, None if it is not count of them."""
    try:
        flat = msgpack.unpackb(body, raw=False, use_list=True)
    except (ValueError, msgpack.UnpackException):
        return None
    if not isinstance(flat, list) or not isinstance(count, int) or len(flat) != 2 * count:
        return None
    pairs = list(zip(flat[::2], flat[1::2], strict=True))
    if not all(isinstance(c, str) and isinstance(p, bytes) for c, p in pairs):
        return None
    return pairs


async def publish_in_windows(
    link: Link,
    confirm_within: float,
    items: list[tuple[str, bytes]],
    publishes: list[Publish],
    results: BatchResult,
    judge: Judge,
) -> None:
    """Publish in windows of 1, 2, 4... in flight; each item's result into results.

    Every item of a publish gets its judged outcome. After a connection error the rest
    is left untried, with that error.
    """
    pending, size = publishes, 1
    while pending:
        # Windows of 1, 2, 4 publishes: on a link that just went down, one call
        # waits for the reconnect, as a lone send would.
        window, pending = pending[:size], pending[size:]
        size = min(2 * size, _PIPELINE)
        outcomes = await asyncio.gather(
            *(link.publish(confirm_within, "", p.queue, p.body, p.headers) for p in window),
            return_exceptions=True,
        )
        failed: ChannelLayerError | None = None
        for publish, outcome in zip(window, outcomes, strict=True):
            for index in publish.indexes:
                if isinstance(outcome, Outcome):
                    channel, payload = items[index]
                    results[index] = await judge(link, channel, payload, outcome)
                elif isinstance(outcome, ChannelLayerError):
                    results[index] = failed = outcome
                else:
                    raise outcome
        if failed is not None:  # the rest would fail alike: left untried
            for publish in pending:
                for index in publish.indexes:
                    results[index] = failed
            break

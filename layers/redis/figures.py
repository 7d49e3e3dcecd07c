"""Deployment figures on Redis: the counters the scripts keep, the rest read from keys.

The counters are in one hash per shard, or per slot on a cluster (counting.py): the
reader sums every ``<prefix>:f`` and ``<prefix>:f:{tag}`` it finds.

A counters hash lapses once nothing counted in it for group_expiry (counting.py): the
counts of a prefix idle that long start again from zero.

What no script runs for and no surviving process sees is not counted: a key whose TTL
ran out (a channel or inbox nobody used for twice the expiry) takes its unread
messages with it, as does a send to the inbox of a process that died (its messages
are counted as sent, never as delivered or dropped). A batch prefetched by a process
that died holding it is counted as dropped_dead_owner by the next fetch of the
channel. What only a process saw reaches Redis with its next script call, or within
SYNC_EVERY seconds (counting.py): a process killed meanwhile takes those counts along.

figures() also SCANs the prefix's keys on every shard (never KEYS) and reads them with
one pipelined round trip per page of SCAN_PAGE keys: a normal channel's list length,
each process-local channel's unread direct messages (the inbox's depth hash: queued
or buffered by its owner; group messages a process took into its buffers are capped
and counted there, never in Redis), each group's members whose membership has not
lapsed (by this process's clock), and the counters.
"""

from __future__ import annotations

import re
import time
from typing import Any

from redis.exceptions import RedisError

from ..exceptions import ChannelLayerConnectionError
from ..figures import SHARED_COUNTERS, Figures, add_counts, top
from .counting import SYNC_EVERY, CountingLayer, SharedCounts

__all__ = ["SCAN_PAGE", "read_figures"]

SCAN_PAGE = 1000
"""Keys per SCAN page, and per pipelined round trip that reads them."""
_NOTE = (
    "not counted: messages in keys whose TTL ran out (unused for twice the expiry), "
    "and sends to the inbox of a process that died (counted as sent only); what only a "
    f"process saw reaches Redis with its next script call or within {SYNC_EVERY:g} s, and "
    "a process killed meanwhile loses those counts; depths leave out group messages "
    "already in their owner process's buffers (Redis never counted them: that "
    "process's stats() has them); the counters start again once nothing was counted "
    "for group_expiry (their hash lapses, so an abandoned prefix leaves nothing behind)"
)
# An inbox member's expiry in a group's hash (see scripts/group_add.lua).
_MEMBER_EXPIRY = re.compile(r"=(\d{13})")


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _inside(key: bytes | str) -> str:
    """The name between a key's braces."""
    text = _text(key)
    return text[text.index("{") + 1 : text.rindex("}")]


def _live_members(fields: dict[Any, Any], now_ms: int) -> int:
    """The members in a group's hash whose membership has not lapsed."""
    live = 0
    for target, value in fields.items():
        text = _text(value)
        if _text(target).endswith("!"):
            live += sum(int(at) > now_ms for at in _MEMBER_EXPIRY.findall(text))
        elif int(text[:13]) > now_ms:
            live += 1
    return live


class _Reading:
    """What the keys read so far add up to."""

    def __init__(self, prefix: str) -> None:
        self.start = len(prefix) + 1
        self.counters = dict.fromkeys(SHARED_COUNTERS, 0)
        self.depths: dict[str, int] = {}
        self.sizes: dict[str, int] = {}
        self.now_ms = int(time.time() * 1000)

    def wanted(self, key: bytes | str) -> str | None:
        """The kind of a key whose value the figures read ("c", "d", "g", "f"), or None."""
        text = _text(key)
        kind, after = text[self.start : self.start + 1], text[self.start + 1 : self.start + 2]
        return kind if kind in ("c", "d", "g", "f") and after in (":", "") else None

    def add(self, kind: str, key: bytes | str, value: Any) -> None:
        """Add one key's value (LLEN for "c", HGETALL for the others)."""
        if kind == "c":
            if value:
                self.depths[_inside(key)] = int(value)
        elif kind == "d":
            inbox = _inside(key)
            add_counts(self.depths, {inbox + _text(p): int(n) for p, n in value.items()})
        elif kind == "g":
            if members := _live_members(value, self.now_ms):
                self.sizes[_inside(key)] = members
        else:
            add_counts(self.counters, {_text(k): int(n) for k, n in value.items()})


async def _read_page(client: Any, reading: _Reading, page: list[tuple[str, Any]]) -> None:
    """Read a page of keys in one pipelined round trip (per node, on a cluster)."""
    if not page:
        return
    pipe = client.pipeline(transaction=False)
    for kind, key in page:
        if kind == "c":
            pipe.llen(key)
        else:
            pipe.hgetall(key)
    for (kind, key), value in zip(page, await pipe.execute(), strict=True):
        reading.add(kind, key, value)


async def read_figures(layer: CountingLayer, counts: SharedCounts, limit: int) -> Figures:
    """The deployment's figures for layer's prefix."""
    counts.ensure()
    reading = _Reading(layer.prefix)
    try:
        await counts.push()
        clients = await layer.connections.here()
        for shard in range(len(layer.shard_names)):
            client = clients.command(shard)
            page: list[tuple[str, Any]] = []
            async for found in client.scan_iter(match=layer.keys.pattern, count=SCAN_PAGE):
                kind = reading.wanted(found)
                if kind is not None:
                    page.append((kind, found))
                if len(page) >= SCAN_PAGE:
                    await _read_page(client, reading, page)
                    page = []
            await _read_page(client, reading, page)
    except (RedisError, OSError) as exc:
        raise ChannelLayerConnectionError(f"reading the figures from Redis: {exc!r}") from exc
    depths = {channel: n for channel, n in reading.depths.items() if n > 0}
    sizes = reading.sizes
    return Figures(
        backend="RedisChannelLayer",
        prefix=layer.prefix,
        scope="deployment",
        counters=reading.counters,
        queued=sum(depths.values()),
        groups=len(sizes),
        members=sum(sizes.values()),
        deepest=top(depths, limit),
        largest_groups=top(sizes, limit),
        notes=(_NOTE,),
    )

"""Entries taken from Redis, parsed and put into the process's local buffers.

An entry is the 13-digit expiry in Unix ms, then (inbox entries only) the local
channel part(s) it is for and a newline, then the payload. An entry that does not parse
was not written by a layer: it is dropped and counted, never fatal to the reader.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .layer import RedisChannelLayer

__all__ = ["UNBOUNDED", "deliver"]

log = logging.getLogger("layers.redis")
UNBOUNDED = sys.maxsize  # capacity was enforced in Redis when the message was sent
_FANOUT_CACHE_SIZE = 64


def deliver(
    layer: RedisChannelLayer, keys: list[str], result: list[Any], channel: str | None = None
) -> None:
    """Put a pop script's entries into the local buffers (channel: a normal channel's)."""
    now_ms, expired = result[0], result[1]
    if expired:
        layer.counters.dropped_expired += expired
    if len(result) <= 2:
        return
    now = time.monotonic()
    # No entry outlives expiry, whatever its header says (a forged one could).
    latest = now + layer.expiry
    put = layer.local.put
    if channel is not None:
        for entry in result[2:]:
            try:
                deadline = now + (int(entry[:13]) - now_ms) / 1000
            except ValueError:
                _malformed(layer, keys[0], entry)
                continue
            put(channel, entry[13:], min(deadline, latest), UNBOUNDED)
        return
    inbox = keys[0][keys[0].index("{") + 1 : -1]
    fanouts = layer.fanouts
    for entry in result[2:]:
        try:
            newline = entry.index(b"\n", 13)
            deadline = min(now + (int(entry[:13]) - now_ms) / 1000, latest)
            parts = entry[13:newline]
            if b"," in parts:
                # A group_send's entry: the same members' names again and again.
                channels = fanouts.get((inbox, parts)) or _fanout(layer, inbox, parts)
            else:
                channels = None
                single = inbox + parts.decode("ascii")
        except ValueError:  # not written by us: no deadline, no newline, not ASCII
            _malformed(layer, keys[0], entry)
            continue
        payload = entry[newline + 1 :]
        if channels is None:
            put(single, payload, deadline, UNBOUNDED)
            continue
        for name in channels:
            put(name, payload, deadline, UNBOUNDED)


def _fanout(layer: RedisChannelLayer, inbox: str, parts: bytes) -> list[str]:
    """The channels an inbox entry header names, cached."""
    channels = [inbox + part for part in parts.decode("ascii").split(",")]
    if len(layer.fanouts) >= _FANOUT_CACHE_SIZE:
        layer.fanouts.clear()
    layer.fanouts[inbox, parts] = channels
    return channels


def _malformed(layer: RedisChannelLayer, key: str, entry: bytes) -> None:
    layer.counters.dropped_undecodable += 1
    log.warning("dropped a malformed entry of %s: %r", key, entry[:40])

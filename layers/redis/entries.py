"""Entries taken from Redis, parsed and put into the process's local buffers.

An entry is the 13-digit expiry in Unix ms, then (inbox entries only) the local
channel part(s) it is for and a newline, then the payload. An entry that does not parse
was not written by a layer: it is dropped and counted, never fatal to the reader.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Protocol

from ..codec import Codec
from ..counters import Counters
from ..local import UNBOUNDED, LocalChannels
from .counting import Scripted
from .inbox import RedisInbox

__all__ = ["FIRST_ENTRY", "Sink", "deliver", "fits"]

log = logging.getLogger("layers.redis")

FIRST_ENTRY = 3
"""Where a pop script's reply lists its entries: after the server time in ms, the
expired count and the count of entries over the reader's max_message_size."""


class Sink(Protocol):
    """What delivering entries uses of a RedisChannelLayer."""

    counters: Counters
    codec: Codec
    expiry: float
    local: LocalChannels
    inbox: RedisInbox
    scripted: Scripted


def deliver(layer: Sink, keys: list[str], result: list[Any], channel: str | None = None) -> None:
    """Put a pop script's entries into the local buffers (channel: a normal channel's)."""
    now_ms, expired, oversized = result[:FIRST_ENTRY]
    # The script counted these in Redis already (scripted: none left to carry).
    if expired:
        layer.counters.dropped_expired += expired
        layer.scripted.dropped_expired += expired
    if oversized:
        layer.counters.dropped_undecodable += oversized
        layer.scripted.dropped_undecodable += oversized
        log.warning(
            "dropped %d entries of %s over max_message_size (%d)",
            oversized,
            keys[0],
            layer.codec.max_message_size,
        )
    if len(result) <= FIRST_ENTRY:
        return
    now = time.monotonic()
    # No entry outlives expiry, whatever its header says (a forged one could).
    latest = now + layer.expiry
    put = layer.local.put
    if channel is not None:
        for entry in result[FIRST_ENTRY:]:
            try:
                deadline = now + (int(entry[:13]) - now_ms) / 1000
            except ValueError:
                _malformed(layer, keys[0], entry)
                continue
            put(channel, entry[13:], min(deadline, latest), UNBOUNDED)
        return
    inbox = keys[0][keys[0].index("{") + 1 : -1]
    fan_out = layer.inbox.fanout.deliver
    for entry in result[FIRST_ENTRY:]:
        try:
            deadline = min(now + (int(entry[:13]) - now_ms) / 1000, latest)
        except ValueError:  # not written by us
            _malformed(layer, keys[0], entry)
            continue
        fan_out(inbox, entry, deadline, 13, keys[0])


def fits(layer: Sink, entry: bytes) -> bool:
    """True unless an inbox entry's payload is over max_message_size (as pop.lua tells)."""
    newline = entry.find(b"\n", 13)
    size = len(entry) - (newline + 3 if newline >= 0 else 13)
    return size <= layer.codec.max_message_size


def _malformed(layer: Sink, key: str, entry: bytes) -> None:
    layer.counters.dropped_undecodable += 1
    log.warning("dropped a malformed entry of %s: %r", key, entry[:40])

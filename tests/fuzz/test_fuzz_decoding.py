"""Garbage written straight into the transport is dropped and counted, never fatal.

Random bytes, truncated and tampered payloads are pushed into the Redis lists a layer
reads (a process inbox and a normal channel), bypassing ``send``. The reader must drop
them, count them, and go on delivering, on that channel and on others.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redis.asyncio import Redis

from tests.fuzz.garbage import foreign, tampered
from tests.helpers import msg, recv
from tests.variants import RelayingRedisChannelLayer

# An entry as the scripts write it: 13-digit expiry in ms, then (inbox only) the local
# channel's name and a newline, then the payload.
FAR_FUTURE = b"9999999999999"

entries = st.one_of(
    st.binary(max_size=64),  # anything at all, header included
    st.binary(max_size=64).map(lambda b: FAR_FUTURE + b),  # a good deadline, then garbage
    st.binary(max_size=64).map(lambda b: FAR_FUTURE + b"\n" + b),
    st.binary(max_size=32).map(lambda b: b"abcdefghijklm" + b),  # a deadline that is no number
)


@pytest.fixture
async def client(redis_url: str) -> AsyncIterator[Redis]:
    connection = Redis.from_url(redis_url)
    yield connection
    await connection.aclose()


@pytest.mark.parametrize("encrypted", [False, True], ids=["plain", "encrypted"])
@settings(
    max_examples=15,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(garbage=st.lists(entries, min_size=1, max_size=8), data=st.data())
async def test_garbage_in_redis_lists_is_dropped_and_counted(
    redis_url: str, client: Redis, encrypted: bool, garbage: list[bytes], data: st.DataObject
) -> None:
    keys = ["k1-sixteen-bytes-at-least"] if encrypted else None
    # Relaying: the valid messages below go through the inbox the garbage is in.
    layer = RelayingRedisChannelLayer(
        hosts=[redis_url], prefix=f"z{secrets.token_hex(4)}", symmetric_encryption_keys=keys
    )
    try:
        local, other = await layer.new_channel(), await layer.new_channel()
        inbox = layer.non_local_name(local)
        part = local[len(inbox) :].encode()
        good = layer.codec.encode(msg(0))
        broken = [
            *garbage,
            FAR_FUTURE + part + b"\n" + tampered(good, data, encrypted),
            FAR_FUTURE + part + b"\n" + foreign(),
        ]
        await client.rpush(layer.keys.inbox(inbox), *broken)
        await client.rpush(layer.keys.channel("normal"), *[FAR_FUTURE + b for b in broken])
        # Raw garbage at the head of a normal channel: sends must still trim and push.
        await client.rpush(layer.keys.channel("raw"), *garbage)
        await layer.group_add("g", "raw")
        await layer.send("raw", msg(4))
        await layer.group_send("g", msg(5))
        await layer.send(local, msg(1))
        await layer.send(other, msg(2))
        await layer.send("normal", msg(3))
        async with asyncio.timeout(10):
            assert (await recv(layer, local))["seq"] == 1
            assert (await recv(layer, other))["seq"] == 2
            assert (await recv(layer, "normal"))["seq"] == 3
            assert [(await recv(layer, "raw"))["seq"] for _ in range(2)] == [4, 5]
        stats = layer.stats()
        # Each broken entry is dropped and counted once, wherever it was found (a
        # flipped byte may land in a part that still decodes, so "at least" the rest).
        assert stats["dropped_undecodable"] + stats["dropped_expired"] >= 2 * len(garbage)
        assert stats["received"] == 5
    finally:
        await layer.flush()
        await layer.close()

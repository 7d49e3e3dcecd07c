"""The receiver's limits on what anyone with write access puts straight into Redis
(issue 17, item 7): entries over max_message_size are dropped and counted by the pop
scripts themselves, so they never reach Python; a forged inbox entry naming a huge
number of channels is dropped and counted before any buffer is made for them."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from redis.asyncio import Redis

from layers.inbox import HEADER, MAX_ENTRY_CHANNELS
from layers.redis import RedisChannelLayer, fetching, receiving
from tests.helpers import msg, nothing, recv

HUGE = 2 << 20  # twice the default max_message_size


@pytest.fixture
async def client(redis_url: str) -> AsyncIterator[Redis]:
    connection = Redis.from_url(redis_url)
    yield connection
    await connection.aclose()


@pytest.fixture
async def layer(redis_url: str) -> AsyncIterator[RedisChannelLayer]:
    made = RedisChannelLayer(hosts=[redis_url], prefix=f"l{secrets.token_hex(4)}")
    yield made
    await made.flush()
    await made.close()


@pytest.fixture
def largest(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The size of the largest entry any pop or fetch handed to Python, as it grows."""
    seen = [0]

    def spy(deliver: Callable[..., None]) -> Callable[..., None]:
        def wrapper(layer: Any, keys: list[str], result: list[Any], *args: Any) -> None:
            for entry in result[3:]:
                seen[0] = max(seen[0], len(entry))
            deliver(layer, keys, result, *args)

        return wrapper

    monkeypatch.setattr(receiving, "deliver", spy(receiving.deliver))
    monkeypatch.setattr(fetching, "deliver", spy(fetching.deliver))
    return seen


async def send_from_another_process(
    url: str, layer: RedisChannelLayer, channel: str, seq: int
) -> None:
    """Send msg(seq) to layer's process-local channel from another layer (so through
    its inbox in Redis), and receive it there."""
    sender = RedisChannelLayer(hosts=[url], prefix=layer.prefix)
    try:
        await sender.send(channel, msg(seq))
        assert (await recv(layer, channel))["seq"] == seq
    finally:
        await sender.close()


def expires() -> bytes:
    return b"%013d" % int((time.time() + 60) * 1000)


async def test_huge_entries_in_a_normal_channel_never_reach_python(
    layer: RedisChannelLayer, client: Redis, largest: list[int]
) -> None:
    huge = [expires() + bytes([0x80 + i]) * HUGE for i in range(4)]
    await client.rpush(layer.keys.channel("big"), *huge)
    await layer.send("big", msg(1))
    assert (await recv(layer, "big"))["seq"] == 1
    assert layer.stats()["dropped_undecodable"] == 4
    assert 0 < largest[0] < layer.codec.max_message_size


async def test_huge_inbox_entries_never_reach_python(
    redis_url: str, layer: RedisChannelLayer, client: Redis, largest: list[int]
) -> None:
    local = await layer.new_channel()
    inbox = layer.non_local_name(local)
    part = local[len(inbox) :].encode()
    huge = [expires() + part + b"\n" + HEADER + b"\x80" * HUGE for _ in range(4)]
    await client.rpush(layer.keys.inbox(inbox), *huge)
    await send_from_another_process(redis_url, layer, local, 2)
    assert layer.stats()["dropped_undecodable"] == 4
    assert 0 < largest[0] < layer.codec.max_message_size


async def test_an_entry_naming_500k_channels_is_dropped_before_buffering(
    redis_url: str, layer: RedisChannelLayer, client: Redis
) -> None:
    local = await layer.new_channel()
    inbox = layer.non_local_name(local)
    parts = ",".join(f"x{i}" for i in range(500_000)).encode()
    assert parts.count(b",") >= MAX_ENTRY_CHANNELS
    forged = expires() + parts + b"\n" + HEADER + layer.codec.encode(msg(0))
    await client.rpush(layer.keys.inbox(inbox), forged)
    await send_from_another_process(redis_url, layer, local, 3)
    assert layer.stats()["dropped_undecodable"] == 1
    assert layer.local.depths() == {}  # no buffer was made for any of them


async def test_a_dropped_entry_gives_its_channel_s_capacity_back(
    redis_url: str, client: Redis
) -> None:
    prefix = f"l{secrets.token_hex(4)}"
    receiver = RedisChannelLayer(hosts=[redis_url], prefix=prefix, capacity=1, max_message_size=100)
    sender = RedisChannelLayer(hosts=[redis_url], prefix=prefix, capacity=1)
    try:
        local = await receiver.new_channel()
        await sender.send(local, msg(1, body="x" * 200))  # over the receiver's limit
        await sender.send("normal", msg(2, body="x" * 200))
        await nothing(receiver, "normal", 0.3)  # a fetch drops it
        async with asyncio.timeout(5):
            while receiver.stats()["dropped_undecodable"] < 2:
                await asyncio.sleep(0.02)
        # The dropped entries no longer count against their channels' capacity.
        await sender.send(local, msg(3))
        assert (await recv(receiver, local))["seq"] == 3
        await sender.send("normal", msg(4))
        assert (await recv(receiver, "normal"))["seq"] == 4
    finally:
        await receiver.flush()
        await receiver.close()
        await sender.close()

"""Sharding: the ring, where channels live, and channels_redis's multi-host bugs."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from layers.exceptions import ChannelFull
from layers.redis import RedisChannelLayer
from layers.redis.ring import HashRing
from tests.helpers import msg, nothing, recv


@pytest.fixture
async def pair(
    redis_shards: list[str],
) -> AsyncIterator[tuple[RedisChannelLayer, RedisChannelLayer]]:
    """Two 'processes' on the same three shards."""
    prefix = f"t{secrets.token_hex(4)}"
    first = RedisChannelLayer(hosts=redis_shards, prefix=prefix)
    second = RedisChannelLayer(hosts=redis_shards, prefix=prefix)
    yield first, second
    await first.flush()
    await first.close()
    await second.close()


def test_adding_a_fourth_shard_moves_about_a_quarter_of_the_keys() -> None:
    names = [f"specific.{secrets.token_hex(6)}!" for _ in range(20_000)]
    three = HashRing(["redis://a:6379", "redis://b:6379", "redis://c:6379"])
    four = HashRing(["redis://a:6379", "redis://b:6379", "redis://c:6379", "redis://d:6379"])
    moved = sum(three.index(n) != four.index(n) for n in names) / len(names)
    assert moved <= 0.35, f"{moved:.1%} of keys moved"
    shares = [sum(three.index(n) == i for n in names) / len(names) for i in range(3)]
    assert min(shares) > 0.25, f"uneven shards: {shares}"
    # Order of the hosts list does not matter: a shard is placed by its identity.
    shuffled = HashRing(["redis://c:6379", "redis://a:6379", "redis://b:6379"])
    assert all(three.nodes[three.index(n)] == shuffled.nodes[shuffled.index(n)] for n in names)


async def test_direct_sends_to_local_channels_arrive_with_three_hosts(
    pair: tuple[RedisChannelLayer, RedisChannelLayer],
) -> None:
    # channels_redis#221: the shard was chosen by the full name, the key by the inbox.
    receiver, sender = pair
    channels = [await receiver.new_channel() for _ in range(30)]
    for i, channel in enumerate(channels):
        await sender.send(channel, msg(i))
    for i, channel in enumerate(channels):
        assert (await recv(receiver, channel))["seq"] == i


async def test_a_normal_channel_lives_on_exactly_one_shard(
    pair: tuple[RedisChannelLayer, RedisChannelLayer], redis_shards: list[str]
) -> None:
    sender, receiver = pair
    for i in range(20):
        await sender.send("work", msg(i))
    lengths = []
    for url in redis_shards:
        async with aioredis.from_url(url) as client:
            lengths.append(await client.llen(sender.keys.channel("work")))
    assert sorted(lengths) == [0, 0, 20]
    assert [(await recv(receiver, "work", timeout=2))["seq"] for _ in range(20)] == list(range(20))


async def test_capacity_is_per_local_channel_not_per_process(redis_shards: list[str]) -> None:
    # channels_redis#97: every local channel of a process shared one capacity.
    prefix = f"t{secrets.token_hex(4)}"
    receiver = RedisChannelLayer(hosts=redis_shards, prefix=prefix, capacity=2)
    sender = RedisChannelLayer(hosts=redis_shards, prefix=prefix, capacity=2)
    try:
        busy, quiet = await receiver.new_channel(), await receiver.new_channel()
        await sender.send(busy, msg(1))
        await sender.send(busy, msg(2))
        with pytest.raises(ChannelFull):
            await sender.send(busy, msg(3))
        await sender.send(quiet, msg(1))
        await sender.send(quiet, msg(2))
        with pytest.raises(ChannelFull):
            await sender.send(quiet, msg(3))
        # Receiving releases capacity for that channel, for every sender.
        assert (await recv(receiver, busy))["seq"] == 1
        async with asyncio.timeout(5):
            while True:
                try:
                    await sender.send(busy, msg(3))
                    break
                except ChannelFull:
                    await asyncio.sleep(0.02)
        assert [(await recv(receiver, busy))["seq"] for _ in range(2)] == [2, 3]
    finally:
        await receiver.flush()
        await receiver.close()
        await sender.close()


async def test_group_send_across_shards_with_lapsed_members(redis_shards: list[str]) -> None:
    # channels_redis trimmed lapsed members through a pipeline on the wrong shard.
    prefix = f"t{secrets.token_hex(4)}"
    layer = RedisChannelLayer(hosts=redis_shards, prefix=prefix, group_expiry=0.3)
    try:
        old = [await layer.new_channel("old") for _ in range(5)]
        for channel in old:
            await layer.group_add("room", channel)
        await asyncio.sleep(0.4)
        fresh = [await layer.new_channel(f"p{i}") for i in range(6)] + ["worker.a", "worker.b"]
        for channel in fresh:
            await layer.group_add("room", channel)
        assert sorted(await layer.group_channels("room")) == sorted(fresh)
        await layer.group_send("room", msg(1))
        for channel in fresh:
            assert (await recv(layer, channel))["seq"] == 1
    finally:
        await layer.flush()
        await layer.close()


async def test_group_fan_out_and_a_discard_by_another_process_across_shards(
    redis_shards: list[str],
) -> None:
    # Inboxes of several processes and prefixes spread over the shards: each gets one
    # entry per group_send, and a discard made by a third layer holds on every shard.
    prefix = f"t{secrets.token_hex(4)}"
    owners = [RedisChannelLayer(hosts=redis_shards, prefix=prefix) for _ in range(2)]
    other = RedisChannelLayer(hosts=redis_shards, prefix=prefix)
    try:
        members = [
            await owner.new_channel(f"p{i}") for owner in owners for i in range(4) for _ in "ab"
        ]
        shards = {other.ring.index(other.non_local_name(c)) for c in members}
        assert len(shards) > 1
        for channel in members:
            await other.group_add("room", channel)
        await other.group_send("room", msg(1))
        gone = members[::3]
        for channel in gone:
            await other.group_discard("room", channel)
        await other.group_send("room", msg(2))
        for channel in members:
            owner = owners[0] if owners[0].owns(channel) else owners[1]
            expected = [1] if channel in gone else [1, 2]
            assert [(await recv(owner, channel))["seq"] for _ in expected] == expected
            if channel in gone:
                await nothing(owner, channel, 0.02)
    finally:
        await other.flush()
        for layer in (*owners, other):
            await layer.close()

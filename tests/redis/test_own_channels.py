"""A layer's messages to its own new_channel() channels never travel through Redis.

They go straight into the receiving buffers; only their depth count reaches Redis
(batched with the acks), so other processes' sends still see the channel's load.
"""

from __future__ import annotations

import asyncio
import secrets

import pytest

from layers.exceptions import ChannelFull
from layers.redis import RedisChannelLayer
from tests.helpers import msg, recv
from tests.redis.test_wire import calls
from tests.redis_procs import RedisProcess


def pair(server: RedisProcess, **options: object) -> tuple[RedisChannelLayer, RedisChannelLayer]:
    """Two layers (two processes, as far as Redis can tell) on one prefix."""
    prefix = f"t{secrets.token_hex(4)}"
    return (
        RedisChannelLayer(hosts=[server.url], prefix=prefix, **options),
        RedisChannelLayer(hosts=[server.url], prefix=prefix, **options),
    )


async def depth(server: RedisProcess, layer: RedisChannelLayer, channel: str) -> dict[str, str]:
    """The depth hash of channel's inbox, once the layer's pending acks went out."""
    await asyncio.sleep(0.05)
    reply = server.command("HGETALL", layer.keys.depth(layer.non_local_name(channel)))
    assert isinstance(reply, list)
    pairs = zip(reply[::2], reply[1::2], strict=True)
    return {str(k): str(v) for k, v in pairs}


async def test_sends_and_group_sends_to_own_channels_skip_redis(own_redis: RedisProcess) -> None:
    layer, _ = pair(own_redis)
    mine = [await layer.new_channel() for _ in range(3)]
    for channel in mine:
        await layer.group_add("room", channel)
    await layer.send(mine[0], msg(-1))  # starts the reader and loads nothing else
    assert (await recv(layer, mine[0]))["seq"] == -1
    await asyncio.sleep(0.05)
    own_redis.command("CONFIG", "RESETSTAT")
    for i in range(20):
        await layer.send(mine[0], msg(i))
    await layer.group_send("room", msg(20))
    assert "rpush" not in calls(own_redis), "a message to an own channel went into Redis"
    assert [(await recv(layer, mine[0]))["seq"] for _ in range(21)] == list(range(21))
    assert [(await recv(layer, c))["seq"] for c in mine[1:]] == [20, 20]
    # Received, they net out: no depth is left behind for any of them.
    assert await depth(own_redis, layer, mine[0]) == {}
    await layer.close()


async def test_other_processes_sends_count_own_deliveries(own_redis: RedisProcess) -> None:
    owner, other = pair(own_redis, capacity=3)
    channel = await owner.new_channel()
    await owner.send(channel, msg(1))
    await owner.group_add("g", channel)
    await owner.group_send("g", msg(2))
    part = channel[len(owner.non_local_name(channel)) :]
    assert await depth(own_redis, owner, channel) == {part: "2"}
    await other.send(channel, msg(3))
    with pytest.raises(ChannelFull):
        await other.send(channel, msg(4))
    with pytest.raises(ChannelFull):
        await owner.send(channel, msg(4))
    assert [(await recv(owner, channel))["seq"] for _ in range(3)] == [1, 2, 3]
    assert await depth(own_redis, owner, channel) == {}
    await other.send(channel, msg(5))
    assert (await recv(owner, channel))["seq"] == 5
    await owner.close()
    await other.close()


@pytest.mark.parametrize("idle", [False, True], ids=["reader-popping", "reader-blocked"])
async def test_reserved_depth_lapses_with_its_inbox(own_redis: RedisProcess, idle: bool) -> None:
    # The reservation may be what created the depth hash: it must not live forever. It
    # goes out with the reader's next pop (pop.lua) if the reader is popping, which it
    # is right after new_channel(), else on its own (ack.lua).
    owner, _ = pair(own_redis, expiry=1)
    channel = await owner.new_channel()
    if idle:
        await asyncio.sleep(0.2)
    await owner.send(channel, msg(1))
    key = owner.keys.depth(owner.non_local_name(channel))
    await asyncio.sleep(0.05)
    ttl = own_redis.command("PTTL", key)
    assert isinstance(ttl, int)
    assert 0 < ttl <= owner.held_ttl_ms
    await owner.close()

"""A layer's messages to its own new_channel() channels never travel through Redis.

They go straight into the receiving buffers; only a direct send's depth count reaches
Redis (batched with the acks), so other processes' sends still see the channel's load.
A group message counts nothing there (tests/redis/test_group_fanout.py).
"""

from __future__ import annotations

import asyncio
import secrets
import time

import pytest

from layers.exceptions import ChannelFull
from layers.redis import RedisChannelLayer
from tests.helpers import WAIT, msg, recv
from tests.redis.test_wire import calls
from tests.redis_procs import RedisProcess


def pair(server: RedisProcess, **options: object) -> tuple[RedisChannelLayer, RedisChannelLayer]:
    """Two layers (two processes, as far as Redis can tell) on one prefix."""
    prefix = f"t{secrets.token_hex(4)}"
    return (
        RedisChannelLayer(hosts=[server.url], prefix=prefix, **options),
        RedisChannelLayer(hosts=[server.url], prefix=prefix, **options),
    )


async def depth(
    server: RedisProcess, layer: RedisChannelLayer, channel: str, expected: dict[str, str]
) -> dict[str, str]:
    """The depth hash of channel's inbox once it is expected, or after WAIT seconds.

    Depth counts reach Redis with the reader's next pop or the acks' next release,
    which a loaded machine delays past any fixed sleep. The first read still waits
    for the acks pending now, so a count that is wrong only later is not missed.
    """
    await asyncio.sleep(0.05)
    key = layer.keys.depth(layer.non_local_name(channel))
    deadline = time.monotonic() + WAIT
    while True:
        reply = server.command("HGETALL", key)
        assert isinstance(reply, list)
        pairs = zip(reply[::2], reply[1::2], strict=True)
        found = {str(k): str(v) for k, v in pairs}
        if found == expected or time.monotonic() > deadline:
            return found
        await asyncio.sleep(0.01)


async def reaches_redis(server: RedisProcess, key: str) -> None:
    """Wait until key exists (or WAIT seconds pass): see depth()."""
    deadline = time.monotonic() + WAIT
    while server.command("EXISTS", key) == 0 and time.monotonic() < deadline:
        await asyncio.sleep(0.01)


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
    assert await depth(own_redis, layer, mine[0], {}) == {}
    await layer.close()


async def test_other_processes_sends_count_own_deliveries(own_redis: RedisProcess) -> None:
    # Direct sends to own channels count in Redis; group messages never do (issue 14:
    # the receiving process caps those at its buffer).
    owner, other = pair(own_redis, capacity=3)
    channel = await owner.new_channel()
    await owner.send(channel, msg(1))
    await owner.group_add("g", channel)
    await owner.group_send("g", msg(2))
    part = channel[len(owner.non_local_name(channel)) :]
    assert await depth(own_redis, owner, channel, {part: "1"}) == {part: "1"}
    await other.send(channel, msg(3))
    await other.send(channel, msg(4))
    with pytest.raises(ChannelFull):
        await other.send(channel, msg(5))
    with pytest.raises(ChannelFull):
        await owner.send(channel, msg(5))
    assert [(await recv(owner, channel))["seq"] for _ in range(4)] == [1, 2, 3, 4]
    assert await depth(own_redis, owner, channel, {}) == {}
    await other.send(channel, msg(6))
    assert (await recv(owner, channel))["seq"] == 6
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
    await reaches_redis(own_redis, key)
    ttl = own_redis.command("PTTL", key)
    assert isinstance(ttl, int)
    assert 0 < ttl <= owner.key_ttl_ms
    await owner.close()

"""send.lua and group_send.lua push first and take back what does not fit (owned server).

A normal channel with room costs no LLEN and no look at its head. A channel over
capacity after the push drops its expired heads (counted), then takes back from its
tail what still does not fit: never more than it pushed, so a list that a layer with
a larger capacity filled keeps every entry, in order.
"""

from __future__ import annotations

import asyncio
import secrets

import pytest

from layers.exceptions import ChannelFull
from layers.redis import RedisChannelLayer
from tests.helpers import msg, nothing, recv
from tests.redis.test_wire import calls
from tests.redis_procs import RedisProcess


def on(server: RedisProcess, prefix: str, **options: object) -> RedisChannelLayer:
    return RedisChannelLayer(hosts=[server.url], prefix=prefix, **options)


def length(server: RedisProcess, layer: RedisChannelLayer, channel: str) -> int:
    """The length of a normal channel's list."""
    return int(server.command("LLEN", layer.keys.channel(channel)))


async def test_a_full_channel_takes_back_only_what_it_pushed(own_redis: RedisProcess) -> None:
    prefix = f"t{secrets.token_hex(4)}"
    roomy, tight = on(own_redis, prefix, capacity=5), on(own_redis, prefix, capacity=2)
    try:
        for i in range(5):
            await roomy.send("c", msg(i))
        await tight.group_add("g", "c")
        with pytest.raises(ChannelFull):
            await tight.send("c", msg(10))
        results = await tight.send_many([("c", msg(11)), ("c", msg(12))])
        assert [type(r) for r in results] == [ChannelFull, ChannelFull]
        assert await tight.group_send("g", msg(13)) is None
        assert length(own_redis, tight, "c") == 5
        assert [(await recv(roomy, "c"))["seq"] for _ in range(5)] == [0, 1, 2, 3, 4]
        await nothing(roomy, "c")
        counters = (await tight.figures()).counters
        assert (counters["sent"], counters["dropped_full"]) == (5, 1)
    finally:
        await roomy.flush()
        await asyncio.gather(roomy.close(), tight.close())


@pytest.mark.parametrize("via", ["send", "send_many", "group_send"])
async def test_a_full_channel_drops_its_expired_heads_first(
    own_redis: RedisProcess, via: str
) -> None:
    prefix = f"t{secrets.token_hex(4)}"
    brief, layer = on(own_redis, prefix, expiry=1, capacity=2), on(own_redis, prefix, capacity=2)
    try:
        await brief.send_many([("c", msg(0)), ("c", msg(1))])
        await layer.group_add("g", "c")
        await asyncio.sleep(1.2)
        if via == "send":
            await layer.send("c", msg(2))
        elif via == "send_many":
            assert await layer.send_many([("c", msg(2))]) == [None]
        else:
            await layer.group_send("g", msg(2))
        # Both expired heads went, and were counted, before anything was read.
        assert length(own_redis, layer, "c") == 1
        assert (await layer.figures()).counters["dropped_expired"] == 2
        assert (await recv(layer, "c"))["seq"] == 2
    finally:
        await layer.flush()
        await asyncio.gather(brief.close(), layer.close())


async def test_a_channel_with_room_keeps_its_expired_heads_for_the_reader(
    own_redis: RedisProcess,
) -> None:
    prefix = f"t{secrets.token_hex(4)}"
    brief, layer = on(own_redis, prefix, expiry=1), on(own_redis, prefix)
    try:
        await brief.send("c", msg(0))
        await asyncio.sleep(1.2)
        await layer.send("c", msg(1))
        assert length(own_redis, layer, "c") == 2
        # The reader's pop drops the expired one, and counts it.
        assert (await recv(layer, "c"))["seq"] == 1
        assert (await layer.figures()).counters["dropped_expired"] == 1
    finally:
        await layer.flush()
        await asyncio.gather(brief.close(), layer.close())


async def test_group_send_to_channels_with_room_runs_no_llen(own_redis: RedisProcess) -> None:
    layer = on(own_redis, f"t{secrets.token_hex(4)}")
    try:
        for name in ("a", "b", "c"):
            await layer.group_add("g", name)
        await layer.group_send("g", msg())  # loads the scripts
        own_redis.command("CONFIG", "RESETSTAT")
        await layer.group_send("g", msg(1))
        stats = calls(own_redis)
        assert not {"llen", "lindex"} & set(stats), stats
        assert (stats["rpush"], stats["pexpire"]) == (3, 3), stats
    finally:
        await layer.flush()
        await layer.close()

"""send_many and group_send_many over Redis: pipelined per shard, errors per item."""

from __future__ import annotations

import secrets

import pytest

from layers.exceptions import ChannelLayerConnectionError
from layers.redis import RedisChannelLayer, connections
from layers.redis.multiplex import Multiplexed
from tests.helpers import msg, recv
from tests.redis.test_wire import calls, layer_on
from tests.redis_procs import RedisProcess


async def test_send_many_is_one_script_per_channel_in_one_write(own_redis: RedisProcess) -> None:
    layer = layer_on(own_redis, capacity=1000)
    await layer.send("warm", msg())  # connects and loads the scripts
    clients = await layer.connections.here()
    wire = clients.scripting(0)
    assert isinstance(wire, Multiplexed)
    assert wire._open is not None
    transport = wire._open[0].transport
    writes: list[int] = []
    real = transport.write

    def counting(data: bytes | bytearray | memoryview) -> None:
        writes.append(len(data))
        real(data)

    transport.write = counting  # type: ignore[method-assign]
    own_redis.command("CONFIG", "RESETSTAT")
    items = [(f"c{i % 5}", msg(i)) for i in range(500)]
    assert await layer.send_many(items) == [None] * 500
    stats = calls(own_redis)
    assert stats["evalsha"] == 5  # one per channel, each queueing its 100 in order
    assert stats["rpush"] == 5
    assert len(writes) <= 2, writes  # one round trip: the first request, then the rest
    for c in range(5):
        got = [(await recv(layer, f"c{c}"))["seq"] for _ in range(100)]
        assert got == list(range(c, 500, 5))
    await layer.flush()
    await layer.close()


async def test_a_dead_shard_fails_only_its_own_items(
    own_redis: RedisProcess, redis_url: str
) -> None:
    layer = RedisChannelLayer(
        hosts=[redis_url, own_redis.url],
        prefix=f"t{secrets.token_hex(4)}",
        socket_timeout=1,
        socket_connect_timeout=1,
    )
    on_dead = next(f"d{i}" for i in range(100) if layer.ring.index(f"d{i}") == 1)
    on_live = next(f"l{i}" for i in range(100) if layer.ring.index(f"l{i}") == 0)
    await layer.send_many([(on_dead, msg()), (on_live, msg())])  # both connected
    own_redis.kill()
    items = [(on_live if i % 2 else on_dead, msg(i)) for i in range(10)]
    results = await layer.send_many(items)
    for i, result in enumerate(results):
        if i % 2:
            assert result is None
        else:
            assert isinstance(result, ChannelLayerConnectionError)
            assert own_redis.url in str(result)
    assert layer.stats()["sent"] == 2 + 5
    got = [(await recv(layer, on_live))["seq"] for _ in range(6)]
    assert got == [0, 1, 3, 5, 7, 9]
    # A group kept on the dead shard fails; one on the live shard is delivered.
    dead_group = next(f"g{i}" for i in range(100) if layer.ring.index(f"g{i}") == 1)
    live_group = next(f"g{i}" for i in range(100) if layer.ring.index(f"g{i}") == 0)
    await layer.group_add(live_group, on_live)
    results = await layer.group_send_many([(dead_group, msg(10)), (live_group, msg(11))])
    assert isinstance(results[0], ChannelLayerConnectionError)
    assert results[1] is None
    assert (await recv(layer, on_live))["seq"] == 11
    assert layer.stats()["group_sends"] == 1
    await layer.close()
    async with RedisChannelLayer(hosts=[redis_url], prefix=layer.prefix) as live:
        await live.flush()


async def test_redis_py_untested_versions_use_its_own_client(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(connections, "supported", lambda: False)
    prefix = f"t{secrets.token_hex(4)}"
    layer = RedisChannelLayer(hosts=[redis_url], prefix=prefix)
    peer = RedisChannelLayer(hosts=[redis_url], prefix=prefix)
    clients = await layer.connections.here()
    assert not isinstance(clients.scripting(0), Multiplexed)
    theirs = await peer.new_channel()
    await layer.group_add("room", theirs)
    await layer.send("named", msg(0))
    assert await layer.send_many([("named", msg(i)) for i in range(1, 4)]) == [None] * 3
    assert await layer.group_send_many([("room", msg(i)) for i in range(3)]) == [None] * 3
    assert [(await recv(peer, "named"))["seq"] for _ in range(4)] == [0, 1, 2, 3]
    assert [(await recv(peer, theirs))["seq"] for _ in range(3)] == [0, 1, 2]
    for made in (layer, peer):
        await made.flush()
        await made.close()


@pytest.mark.parametrize("multiplexed", [True, False])
async def test_send_many_survives_a_script_flush(
    own_redis: RedisProcess, monkeypatch: pytest.MonkeyPatch, multiplexed: bool
) -> None:
    monkeypatch.setattr(connections, "supported", lambda: multiplexed)
    layer = layer_on(own_redis)
    await layer.send("warm", msg())  # connected, scripts loaded
    own_redis.command("SCRIPT", "FLUSH")
    items = [(f"f{i % 3}", msg(i)) for i in range(30)]
    assert await layer.send_many(items) == [None] * 30
    for c in range(3):
        assert [(await recv(layer, f"f{c}"))["seq"] for _ in range(10)] == list(range(c, 30, 3))
    await layer.close()

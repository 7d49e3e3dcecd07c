"""What goes over the wire: round trips, batching, no KEYS, timeouts (owned servers)."""

from __future__ import annotations

import asyncio
import logging
import secrets

import pytest

from layers.exceptions import ChannelLayerConnectionError
from layers.redis import RedisChannelLayer
from tests.helpers import msg, recv
from tests.redis_procs import RedisProcess


def calls(server: RedisProcess) -> dict[str, int]:
    """Calls per command since the last CONFIG RESETSTAT."""
    found = {}
    for key, value in server.info("commandstats").items():
        if key.startswith("cmdstat_"):
            found[key[8:]] = int(value.split(",")[0].split("=")[1])
    return found


def layer_on(*servers: RedisProcess, **options: object) -> RedisChannelLayer:
    return RedisChannelLayer(
        hosts=[s.url for s in servers], prefix=f"t{secrets.token_hex(4)}", **options
    )


async def test_send_is_one_evalsha(own_redis: RedisProcess) -> None:
    layer = layer_on(own_redis)
    await layer.send("warm", msg())  # connects and loads the script
    own_redis.command("CONFIG", "RESETSTAT")
    for i in range(10):
        await layer.send("c", msg(i))
    stats = calls(own_redis)
    stats.pop("config|resetstat")
    assert stats.pop("evalsha") == 10
    # commandstats also counts what the script runs inside Redis: once per send each,
    # HINCRBY being the deployment's counter of what was sent (issue 18). A channel
    # with room costs no LLEN and no look at its head: RPUSH replies with the length.
    assert set(stats) == {"time", "rpush", "pexpire", "hincrby"}, stats
    assert set(stats.values()) == {10}, f"commands outside the script: {stats}"
    await layer.close()


async def test_inbox_is_read_in_batches(own_redis: RedisProcess) -> None:
    receiver = layer_on(own_redis, capacity=1000)
    sender = RedisChannelLayer(hosts=[own_redis.url], prefix=receiver.prefix, capacity=1000)
    # A channel of the receiver's inbox nobody has received on yet: its reader starts
    # with the first receive, and finds a backlog of 500.
    channel = f"specific.{receiver.client_id}!backlog"
    for i in range(500):
        await sender.send(channel, msg(i))
    own_redis.command("CONFIG", "RESETSTAT")
    assert [(await recv(receiver, channel))["seq"] for _ in range(500)] == list(range(500))
    scripts = calls(own_redis)["evalsha"]
    assert scripts <= 20, f"{scripts} pop/ack scripts for 500 messages"
    await receiver.flush()
    await receiver.close()
    await sender.close()


async def test_group_send_is_one_round_trip_plus_one_per_shard() -> None:
    with (
        RedisProcess(name="g1") as one,
        RedisProcess(name="g2") as two,
        RedisProcess(name="g3") as three,
    ):
        servers = [one, two, three]
        layer = layer_on(*servers)
        # Members in 12 other processes (3 channels each) that are not reading now,
        # so only the group_send itself touches the servers.
        inboxes: list[str] = []
        while len(inboxes) < 12 or {layer.ring.index(i) for i in inboxes} != {0, 1, 2}:
            inboxes.append(f"proc{len(inboxes)}.{secrets.token_hex(3)}!")  # every shard gets some
        members = [inbox + f"c{j}" for inbox in inboxes for j in range(3)] + ["named.worker"]
        for channel in members:
            await layer.group_add("room", channel)
        await layer.group_send("room", msg(0))  # loads the scripts everywhere
        for server in servers:
            server.command("CONFIG", "RESETSTAT")
        await layer.group_send("room", msg(1))
        scripts = [calls(s).get("evalsha", 0) for s in servers]
        # members from the group's shard, then one bundled script per shard with members
        assert sum(scripts) == 1 + 3, f"scripts per shard: {scripts}"
        # one entry per process inbox, however many of its channels are members
        lengths = {}
        for inbox in inboxes:
            shard = servers[layer.ring.index(inbox)]
            lengths[inbox] = shard.command("LLEN", layer.keys.inbox(inbox))
        assert set(lengths.values()) == {2}, lengths
        shard = servers[layer.ring.index("named.worker")]
        assert shard.command("LLEN", layer.keys.channel("named.worker")) == 2
        await layer.close()


async def test_flush_never_uses_keys(own_redis: RedisProcess) -> None:
    # A user who may not run KEYS (it blocks the server) can still flush.
    own_redis.command("ACL", "SETUSER", "nokeys", "on", "nopass", "~*", "&*", "+@all", "-keys")
    layer = RedisChannelLayer(hosts=[f"redis://nokeys@127.0.0.1:{own_redis.port}"], prefix="app")
    for i in range(1200):
        await layer.send(f"c{i}", msg(i))
    await layer.group_add("g", "c1")
    own_redis.command("SET", "other:key", "kept")
    await layer.flush()
    assert own_redis.command("DBSIZE") == 1
    assert own_redis.command("GET", "other:key") == "kept"
    await layer.close()


async def test_idle_receivers_never_time_out(
    own_redis: RedisProcess, caplog: pytest.LogCaptureFixture
) -> None:
    # channels_redis#422: a socket timeout equal to the blocking pop killed idle receivers.
    layer = layer_on(own_redis, socket_timeout=0.2, blocking_timeout=0.3)
    local = await layer.new_channel()
    with caplog.at_level(logging.WARNING, logger="layers"):
        waiting = [asyncio.ensure_future(recv(layer, c, 10)) for c in (local, "idle")]
        await asyncio.sleep(1.5)
        await layer.send(local, msg(1))
        await layer.send("idle", msg(2))
        assert [(await w)["seq"] for w in waiting] == [1, 2]
    assert not [r for r in caplog.records if r.name.startswith("layers")], caplog.text
    await layer.close()


async def test_layer_recovers_from_a_killed_shard(own_redis: RedisProcess) -> None:
    options = {"socket_timeout": 0.5, "socket_connect_timeout": 0.5, "blocking_timeout": 0.5}
    layer = layer_on(own_redis, **options)
    # Another process's sends reach the channel through Redis (the layer's own do not).
    sender = RedisChannelLayer(hosts=[own_redis.url], prefix=layer.prefix, **options)
    channel = await layer.new_channel()
    await sender.send(channel, msg(0))
    assert (await recv(layer, channel))["seq"] == 0
    waiting = asyncio.ensure_future(recv(layer, channel, 30))
    own_redis.kill()
    async with asyncio.timeout(5):  # an outage is an error, never a hang
        with pytest.raises(ChannelLayerConnectionError, match="did not answer"):
            await sender.send(channel, msg(1))
    own_redis.restart()
    async with asyncio.timeout(10):
        while True:
            try:
                await sender.send(channel, msg(2))
                break
            except ChannelLayerConnectionError:
                await asyncio.sleep(0.1)
    assert (await waiting)["seq"] == 2  # the reader came back by itself
    await layer.send("normal", msg(3))
    assert (await recv(layer, "normal"))["seq"] == 3
    await sender.close()
    await layer.close()

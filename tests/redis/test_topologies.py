"""Sentinel failover and Redis Cluster placement, on servers the tests own."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time

import pytest
import redis

from layers.exceptions import ChannelLayerClosed, ChannelLayerConnectionError
from layers.redis import RedisChannelLayer
from tests.helpers import msg, recv
from tests.redis_procs import RedisCluster, RedisSentinel


async def test_sentinel_failover_keeps_the_layer_working() -> None:
    with RedisSentinel() as setup:
        layer = RedisChannelLayer(
            hosts=[{"sentinels": setup.sentinels, "master_name": setup.master_name}],
            prefix=f"t{secrets.token_hex(4)}",
            socket_timeout=1,
            socket_connect_timeout=1,
            blocking_timeout=0.5,
        )
        channel = await layer.new_channel()
        await layer.send(channel, msg(0))
        assert (await recv(layer, channel))["seq"] == 0
        old_master = setup.master.port
        await asyncio.to_thread(setup.failover)
        assert setup.master.port != old_master
        # Sends find the new master by themselves; at most a few fail during the switch.
        async with asyncio.timeout(15):
            while True:
                try:
                    await layer.send(channel, msg(1))
                    break
                except ChannelLayerConnectionError:
                    await asyncio.sleep(0.1)
        assert (await recv(layer, channel, 15))["seq"] == 1
        await layer.send("normal", msg(2))
        assert (await recv(layer, "normal"))["seq"] == 2
        await layer.flush()
        await layer.close()


async def test_sentinel_url_form() -> None:
    with RedisSentinel() as setup:
        hosts = ",".join(f"{h}:{p}" for h, p in setup.sentinels)
        layer = RedisChannelLayer.from_url(
            f"redis+sentinel://{hosts}/{setup.master_name}/0?capacity=7"
        )
        assert layer.capacity == 7
        await layer.send("via.url", msg(1))
        assert (await recv(layer, "via.url"))["seq"] == 1
        await layer.flush()
        await layer.close()


async def test_cluster_spreads_channels_over_masters(redis_cluster: RedisCluster) -> None:
    layer = RedisChannelLayer(
        hosts=[redis_cluster.url], cluster=True, prefix=f"t{secrets.token_hex(4)}"
    )
    names = [f"work.{i}" for i in range(30)]
    for i, name in enumerate(names):
        await layer.send(name, msg(i))
    client = redis.cluster.RedisCluster.from_url(redis_cluster.url)
    try:
        nodes = {client.get_node_from_key(layer.keys.channel(n)).port for n in names}  # type: ignore[no-untyped-call]
        assert len(nodes) == 3, "channels should land on every master"
    finally:
        client.close()
    members = [await layer.new_channel(f"p{i}") for i in range(6)] + names[:3]
    for member in members:
        await layer.group_add("room", member)
    await layer.group_send("room", msg(99))
    for member in members[:6]:
        assert (await recv(layer, member))["seq"] == 99
    for i, name in enumerate(names):
        assert (await recv(layer, name))["seq"] == i
    for name in names[:3]:
        assert (await recv(layer, name))["seq"] == 99
    await layer.flush()
    await layer.close()


@pytest.mark.parametrize("topology", ["standalone", "sentinel", "cluster"])
async def test_close_ends_a_blocked_read_at_once(
    topology: str, request: pytest.FixtureRequest, redis_url: str
) -> None:
    # close() cancels the readers and drops their connections, but a cancel can be
    # lost inside redis-py: around each command's send (Python 3.11's wait_for), and
    # while a blocking connection is still being made, which then survives the drop.
    # The reader blocks again, and the cluster client re-sends a BLMOVE whose
    # connection close() dropped. Closing at several points of a reader's start-up
    # (connect, CLUSTER SLOTS, the first BLMOVE) hits those windows; each close must
    # still take a fraction of blocking_timeout.
    options: dict[str, object] = (
        {"hosts": [redis_url]}
        if topology == "standalone"
        else request.getfixturevalue(f"redis_{topology}_options")
    )
    block = 4.0
    for round_ in range(16):
        layer = RedisChannelLayer(
            **options, prefix=f"t{secrets.token_hex(4)}", blocking_timeout=block
        )
        local = await layer.new_channel()
        receives = [asyncio.ensure_future(layer.receive(c)) for c in ("normal", local)]
        await asyncio.sleep(0.001 * round_ if topology == "standalone" else 0.008 * round_)
        started = time.monotonic()
        await layer.close()
        took = time.monotonic() - started
        for receive in receives:
            with contextlib.suppress(ChannelLayerClosed):
                await receive
        assert took < block / 2, f"close took {took:.2f}s (round {round_})"


async def test_cluster_clients_of_every_loop_share_one_command_table(
    redis_cluster: RedisCluster,
) -> None:
    # Each event loop has clients of its own (async_to_sync makes a loop per call), and
    # each cluster client learns the commands' key positions (COMMAND, 50-100 ms to
    # parse) when it starts: once per cluster is enough.
    def fetched() -> int:
        """COMMAND calls the cluster's nodes served (INFO commandstats)."""
        calls = 0
        for proc in redis_cluster.procs:
            for line in str(proc.command("INFO", "commandstats")).splitlines():
                if line.startswith("cmdstat_command:"):
                    calls += int(line.split("calls=")[1].split(",")[0])
        return calls

    layer = RedisChannelLayer(
        hosts=[redis_cluster.url], cluster=True, prefix=f"t{secrets.token_hex(4)}"
    )
    channel = "loops"  # a normal channel: its sends go to Redis from every loop

    def in_a_new_loop(i: int) -> None:
        asyncio.run(layer.send(channel, msg(i)))

    await asyncio.to_thread(in_a_new_loop, 0)
    before = fetched()
    for i in range(1, 5):
        await asyncio.to_thread(in_a_new_loop, i)
    assert fetched() == before
    assert [(await recv(layer, channel))["seq"] for _ in range(5)] == list(range(5))
    await layer.flush()
    await layer.close()

"""Deployment figures on Redis: counters kept by the scripts, read by a fresh process."""

from __future__ import annotations

import asyncio
import json
import secrets
import signal
import sys

import pytest
import redis.asyncio

from layers.redis import RedisChannelLayer, counting
from tests.helpers import (
    WAIT,
    check_filled_figures,
    figures_elsewhere,
    fill_for_figures,
    msg,
    recv,
    with_prefix,
)
from tests.redis_procs import RedisProcess


async def test_a_fresh_process_reads_the_counts_of_others(redis_url: str) -> None:
    prefix = f"t{secrets.token_hex(4)}"
    one = RedisChannelLayer(hosts=[redis_url], prefix=prefix, capacity=2)
    two = RedisChannelLayer(hosts=[redis_url], prefix=prefix, capacity=2)
    try:
        await fill_for_figures(one, two)
        await asyncio.sleep(1.2)  # both add their counts within SYNC_EVERY
        url = with_prefix(redis_url, prefix)
        check_filled_figures(await figures_elsewhere(url, top=2), sent=6, dead_owner=0)
        # A layer's own reading adds its latest counts first.
        await two.send("other", msg(10))
        assert (await two.figures()).counters["sent"] == 7
    finally:
        await one.flush()
        await one.close()
        await two.close()


@pytest.mark.parametrize("servers", ["redis_single", "redis_sharded", "redis_cluster_options"])
async def test_the_scripts_count_what_a_killed_process_did(
    request: pytest.FixtureRequest, servers: str
) -> None:
    options = {**request.getfixturevalue(servers), "prefix": f"t{secrets.token_hex(4)}"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.redis.counting_process",
        json.dumps(options),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    # Killed right after its last script replied: it never added counts of its own.
    assert (proc.returncode, out) == (-signal.SIGKILL, b"done\n"), err.decode()
    try:
        config = {"BACKEND": "layers.redis.RedisChannelLayer", "CONFIG": options}
        figures = await figures_elsewhere(config)
        # sent: 1 + 1 to "old", 2 to "jobs" (the third was refused), 2 with send_many,
        # and per group_send "other" and the two members in the absent inbox ("jobs"
        # is full: dropped). The expired one was dropped by the second send to "old",
        # which found no room for it.
        assert figures["counters"] == {
            "sent": 12,
            "delivered": 0,
            "group_sends": 2,
            "dropped_full": 2,
            "dropped_expired": 1,
            "dropped_undecodable": 0,
            "dropped_dead_owner": 0,
        }
        assert figures["deepest"] == {"jobs": 2, "many": 2, "other": 2, "old": 1}
        assert (figures["queued"], figures["groups"], figures["members"]) == (7, 1, 4)
        # Every counters hash the scripts made (one per slot on a cluster) lapses once
        # nothing counts in it for group_expiry (a day by default).
        async with RedisChannelLayer(**options) as layer:
            clients = await layer.connections.here()
            ttls = []
            for shard in range(len(layer.shard_names)):
                client = clients.command(shard)
                async for key in client.scan_iter(match=f"{options['prefix']}:f*"):
                    ttls.append(await client.pttl(key))
            assert ttls
            assert all(86_000_000 < ttl <= 86_400_000 for ttl in ttls), ttls
    finally:
        async with RedisChannelLayer(**options) as layer:
            await layer.flush()


async def test_deliveries_ride_along_with_the_receivers_scripts(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No periodic addition: only the receiver's own script calls can carry its counts.
    monkeypatch.setattr(counting, "SYNC_EVERY", 3600.0)
    prefix = f"t{secrets.token_hex(4)}"
    # Its inbox reader pops at least every 0.5 s: a call that may carry them (at most
    # one every CARRY_EVERY seconds does).
    receiver = RedisChannelLayer(hosts=[redis_url], prefix=prefix, blocking_timeout=0.5)
    sender = RedisChannelLayer(hosts=[redis_url], prefix=prefix)
    client = redis.asyncio.Redis.from_url(redis_url)
    try:
        mine = await receiver.new_channel()
        await sender.send_many([("jobs", msg(0)), ("jobs", msg(1))])
        await sender.send_many([(mine, msg(i)) for i in range(3)])
        assert [(await recv(receiver, "jobs"))["seq"] for _ in range(2)] == [0, 1]
        assert [(await recv(receiver, mine))["seq"] for _ in range(3)] == [0, 1, 2]
        counted: dict[bytes, bytes] = {}
        async with asyncio.timeout(WAIT):
            while counted.get(b"delivered") != b"5":
                await asyncio.sleep(0.05)
                counted = await client.hgetall(f"{prefix}:f")
        assert counted == {b"sent": b"5", b"delivered": b"5"}
    finally:
        await client.aclose()
        await receiver.flush()
        await receiver.close()
        await sender.close()


async def test_figures_read_keys_in_pipelines(own_redis: RedisProcess) -> None:
    prefix = f"t{secrets.token_hex(4)}"
    async with RedisChannelLayer(hosts=[own_redis.url], prefix=prefix) as layer:
        await layer.send_many([(f"c{i}", msg(i)) for i in range(300)])
        for i in range(30):
            await layer.group_add(f"g{i}", f"c{i}")
    async with RedisChannelLayer(hosts=[own_redis.url], prefix=prefix) as reader:
        before = int(own_redis.info("stats")["total_reads_processed"])
        figures = await reader.figures(top=1)
        reads = int(own_redis.info("stats")["total_reads_processed"]) - before
        assert (figures.queued, figures.groups, figures.counters["sent"]) == (300, 30, 300)
        # 331 keys (300 lists, 30 groups, the counters): one read per key otherwise.
        assert reads < 30, reads


async def _counted(layer: RedisChannelLayer, name: str, wanted: int) -> dict[str, int]:
    """The layer's deployment counters once name reaches wanted (or the test fails)."""
    async with asyncio.timeout(WAIT):
        while True:
            counters = dict((await layer.figures()).counters)
            if counters[name] >= wanted:
                return counters
            await asyncio.sleep(0.1)


async def test_a_give_back_counts_what_expired_in_the_fetchers_buffers(redis_url: str) -> None:
    prefix = f"t{secrets.token_hex(4)}"
    sender = RedisChannelLayer(hosts=[redis_url], prefix=prefix, expiry=0.3)
    receiver = RedisChannelLayer(hosts=[redis_url], prefix=prefix, expiry=0.3, prefetch=10)
    try:
        await sender.send_many([("jobs", msg(i)) for i in range(3)])
        assert (await recv(receiver, "jobs"))["seq"] == 0
        # The fetcher took all three; nobody takes the other two, which expire in its
        # buffers before it gives them back (after a LINGER window): requeue.lua drops
        # and counts them rather than putting them back.
        counters = await _counted(sender, "dropped_expired", 2)
        assert (counters["sent"], counters["delivered"], counters["dropped_expired"]) == (3, 1, 2)
        assert (await sender.figures()).queued == 0
    finally:
        await sender.flush()
        await sender.close()
        await receiver.close()


async def test_what_a_fetcher_gives_back_is_kept_until_a_reader_counts_it(
    redis_url: str,
) -> None:
    prefix = f"t{secrets.token_hex(4)}"
    sender = RedisChannelLayer(hosts=[redis_url], prefix=prefix, expiry=2)
    receiver = RedisChannelLayer(hosts=[redis_url], prefix=prefix, expiry=2, prefetch=10)
    client = redis.asyncio.Redis.from_url(redis_url)
    try:
        sent_at = asyncio.get_running_loop().time()
        await sender.send_many([("jobs", msg(i)) for i in range(3)])
        assert (await recv(receiver, "jobs"))["seq"] == 0
        async with asyncio.timeout(WAIT):  # the other two go back, still live
            while await client.llen(f"{prefix}:c:{{jobs}}") != 2:
                await asyncio.sleep(0.05)
        # The fetch emptied (so deleted) the list: the give-back made it anew, with a
        # TTL that outlives its entries, so that a later reader drops and counts them.
        await asyncio.sleep(sent_at + 2.3 - asyncio.get_running_loop().time())
        with pytest.raises(TimeoutError):
            await recv(receiver, "jobs", timeout=0.3)
        counters = await _counted(receiver, "dropped_expired", 2)
        assert (counters["sent"], counters["delivered"], counters["dropped_expired"]) == (3, 1, 2)
    finally:
        await client.aclose()
        await sender.flush()
        await sender.close()
        await receiver.close()


async def test_the_counters_lapse_once_nothing_is_counted_for_group_expiry(
    redis_url: str,
) -> None:
    prefix = f"t{secrets.token_hex(4)}"
    # The counters' TTL is group_expiry here (longer than a channel's 2 * 0.2 + 1 s);
    # the layer renews it with a send at most every quarter of it.
    layer = RedisChannelLayer(hosts=[redis_url], prefix=prefix, expiry=0.2, group_expiry=2)
    client = redis.asyncio.Redis.from_url(redis_url)
    key = f"{prefix}:f"
    loop = asyncio.get_running_loop()
    try:
        sends, until = 0, loop.time() + 4
        while loop.time() < until:  # twice the TTL, and the hash stays all along
            await layer.send("jobs", msg(sends))
            sends += 1
            assert 0 < await client.pttl(key) <= 2000
            await asyncio.sleep(0.1)
        assert await client.hget(key, "sent") == str(sends).encode()
        last = loop.time()
        async with asyncio.timeout(WAIT):
            while await client.exists(key):
                await asyncio.sleep(0.05)
        assert 1.4 < loop.time() - last < 2.5
        await layer.send("jobs", msg(sends))  # made anew, with its TTL
        assert await client.hget(key, "sent") == b"1"
        assert 0 < await client.pttl(key) <= 2000
        await layer.flush()
        assert not await client.exists(key)
    finally:
        await client.aclose()
        await layer.flush()
        await layer.close()

"""Prefetching receivers on normal channels (layers/redis/fetching.py)."""

from __future__ import annotations

import asyncio
import json
import secrets
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable

import pytest
import redis

from layers.exceptions import ConfigError
from layers.redis import RedisChannelLayer, fetching
from tests.helpers import msg, nothing, recv
from tests.redis.test_wire import calls, layer_on
from tests.redis_procs import RedisProcess

Make = Callable[..., RedisChannelLayer]


@pytest.fixture
async def make(redis_url: str) -> AsyncIterator[Make]:
    """Layers on the shared server, all on one random prefix; flushed and closed after."""
    prefix = f"t{secrets.token_hex(4)}"
    made: list[RedisChannelLayer] = []

    def factory(**options: object) -> RedisChannelLayer:
        layer = RedisChannelLayer(hosts=[redis_url], prefix=prefix, **options)  # type: ignore[arg-type]
        made.append(layer)
        return layer

    yield factory
    async with RedisChannelLayer(hosts=[redis_url], prefix=prefix) as cleaner:
        await cleaner.flush()
    for layer in made:
        await layer.close()


def test_prefetch_is_a_positive_count() -> None:
    with pytest.raises(ConfigError, match="prefetch must be a whole number of at least 1"):
        RedisChannelLayer(prefetch=0)
    assert RedisChannelLayer(prefetch=7).prefetch == 7


async def test_a_receiver_takes_a_batch_per_round_trip(own_redis: RedisProcess) -> None:
    layer = layer_on(own_redis, capacity=1000, prefetch=100)
    await layer.send_many([("batch", msg(i)) for i in range(500)])
    own_redis.command("CONFIG", "RESETSTAT")
    assert [(await recv(layer, "batch"))["seq"] for _ in range(500)] == list(range(500))
    fetches = calls(own_redis)["evalsha"]
    assert fetches <= 10, f"{fetches} scripts to receive 500 messages"
    await layer.flush()
    await layer.close()


async def test_unclaimed_messages_go_back_in_order_after_the_linger_window(make: Make) -> None:
    first, second = make(), make()
    await first.send_many([("jobs", msg(i)) for i in range(50)])
    assert (await recv(first, "jobs"))["seq"] == 0  # its fetcher took all 50
    started = time.monotonic()
    assert (await recv(second, "jobs"))["seq"] == 1
    assert time.monotonic() - started >= fetching.LINGER * 0.8
    assert [(await recv(second, "jobs"))["seq"] for _ in range(48)] == list(range(2, 50))
    await nothing(first, "jobs")


async def test_a_receiver_that_keeps_taking_keeps_its_batch(make: Make) -> None:
    first, second = make(), make()
    await first.send_many([("steady", msg(i)) for i in range(20)])
    rival = asyncio.ensure_future(recv(second, "steady", timeout=10))
    got = []
    for _ in range(10):  # slower than a window in all, but never a window without a take
        got.append((await recv(first, "steady"))["seq"])
        await asyncio.sleep(fetching.LINGER / 4)
    assert got == list(range(10))
    assert not rival.done()
    await asyncio.sleep(fetching.LINGER * 1.5)  # first stops taking: the rest goes back
    assert (await rival)["seq"] == 10


async def test_close_gives_back_at_once(make: Make) -> None:
    first, second = make(), make()
    await first.send_many([("closing", msg(i)) for i in range(30)])
    assert (await recv(first, "closing"))["seq"] == 0
    await first.close()
    got = [(await recv(second, "closing", timeout=fetching.LINGER / 2))["seq"] for _ in range(29)]
    assert got == list(range(1, 30))


def test_a_loop_ending_gives_back_what_its_fetcher_held(redis_url: str) -> None:
    prefix = f"t{secrets.token_hex(4)}"
    layer = RedisChannelLayer(hosts=[redis_url], prefix=prefix)

    async def take_one() -> int:
        await layer.send_many([("ended", msg(i)) for i in range(30)])
        return int((await layer.receive("ended"))["seq"])

    # asyncio.run cancels the fetcher as its loop ends (as async_to_sync's threads do).
    box: list[int] = []
    thread = threading.Thread(target=lambda: box.append(asyncio.run(take_one())))
    thread.start()
    thread.join(10)
    assert box == [0]

    async def rest() -> list[int]:
        async with RedisChannelLayer(hosts=[redis_url], prefix=prefix) as other:
            got = [(await recv(other, "ended", timeout=1))["seq"] for _ in range(29)]
            await other.flush()
            return got

    assert asyncio.run(rest()) == list(range(1, 30))


class Receivers:
    """Receiving processes (tests/redis/receiver_process.py) on one channel."""

    def __init__(self, url: str, prefix: str, channel: str, count: int, hold: bool = False):
        args = [sys.executable, "-m", "tests.redis.receiver_process", url, prefix, channel]
        self.procs = [
            subprocess.Popen(
                args + (["hold"] if hold else []),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(count)
        ]
        for proc in self.procs:
            assert proc.stdout is not None
            assert json.loads(proc.stdout.readline()) == {"ready": True}

    def line(self, index: int) -> dict[str, object]:
        stdout = self.procs[index].stdout
        assert stdout is not None
        return dict(json.loads(stdout.readline()))

    def seqs(self) -> list[list[int]]:
        """Every process's seqs, once all have stopped."""
        shares = []
        for proc in self.procs:
            out, err = proc.communicate(timeout=30)
            assert proc.returncode == 0, err
            shares.append([json.loads(line)["seq"] for line in out.splitlines()])
        return shares

    def kill(self) -> None:
        for proc in self.procs:
            proc.kill()
            proc.communicate(timeout=10)


@pytest.mark.parametrize("processes", [2, 3])
async def test_competing_processes_get_each_message_once_in_order(
    make: Make, redis_url: str, processes: int
) -> None:
    sender = make(capacity=10_000)
    receivers = Receivers(redis_url, sender.prefix, "work", processes)
    try:
        n = 1500
        for first in range(0, n, 50):
            assert (
                await sender.send_many([("work", msg(i)) for i in range(first, first + 50)])
                == [None] * 50
            )
            await asyncio.sleep(0.005)
        await sender.send_many([("work", {"type": "stop"})] * processes)
        shares = await asyncio.to_thread(receivers.seqs)
    finally:
        receivers.kill()
    everything = sorted(seq for share in shares for seq in share)
    assert everything == list(range(n)), "each message exactly once"
    for share in shares:
        assert share == sorted(share), "in order for each receiver"


async def test_a_killed_prefetching_process_loses_at_most_its_batch(
    make: Make, redis_url: str
) -> None:
    survivor = make(capacity=1000, socket_timeout=0.5)
    await survivor.send_many([("crash", msg(i)) for i in range(300)])
    victim = Receivers(redis_url, survivor.prefix, "crash", 1, hold=True)
    try:
        assert victim.line(0) == {"seq": 0}
        assert victim.line(0) == {"held": True}
    finally:
        victim.kill()  # SIGKILL, holding the batch of 100 its first fetch took
    got = [(await recv(survivor, "crash"))["seq"] for _ in range(200)]
    assert got == list(range(100, 300))
    # Once the dead reader's lease is over, the next fetch counts its batch as lost.
    await asyncio.sleep(2 * fetching.LINGER + 2 * 0.5 + 0.2)
    await nothing(survivor, "crash")
    assert survivor.stats()["dropped_crashed"] == 100
    with redis.Redis.from_url(redis_url) as client:
        held = list(client.scan_iter(match=f"{survivor.prefix}:h:*"))
        readers = client.zrange(survivor.keys.readers("crash"), 0, -1)
    assert len(held) <= 1  # the survivor's own, if any
    assert len(readers) <= 1

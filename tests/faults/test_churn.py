"""1,000 consumers connect and disconnect: no growth in connections, tasks or memory.

A cycle is what a WebSocket consumer does to the layer: a new channel, a group
membership, a message received, a receive left waiting and cancelled on disconnect,
and the membership discarded. Runs on in-memory and on every networked backend.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import tracemalloc
from collections.abc import AsyncIterator

import pytest

from layers.base import ChannelLayer
from layers.inmemory import InMemoryChannelLayer
from tests.faults.backends import NETWORKED, NetworkedBackend
from tests.helpers import msg, recv

CYCLES = 1000
WARM_UP = 200
# Name caches are bounded (cleared when full); here they are made small so that they
# turn over many times within the run and cannot pass for growth.
NAME_CACHES = [
    ("layers.naming", "_VALID_CACHE_SIZE"),
    ("layers.redis.layer", "_RECEIVING_CACHE_SIZE"),
]
SMALL_CACHE = 64
# Bytes a cycle may leave behind on average (allocator noise, a cache not yet
# cleared); a leaked buffer, waiter, future or task per cycle costs several times this.
PER_CYCLE = 100


async def cycle(layer: ChannelLayer, i: int) -> None:
    channel = await layer.new_channel()
    await layer.group_add("churn", channel)
    await layer.group_send("churn", msg(i))
    assert (await recv(layer, channel))["seq"] == i
    waiting = asyncio.ensure_future(layer.receive(channel))
    await asyncio.sleep(0)
    waiting.cancel()  # the client went away while its consumer was waiting
    with contextlib.suppress(asyncio.CancelledError):
        await waiting
    await layer.group_discard("churn", channel)


@pytest.fixture(params=[None, *NETWORKED], ids=["inmemory", *[b.name for b in NETWORKED]])
async def churned(
    request: pytest.FixtureRequest,
) -> AsyncIterator[tuple[ChannelLayer, NetworkedBackend | None, object]]:
    backend: NetworkedBackend | None = request.param
    if backend is None:
        layer: ChannelLayer = InMemoryChannelLayer()
        yield layer, None, None
        await layer.close()
        return
    with backend.server() as server:
        # Default timeouts: nothing fails here, and a loaded CI host may take longer than
        # the fault tests' sub-second ones for a broker round trip.
        layer = backend.make(*server.address, fast=False)
        yield layer, backend, server
        await layer.close()


def measure(backend: NetworkedBackend | None, server: object) -> tuple[int, int, int]:
    """(open connections, live tasks, traced bytes) now."""
    gc.collect()
    connections = -1
    if backend is not None and backend.connections is not None:
        connections = backend.connections(server)  # type: ignore[arg-type]
    return connections, len(asyncio.all_tasks()), tracemalloc.get_traced_memory()[0]


# The RabbitMQ variant starts its own broker (about 10 s) and runs 1,200 cycles in which
# the group empties and is deleted each time (about 10 broker round trips a cycle): on a
# loaded CI host that took just over the default 60 s, although nothing hung.
@pytest.mark.timeout(180)
async def test_consumer_churn_leaks_nothing(
    churned: tuple[ChannelLayer, NetworkedBackend | None, object],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    layer, backend, server = churned
    for module, name in NAME_CACHES:
        monkeypatch.setattr(f"{module}.{name}", SMALL_CACHE)
    tracemalloc.start()
    try:
        for i in range(WARM_UP):
            await cycle(layer, i)
        await asyncio.sleep(0.05)  # let pending acks go out
        before = measure(backend, server)
        for i in range(CYCLES):
            await cycle(layer, i)
        await asyncio.sleep(0.05)
        after = measure(backend, server)
    finally:
        tracemalloc.stop()
    # A pool opens connections up to its peak concurrency (a reader's pop, an ack and a
    # command in flight at once), not one per consumer: a leak would add ~1,000.
    assert after[0] <= before[0] + 2, f"open connections grew from {before[0]} to {after[0]}"
    assert after[1] <= before[1], f"tasks grew from {before[1]} to {after[1]}"
    grown = after[2] - before[2]
    assert grown < PER_CYCLE * CYCLES, f"memory grew by {grown} bytes over {CYCLES} cycles"
    assert await layer.group_channels("churn") == []
    stats = layer.stats()
    assert stats["received"] == WARM_UP + CYCLES
    print(
        f"churn: connections {before[0]}->{after[0]}, tasks {before[1]}->{after[1]}, "
        f"memory +{grown} bytes ({grown // CYCLES} per cycle)"
    )

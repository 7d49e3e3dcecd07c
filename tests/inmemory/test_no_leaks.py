"""In-memory state never outlives its use: no growth over connect/disconnect cycles."""

from __future__ import annotations

import asyncio
import gc
import tracemalloc

from layers import naming
from layers.inmemory import InMemoryChannelLayer
from tests.helpers import msg


async def _cycle(layer: InMemoryChannelLayer, i: int) -> None:
    # What a WebSocket consumer does: channel, group, wait, a message, leave.
    channel = await layer.new_channel()
    await layer.group_add(f"room-{i % 10}", channel)
    waiting = asyncio.ensure_future(layer.receive(channel))
    await asyncio.sleep(0)
    await layer.group_send(f"room-{i % 10}", msg(i))
    # The expiry is short, so that what is left unread below expires soon: on a loaded
    # host this message can expire before its receiver runs, which then waits on.
    await asyncio.wait([waiting], timeout=0.5)
    waiting.cancel()
    await layer.group_discard(f"room-{i % 10}", channel)
    timed_out = asyncio.ensure_future(layer.receive(channel))
    await asyncio.sleep(0)
    timed_out.cancel()
    await asyncio.gather(timed_out, return_exceptions=True)
    await layer.send(channel, msg(i))  # left unread after disconnect: must expire


# Traced cycles cost about 1 ms each (tracemalloc sees every allocation). What layers/
# keeps after the warm-up is a constant 4-7 KiB here, however many cycles follow; a
# leak of one object per cycle (16 bytes at the least) is 78 KiB over CYCLES.
CYCLES = 5_000
GROWTH_LIMIT = 24 * 1024


async def test_connect_disconnect_cycles_do_not_grow_memory() -> None:
    layer = InMemoryChannelLayer(expiry=0.05)
    for i in range(2000):  # warm up caches and allocator
        await _cycle(layer, i)
    await asyncio.sleep(0.1)
    await layer.send("tick", msg())  # any call sweeps
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    for i in range(CYCLES):
        await _cycle(layer, i)
    await asyncio.sleep(0.1)
    await layer.send("tick", msg())  # sweeps
    gc.collect()
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    # naming.py keeps a bounded cache of valid names (test_name_cache_is_bounded).
    grown = sum(
        s.size_diff
        for s in after.compare_to(before, "filename")
        if "layers" in str(s) and "naming.py" not in str(s)
    )
    stats = layer.stats()
    # Only "tick" is left: every cycle's channel, buffer, waiter and group is gone.
    assert (stats["channels"], stats["queued"], stats["waiting"], stats["groups"]) == (1, 1, 0, 0)
    assert stats["dropped_expired"] >= CYCLES
    assert grown < GROWTH_LIMIT, f"layers/ code holds {grown} more bytes after {CYCLES} cycles"
    await layer.close()


async def test_expired_unread_channels_leave_nothing_behind() -> None:
    # Long enough that no sweep drops the first sends before the count below.
    layer = InMemoryChannelLayer(expiry=0.5)
    for i in range(1000):
        await layer.send(f"abandoned.{i}", msg(i))
    assert layer.stats()["channels"] == 1000
    await asyncio.sleep(0.6)
    await layer.send("tick", msg())
    assert layer.stats()["channels"] == 1  # only "tick"
    assert layer.stats()["dropped_expired"] == 1000
    await layer.close()


async def test_empty_and_expired_groups_are_forgotten() -> None:
    layer = InMemoryChannelLayer(group_expiry=0.05)
    await layer.group_add("left", "a")
    await layer.group_discard("left", "a")
    assert layer.stats()["groups"] == 0
    for i in range(100):
        await layer.group_add(f"g{i}", "b")
    await asyncio.sleep(0.1)
    await layer.send("tick", msg())
    assert layer.stats()["groups"] == 0
    await layer.close()


async def test_receive_waiters_leave_no_buffer_behind() -> None:
    layer = InMemoryChannelLayer()
    tasks = [asyncio.ensure_future(layer.receive(f"c{i}")) for i in range(100)]
    await asyncio.sleep(0)
    assert layer.stats()["waiting"] == 100
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    assert layer.stats()["channels"] == 0
    assert layer.stats()["waiting"] == 0
    await layer.close()


def test_name_cache_is_bounded() -> None:
    for i in range(3 * naming._VALID_CACHE_SIZE):
        naming.check_channel(f"specific.abc!{i}")
    assert 0 < len(naming._valid_channels) <= naming._VALID_CACHE_SIZE

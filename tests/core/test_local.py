"""layers/local.py: the per-process buffers every backend delivers into."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import sys
import tracemalloc
from collections.abc import Iterator

import pytest

from layers.counters import Counters
from layers.exceptions import ChannelLayerClosed
from layers.inmemory import InMemoryChannelLayer
from layers.local import LocalChannels
from tests.loop_thread import WAIT, LoopThread, loop_thread

FAR = 1e9  # a deadline nothing reaches


class Clock:
    """A clock the test moves."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def channels(**options: object) -> tuple[LocalChannels, list[tuple[str, int]]]:
    """A LocalChannels whose on_remove calls are recorded."""
    removed: list[tuple[str, int]] = []
    local = LocalChannels(Counters(), on_remove=lambda c, n: removed.append((c, n)), **options)  # type: ignore[arg-type]
    return local, removed


async def get(local: LocalChannels, channel: str) -> bytes:
    async with asyncio.timeout(WAIT):
        return await local.get(channel)


async def parked(local: LocalChannels, channel: str) -> asyncio.Task[bytes]:
    """A get() task of this loop, waiting."""
    task = asyncio.ensure_future(local.get(channel))
    await asyncio.sleep(0)
    assert not task.done()
    return task


def start_waiting(other: LoopThread, local: LocalChannels, channel: str) -> asyncio.Future[bytes]:
    """A get() in the other loop, waiting there; its result as an awaitable here."""
    before = local.waiting(channel) if not channel.endswith("!") else 0
    future = asyncio.wrap_future(other.start(local.get(channel)))
    other.settle()
    if not channel.endswith("!"):
        assert local.waiting(channel) == before + 1
    return future


async def cancelled(task: asyncio.Future[bytes]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


# -- putting and taking -------------------------------------------------------------


async def test_get_returns_payloads_in_order_and_waits_for_the_next() -> None:
    local, _ = channels()
    for i in range(3):
        assert local.put("c", b"%d" % i, FAR, 10)
    assert [await get(local, "c") for _ in range(3)] == [b"0", b"1", b"2"]
    waiting = await parked(local, "c")
    assert local.put("c", b"3", FAR, 10)
    assert await asyncio.wait_for(waiting, WAIT) == b"3"


async def test_take_returns_what_is_queued_now_without_waiting() -> None:
    local, _ = channels()
    assert local.take("c") is None
    local.put("c", b"m", FAR, 10)
    assert local.take("c") == b"m"
    assert local.take("c") is None


async def test_a_full_channel_refuses_until_an_expired_payload_makes_room() -> None:
    clock = Clock()
    local, _ = channels(clock=clock)
    assert local.put("c", b"old", clock.now + 5, 2)
    assert local.put("c", b"new", clock.now + 50, 2)
    assert not local.put("c", b"refused", clock.now + 50, 2)
    clock.now += 10
    assert local.put("c", b"room", clock.now + 50, 2)
    assert [local.take("c"), local.take("c"), local.take("c")] == [b"new", b"room", None]
    assert local.counters.dropped_expired == 1


async def test_an_expired_payload_is_never_delivered() -> None:
    clock = Clock()
    local, _ = channels(clock=clock)
    local.put("c", b"late", clock.now + 1, 10)
    local.put("c", b"later", clock.now + 2, 10)
    local.put("c", b"live", clock.now + 60, 10)
    clock.now += 2  # a deadline reached counts as passed
    assert await get(local, "c") == b"live"
    assert local.counters.dropped_expired == 2


async def test_a_prefix_receives_every_local_channel_in_arrival_order() -> None:
    local, _ = channels()
    local.put("x!b", b"1", FAR, 10)
    local.put("x!a", b"2", FAR, 10)
    local.put("y!a", b"other inbox", FAR, 10)
    local.put("x!b", b"3", FAR, 10)
    assert [await get(local, "x!") for _ in range(3)] == [b"1", b"2", b"3"]
    waiting = await parked(local, "x!")
    local.put("x!c", b"4", FAR, 10)
    assert await asyncio.wait_for(waiting, WAIT) == b"4"
    assert local.take("y!a") == b"other inbox"


async def test_a_channel_receiver_and_a_prefix_receiver_share_without_duplicates() -> None:
    local, _ = channels()
    on_channel = await parked(local, "x!a")
    on_prefix = await parked(local, "x!")
    local.put("x!a", b"1", FAR, 10)  # the channel's own waiter comes first
    local.put("x!b", b"2", FAR, 10)
    assert await asyncio.wait_for(on_channel, WAIT) == b"1"
    assert await asyncio.wait_for(on_prefix, WAIT) == b"2"
    assert local.take("x!") is None


async def test_put_many_puts_one_payload_into_each_channel_and_wakes_each_waiter() -> None:
    local, _ = channels()
    waiters = [await parked(local, f"x!{i}") for i in range(3)]
    local.put("x!3", b"first", FAR, 10)
    assert local.put_many([f"x!{i}" for i in range(4)], b"all", FAR, 10) == []
    assert await asyncio.wait_for(asyncio.gather(*waiters), WAIT) == [b"all"] * 3
    assert [local.take("x!3"), local.take("x!3")] == [b"first", b"all"]


async def test_put_many_skips_and_returns_the_full_channels() -> None:
    local, _ = channels()
    for _ in range(2):
        local.put("full", b"x", FAR, 2)
    local.put("one", b"x", FAR, 2)
    capacities = {"full": 2, "one": 2, "empty": 1}
    assert local.put_many(["full", "one", "empty"], b"m", FAR, capacities.__getitem__) == ["full"]
    assert local.put_many(["one", "empty"], b"m", FAR, 2) == ["one"]
    assert local.put_many(["empty", "new"], b"m", FAR, 1) == ["empty"]
    assert local.snapshot()["queued"] == 2 + 2 + 2 + 1


async def test_put_many_counts_an_expired_payload_as_room() -> None:
    clock = Clock()
    local, _ = channels(clock=clock)
    local.put("c", b"old", clock.now + 1, 1)
    clock.now += 5
    assert local.put_many(["c"], b"new", clock.now + 60, 1) == []
    assert local.take("c") == b"new"


# -- cancellation and waiters -------------------------------------------------------


async def test_a_cancelled_get_leaves_no_waiter_and_no_buffer() -> None:
    local, _ = channels()
    task = await parked(local, "c")
    assert local.waiting("c") == 1
    await cancelled(task)
    assert local.waiting("c") == 0
    assert local.snapshot() == {"channels": 0, "queued": 0, "waiting": 0}
    local.put("c", b"m", FAR, 10)
    assert local.take("c") == b"m"


async def test_a_get_cancelled_right_after_its_wake_passes_the_message_on() -> None:
    local, _ = channels()
    first = await parked(local, "c")
    second = await parked(local, "c")
    local.put("c", b"m", FAR, 10)  # wakes first, which has not run yet
    first.cancel()
    assert await asyncio.wait_for(second, WAIT) == b"m"
    assert first.cancelled()


async def test_a_prefix_get_cancelled_right_after_its_wake_passes_the_message_on() -> None:
    local, _ = channels()
    first = await parked(local, "x!")
    second = await parked(local, "x!")
    local.put("x!a", b"m", FAR, 10)
    first.cancel()
    assert await asyncio.wait_for(second, WAIT) == b"m"


async def test_each_put_wakes_its_own_waiter_among_many() -> None:
    local, _ = channels()
    tasks = [await parked(local, "c") for _ in range(5)]
    assert local.waiting("c") == 5
    assert local.put_many(["c"] * 5, b"m", FAR, 10) == []
    assert await asyncio.wait_for(asyncio.gather(*tasks), WAIT) == [b"m"] * 5
    assert local.waiting("c") == 0


async def test_clear_drops_payloads_and_keeps_waiters_waiting() -> None:
    local, removed = channels()
    local.put("x!a", b"dropped", FAR, 10)
    local.put("normal", b"dropped", FAR, 10)
    waiting = await parked(local, "w")
    assert local.clear() == 2
    assert local.counters.flushed == 2
    assert removed == [("x!a", 1)]  # only process-local channels have depth counts
    assert local.take("x!a") is None
    local.put("w", b"after", FAR, 10)
    assert await asyncio.wait_for(waiting, WAIT) == b"after"


async def test_close_wakes_every_waiter_with_channel_layer_closed() -> None:
    local, _ = channels()
    tasks = [await parked(local, name) for name in ("a", "a", "x!b", "x!")]
    local.close()
    for task in tasks:
        with pytest.raises(ChannelLayerClosed):
            await asyncio.wait_for(task, WAIT)
    with pytest.raises(ChannelLayerClosed):
        await local.get("a")


async def test_on_remove_counts_taken_expired_and_drained_local_payloads() -> None:
    clock = Clock()
    local, removed = channels(clock=clock)
    local.put("x!a", b"1", clock.now + 1, 10)
    local.put("x!a", b"2", clock.now + 60, 10)
    local.put("normal", b"3", clock.now + 60, 10)
    clock.now += 5
    assert local.take("x!a") == b"2"
    assert local.take("normal") == b"3"
    assert removed == [("x!a", 1), ("x!a", 1)]  # one expired, one taken


async def test_on_remove_is_never_told_of_payloads_the_store_did_not_count() -> None:
    clock = Clock()
    local, removed = channels(clock=clock)
    assert local.put_many(["x!a", "x!b"], b"g1", clock.now + 1, 10, counted=False) == []
    local.put("x!a", b"d", clock.now + 60, 10)
    local.put_many(["x!a", "x!b"], b"g2", clock.now + 60, 10, counted=False)
    clock.now += 5  # g1 expires in both
    assert local.take("x!a") == b"d"
    assert local.take("x!a") == b"g2"
    local.put("x!b", b"d2", clock.now + 60, 10)
    assert local.clear() == 3  # g1 (expired, not yet swept), g2 and d2 of x!b
    assert removed == [("x!a", 1), ("x!b", 1)]


async def test_drain_unwatched_takes_what_no_live_waiter_will_take() -> None:
    local, _ = channels()
    local.put("c", b"m", 123.0, 10)
    local.put("c", b"n", 124.0, 10)
    assert local.drain_unwatched("c") == [(123.0, b"m"), (124.0, b"n")]
    assert local.drain_unwatched("c") == []


async def test_sweep_drops_expired_payloads_and_forgets_empty_buffers() -> None:
    clock = Clock()
    local, _ = channels(clock=clock, sweep_interval=10)
    local.put("a", b"1", clock.now + 1, 10)
    local.put("b", b"2", clock.now + 60, 10)
    assert local.take("b") == b"2"
    assert not local.maybe_sweep()
    clock.now += 11
    assert local.maybe_sweep()
    assert local.counters.dropped_expired == 1
    assert local.snapshot() == {"channels": 0, "queued": 0, "waiting": 0}


# -- what waiting costs --------------------------------------------------------------


@contextlib.contextmanager
def traced_in_local() -> Iterator[list[int]]:
    """Bytes allocated (and still held) from inside layers/local.py during the block."""
    held: list[int] = []
    gc.collect()
    tracemalloc.start(8)
    try:
        before = tracemalloc.take_snapshot()
        yield held
        gc.collect()
        after = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    only_local = [tracemalloc.Filter(True, "*/layers/local.py", all_frames=True)]
    diff = after.filter_traces(only_local).compare_to(before.filter_traces(only_local), "filename")
    held.append(sum(stat.size_diff for stat in diff))


async def test_an_idle_receiver_costs_the_layer_a_few_hundred_bytes() -> None:
    # One Future per wait and a small buffer: no deques or sets per channel (they
    # cost about 2 KB per idle receiver before).
    local = LocalChannels(Counters())
    names = [f"x!{i}" for i in range(1000)]
    with traced_in_local() as held:
        tasks = [asyncio.ensure_future(local.get(name)) for name in names]
        await asyncio.sleep(0)
    assert held[0] / len(names) < 500
    assert local.put_many(names, b"m", FAR, 10) == []
    await asyncio.wait_for(asyncio.gather(*tasks), WAIT)


async def test_an_emptied_buffer_keeps_no_queue() -> None:
    local = LocalChannels(Counters())
    names = [f"x!{i}" for i in range(1000)]
    with traced_in_local() as held:
        for _ in range(3):  # a queue of three, then taken
            local.put_many(names, b"m", FAR, 10)
        for name in names:
            while local.take(name) is not None:
                pass
    assert held[0] / len(names) < 200


# -- other loops ---------------------------------------------------------------------


async def test_a_waiter_in_another_loop_is_woken_from_this_one() -> None:
    local, _ = channels()
    with loop_thread() as other:
        there = start_waiting(other, local, "c")
        assert local.put_many(["c"], b"m", FAR, 10) == []
        assert await asyncio.wait_for(there, WAIT) == b"m"


async def test_a_waiter_woken_in_another_loop_keeps_its_message_from_drain_unwatched() -> None:
    # A fetcher hands a message to another loop's waiter, then gives back what nobody
    # watches: the message woken for must not be given back.
    local, _ = channels()
    with loop_thread() as other:
        there = start_waiting(other, local, "c")
        with other.hold():  # so the wake-up sent there has not run yet
            assert local.put("c", b"m", FAR, 10)
            assert local.waiting("c") == 0
            assert local.drain_unwatched("c") == []
        assert await asyncio.wait_for(there, WAIT) == b"m"
        assert local.drain_unwatched("c") == []


async def test_a_woken_waiter_whose_loop_died_leaves_its_message_to_others() -> None:
    local, _ = channels()
    with loop_thread() as other:
        start_waiting(other, local, "c")
        with other.hold("abandon"):  # woken, and its loop dies before it runs
            assert local.put("c", b"m", FAR, 10)
        assert local.take("c") == b"m"
        local.put("c", b"n", FAR, 10)
        assert local.drain_unwatched("c") == [(FAR, b"n")]  # a dead loop watches nothing


async def test_a_waiter_woken_then_ended_with_its_loop_passes_the_message_on() -> None:
    # asyncio.run ending in another thread cancels its waiter right after the wake-up
    # reached it: the next waiter, here, gets the message.
    local, _ = channels()
    with loop_thread() as other:
        there = start_waiting(other, local, "c")
        here = await parked(local, "c")
        with other.hold("end"):
            assert local.put("c", b"m", FAR, 10)
        assert await asyncio.wait_for(here, WAIT) == b"m"
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(there, WAIT)
        assert local.snapshot()["queued"] == 0


@pytest.mark.parametrize(
    "cancel_first", [False, True], ids=["wake-then-cancel", "cancel-then-wake"]
)
async def test_a_waiter_cancelled_in_another_loop_as_it_is_woken_passes_it_on(
    cancel_first: bool,
) -> None:
    local, _ = channels()
    with loop_thread() as other:
        there = other.call(lambda: asyncio.ensure_future(local.get("c")))
        other.settle()
        here = await parked(local, "c")
        with other.hold():  # both reach that loop before it runs either
            if cancel_first:
                other.loop.call_soon_threadsafe(there.cancel)
            assert local.put("c", b"m", FAR, 10)
            if not cancel_first:
                other.loop.call_soon_threadsafe(there.cancel)
        assert await asyncio.wait_for(here, WAIT) == b"m"
        other.settle()
        assert other.call(there.cancelled)
        assert local.waiting("c") == 0


async def test_a_remote_prefix_waiter_gets_a_wake_up_passed_on_by_a_cancel_here() -> None:
    local, _ = channels()
    with loop_thread() as other:
        here = await parked(local, "x!")
        there = start_waiting(other, local, "x!")
        local.put("x!a", b"m", FAR, 10)
        here.cancel()
        assert await asyncio.wait_for(there, WAIT) == b"m"


async def test_close_wakes_waiters_in_other_loops() -> None:
    local, _ = channels()
    with loop_thread() as other:
        there = [start_waiting(other, local, name) for name in ("a", "a", "x!")]
        local.close()
        for future in there:
            with pytest.raises(ChannelLayerClosed):
                await asyncio.wait_for(future, WAIT)


async def test_close_with_a_remote_waiter_whose_loop_died_does_not_fail() -> None:
    local, _ = channels()
    with loop_thread() as other:
        start_waiting(other, local, "a")
        other.abandon()
        local.close()  # its wake-up cannot be sent; nothing raises
        with pytest.raises(ChannelLayerClosed):
            await local.get("a")


@pytest.mark.skipif(sys.implementation.name != "cpython", reason="CPython frame sizes")
async def test_an_idle_receivers_frames_are_small() -> None:
    # Every idle receiver holds a receive() and a get() frame: a with or try statement
    # or a local more in either costs each of 10,000 idle receivers its stack slots
    # (CPython 3.11: 264 and 256 bytes before, 240 each now).
    layer = InMemoryChannelLayer()
    for coro in (layer.receive("x!a"), LocalChannels(Counters()).get("x!a")):
        size = sys.getsizeof(coro)
        coro.close()
        assert size <= 240

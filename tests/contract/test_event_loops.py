"""One layer object used from several event loops and threads."""

from __future__ import annotations

import asyncio
import threading
import time

from asgiref.sync import async_to_sync

from tests.contract.conftest import Layers
from tests.helpers import msg, recv
from tests.variants import Variant


def test_sequential_event_loops(variant: Variant) -> None:
    layer = variant.make()
    channel = asyncio.run(layer.new_channel())
    asyncio.run(layer.send(channel, msg(1)))
    asyncio.run(layer.send("normal", msg(2)))
    assert asyncio.run(recv(layer, channel))["seq"] == 1
    assert asyncio.run(recv(layer, "normal"))["seq"] == 2
    asyncio.run(layer.flush())
    asyncio.run(layer.close())


async def test_send_from_another_thread_wakes_this_loop(make_layer: Layers) -> None:
    layer = make_layer()
    for channel in (await layer.new_channel(), "normal"):
        # A long timeout: only a real cross-loop wake-up (not a timer) can end this early.
        waiting = asyncio.ensure_future(recv(layer, channel, timeout=30))
        await asyncio.sleep(0.05)
        started = time.monotonic()
        thread = threading.Thread(target=lambda c=channel: asyncio.run(layer.send(c, msg(1))))
        thread.start()
        assert (await waiting)["seq"] == 1
        assert time.monotonic() - started < 5, "the waiter was not woken by the other thread"
        await asyncio.to_thread(thread.join)


async def test_async_to_sync_group_send_from_many_threads(make_layer: Layers) -> None:
    layer = make_layer(capacity=1000)
    channel = await layer.new_channel()
    await layer.group_add("threads", channel)

    def push(start: int) -> None:
        for i in range(start, start + 25):
            async_to_sync(layer.group_send)("threads", msg(i))

    threads = [threading.Thread(target=push, args=(n * 25,)) for n in range(4)]
    for thread in threads:
        thread.start()
    got = [(await recv(layer, channel))["seq"] for _ in range(100)]
    for thread in threads:
        await asyncio.to_thread(thread.join)
    assert sorted(got) == list(range(100))


async def test_receivers_in_two_loops_share_a_channel(make_layer: Layers) -> None:
    layer = make_layer()
    other: list[int] = []
    started = threading.Event()

    def other_loop() -> None:
        async def main() -> None:
            started.set()
            other.append((await recv(layer, "both"))["seq"])

        asyncio.run(main())

    thread = threading.Thread(target=other_loop)
    thread.start()
    await asyncio.to_thread(started.wait, 5)
    await asyncio.sleep(0.05)
    here = asyncio.ensure_future(recv(layer, "both"))
    await asyncio.sleep(0.05)
    await layer.send("both", msg(1))
    await layer.send("both", msg(2))
    mine = (await here)["seq"]
    await asyncio.to_thread(thread.join, 5)
    assert sorted([mine, *other]) == [1, 2]

"""Cancelling a receive never loses a message."""

from __future__ import annotations

import asyncio

from layers.base import ChannelLayer
from tests.contract.conftest import Layers
from tests.helpers import msg, nothing, recv


async def test_cancelling_one_of_two_waiters_loses_nothing(layer: ChannelLayer) -> None:
    first = asyncio.ensure_future(layer.receive("c"))
    second = asyncio.ensure_future(layer.receive("c"))
    await asyncio.sleep(0.05)
    first.cancel()
    await layer.send("c", msg(1))
    async with asyncio.timeout(5):
        assert (await second)["seq"] == 1


async def test_a_woken_waiter_that_is_cancelled_passes_the_message_on(
    layer: ChannelLayer,
) -> None:
    for channel in ("normal", await layer.new_channel()):
        first = asyncio.ensure_future(layer.receive(channel))
        await asyncio.sleep(0.02)
        second = asyncio.ensure_future(layer.receive(channel))
        await asyncio.sleep(0.02)
        await layer.send(channel, msg(1))
        first.cancel()  # woken by the send, cancelled before it could take
        await asyncio.gather(first, return_exceptions=True)
        if first.cancelled():
            async with asyncio.timeout(5):
                assert (await second)["seq"] == 1
        else:
            assert first.result()["seq"] == 1
            second.cancel()
            await asyncio.gather(second, return_exceptions=True)


async def test_cancel_right_after_send_keeps_the_message(layer: ChannelLayer) -> None:
    for channel in ("normal", await layer.new_channel()):
        waiting = asyncio.ensure_future(layer.receive(channel))
        await asyncio.sleep(0.02)
        await layer.send(channel, msg(1))
        waiting.cancel()  # the wake-up may already be on its way
        results = await asyncio.gather(waiting, return_exceptions=True)
        if isinstance(results[0], asyncio.CancelledError):
            assert (await recv(layer, channel))["seq"] == 1
        else:
            assert results[0]["seq"] == 1
        await nothing(layer, channel, 0.05)


async def test_cancel_storm_loses_nothing(make_layer: Layers) -> None:
    layer = make_layer(capacity=1000)  # over the network most waiters are cancelled unfed
    received: list[int] = []
    for i in range(200):
        waiters = [asyncio.ensure_future(layer.receive("storm")) for _ in range(3)]
        await asyncio.sleep(0)
        await layer.send("storm", msg(i))
        waiters[i % 3].cancel()
        await asyncio.sleep(0)
        for waiter in waiters:
            if waiter.done() and not waiter.cancelled():
                received.append(waiter.result()["seq"])
            else:
                waiter.cancel()
        await asyncio.gather(*waiters, return_exceptions=True)
    while True:
        try:
            received.append((await recv(layer, "storm", timeout=0.2))["seq"])
        except TimeoutError:
            break
    assert sorted(received) == list(range(200))


async def test_cancelled_prefix_receive_loses_nothing(layer: ChannelLayer) -> None:
    channel = await layer.new_channel()
    inbox = layer.non_local_name(channel)
    first = asyncio.ensure_future(layer.receive(inbox))
    second = asyncio.ensure_future(layer.receive(inbox))
    await asyncio.sleep(0.05)
    await layer.send(channel, msg(1))
    first.cancel()
    done = await asyncio.gather(first, return_exceptions=True)
    if isinstance(done[0], asyncio.CancelledError):
        async with asyncio.timeout(5):
            assert (await second)["seq"] == 1
    else:
        second.cancel()
        await asyncio.gather(second, return_exceptions=True)
        assert done[0]["seq"] == 1


async def test_timed_out_receive_is_harmless(layer: ChannelLayer) -> None:
    for _ in range(20):
        try:
            async with asyncio.timeout(0.001):
                await layer.receive("t")
        except TimeoutError:
            pass
    await layer.send("t", msg(1))
    assert (await recv(layer, "t"))["seq"] == 1

"""InMemoryChannelLayer takes channels' own options and fixes its known bugs."""

from __future__ import annotations

import asyncio

import pytest

from layers.exceptions import ChannelFull
from layers.inmemory import InMemoryChannelLayer
from tests.helpers import msg, recv


async def test_accepts_channels_inmemory_options() -> None:
    layer = InMemoryChannelLayer(
        expiry=30, group_expiry=600, capacity=7, channel_capacity={"http.*": 2}
    )
    assert (layer.expiry, layer.group_expiry, layer.capacity) == (30, 600, 7)
    assert layer.get_capacity("http.x") == 2
    await layer.close()


async def test_channel_capacity_really_works() -> None:
    # channels' InMemoryChannelLayer ignores channel_capacity on send.
    layer = InMemoryChannelLayer(capacity=100, channel_capacity={"tiny": 1})
    await layer.send("tiny", msg())
    with pytest.raises(ChannelFull):
        await layer.send("tiny", msg())
    await layer.close()


async def test_cancelled_receive_does_not_orphan_the_queue() -> None:
    # channels deletes a channel's queue when a receive ends on an empty queue, so a
    # second waiter is left waiting on a queue nobody sends to any more.
    layer = InMemoryChannelLayer()
    first = asyncio.ensure_future(layer.receive("c"))
    second = asyncio.ensure_future(layer.receive("c"))
    await asyncio.sleep(0)
    first.cancel()
    await asyncio.gather(first, return_exceptions=True)
    await layer.send("c", msg(1))
    async with asyncio.timeout(5):
        assert (await second)["seq"] == 1
    await layer.close()


async def test_messages_are_copied_not_shared() -> None:
    layer = InMemoryChannelLayer()
    sent = {"type": "t", "items": [1]}
    await layer.send("c", sent)
    sent["items"].append(2)
    assert (await recv(layer, "c"))["items"] == [1]
    await layer.close()

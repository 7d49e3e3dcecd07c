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


async def test_groups_is_a_read_only_view_as_channels_tests_read_it() -> None:
    layer = InMemoryChannelLayer(group_expiry=60)
    await layer.group_add("room", "a")
    await layer.group_add("room", "b")
    await layer.group_add("other", "a")
    view = layer.groups
    assert set(view) == {"room", "other"}
    assert set(view["room"]) == {"a", "b"}
    with pytest.raises(TypeError):
        view["room"]["c"] = 0.0  # type: ignore[index]
    await layer.group_discard("room", "a")
    await layer.group_discard("room", "b")
    assert "room" not in layer.groups
    assert set(view["room"]) == {"a", "b"}  # a snapshot: the old view is unchanged
    await layer.close()


async def test_channels_is_a_read_only_view_of_busy_channels() -> None:
    layer = InMemoryChannelLayer()
    await layer.send("a", msg(1))
    await layer.send("a", msg(2))
    waiting = asyncio.create_task(layer.receive("b"))
    await asyncio.sleep(0)
    assert dict(layer.channels) == {"a": 2, "b": 0}
    with pytest.raises(TypeError):
        layer.channels["c"] = 1  # type: ignore[index]
    await recv(layer, "a")
    await recv(layer, "a")
    await layer.send("b", msg(3))
    await waiting
    assert dict(layer.channels) == {}
    await layer.close()

"""flush() and close(): nothing stranded, closed layers refuse use."""

from __future__ import annotations

import asyncio

import pytest

from layers.base import ChannelLayer
from layers.exceptions import ChannelLayerClosed
from tests.contract.conftest import Layers
from tests.helpers import msg, nothing, recv


async def test_flush_removes_messages_and_groups(layer: ChannelLayer) -> None:
    channel = await layer.new_channel()
    await layer.send("queued", msg(1))
    await layer.group_add("g", channel)
    await layer.flush()
    await nothing(layer, "queued")
    assert await layer.group_channels("g") == []
    await layer.group_send("g", msg(2))
    await nothing(layer, channel)


async def test_flush_never_strands_a_waiting_receiver(layer: ChannelLayer) -> None:
    local = await layer.new_channel()
    waiters = [
        asyncio.ensure_future(recv(layer, "normal")),
        asyncio.ensure_future(recv(layer, local)),
    ]
    await asyncio.sleep(0.05)
    await layer.flush()
    await layer.send("normal", msg(1))
    await layer.send(local, msg(2))
    assert [(await w)["seq"] for w in waiters] == [1, 2]


async def test_flush_then_reuse(layer: ChannelLayer) -> None:
    await layer.flush()
    await layer.flush()
    await layer.send("again", msg(3))
    assert (await recv(layer, "again"))["seq"] == 3


async def test_closed_layer_refuses_every_call(make_layer: Layers) -> None:
    layer = make_layer()
    await layer.close()
    await layer.close()  # idempotent
    assert layer.closed
    calls = [
        lambda: layer.send("c", msg()),
        lambda: layer.receive("c"),
        lambda: layer.new_channel(),
        lambda: layer.group_add("g", "c"),
        lambda: layer.group_discard("g", "c"),
        lambda: layer.group_send("g", msg()),
        lambda: layer.group_channels("g"),
        lambda: layer.flush(),
    ]
    for call in calls:
        with pytest.raises(ChannelLayerClosed, match="is closed"):
            await call()


async def test_close_wakes_a_waiting_receiver(make_layer: Layers) -> None:
    layer = make_layer()
    waiting = asyncio.ensure_future(layer.receive("forever"))
    await asyncio.sleep(0.05)
    await layer.close()
    async with asyncio.timeout(5):
        with pytest.raises(ChannelLayerClosed):
            await waiting


async def test_async_with_closes(make_layer: Layers) -> None:
    async with make_layer() as layer:
        await layer.send("ctx", msg(1))
        assert (await recv(layer, "ctx"))["seq"] == 1
    assert layer.closed
    with pytest.raises(ChannelLayerClosed):
        await layer.send("ctx", msg())

"""send_many and group_send_many: one entry per item, order per channel, nothing silent."""

from __future__ import annotations

import asyncio

import pytest

from layers.base import ChannelLayer
from layers.exceptions import (
    ChannelFull,
    ChannelLayerClosed,
    InvalidChannelName,
    InvalidMessage,
    MessageTooLarge,
)
from tests.contract.conftest import Layers
from tests.helpers import msg, nothing, recv


async def test_send_many_stores_every_item_in_order_per_channel(make_layer: Layers) -> None:
    layer = make_layer()
    peer = make_layer.peer(layer)
    mine, theirs = await layer.new_channel(), await peer.new_channel()
    targets = ["many.a", mine, "many.b", theirs]
    items = [(targets[i % 4], msg(i)) for i in range(40)]
    assert await layer.send_many(items) == [None] * 40
    assert layer.stats()["sent"] == 40
    for index, channel in enumerate(targets):
        receiver = peer if channel == theirs else layer
        got = [(await recv(receiver, channel))["seq"] for _ in range(10)]
        assert got == list(range(index, 40, 4))
        await nothing(receiver, channel)


async def test_send_many_takes_any_iterable_and_an_empty_one(layer: ChannelLayer) -> None:
    assert await layer.send_many([]) == []
    assert await layer.send_many(("gen", msg(i)) for i in range(3)) == [None] * 3
    assert [(await recv(layer, "gen"))["seq"] for _ in range(3)] == [0, 1, 2]


async def test_send_many_reports_a_channel_filling_up_mid_batch(make_layer: Layers) -> None:
    layer = make_layer(capacity=3)
    local = await layer.new_channel()
    items = [(name, msg(i)) for i in range(5) for name in ("fills", local, "roomy")]
    items = [item for item in items if item[0] != "roomy" or item[1]["seq"] < 3]
    results = await layer.send_many(items)
    outcome = {
        (name, message["seq"]): result
        for (name, message), result in zip(items, results, strict=True)
    }
    for name in ("fills", local):
        assert [outcome[name, i] for i in range(3)] == [None] * 3
        for i in (3, 4):
            error = outcome[name, i]
            assert isinstance(error, ChannelFull)
            assert "capacity of 3" in str(error)
        assert [(await recv(layer, name))["seq"] for _ in range(3)] == [0, 1, 2]
        await nothing(layer, name)
    assert [(await recv(layer, "roomy"))["seq"] for _ in range(3)] == [0, 1, 2]
    assert layer.stats()["sent"] == 9


@pytest.mark.parametrize(
    ("bad", "error", "match"),
    [
        (("bad name!!", msg()), InvalidChannelName, "send_many item 2: .*bad name"),
        (("ok", {"seq": 1}), TypeError, "send_many item 2: .*type"),
        (("ok", {"type": "t", "x": object()}), TypeError, "send_many item 2"),
        (("ok", {"type": "t", "big": "x" * 2_000_000}), MessageTooLarge, "send_many item 2"),
        (("ok",), InvalidMessage, "send_many item 2 must be a \\(name, message\\) pair"),
        ("ok", InvalidMessage, "send_many item 2 must be"),
    ],
)
async def test_send_many_refuses_a_bad_item_before_sending_anything(
    layer: ChannelLayer, bad: object, error: type[Exception], match: str
) -> None:
    items = [("ok", msg(0)), ("ok", msg(1)), bad, ("ok", msg(3))]
    with pytest.raises(error, match=match):
        await layer.send_many(items)  # type: ignore[arg-type]
    await nothing(layer, "ok")
    assert layer.stats()["sent"] == 0


async def test_group_send_many_follows_group_send_rules(make_layer: Layers) -> None:
    layer = make_layer(capacity=2)
    a, b = await layer.new_channel(), await layer.new_channel()
    await layer.group_add("left", a)
    await layer.group_add("both", a)
    await layer.group_add("both", b)
    await layer.group_add("both", "named.member")
    items = [("both", msg(0)), ("left", msg(1)), ("nobody", msg(2)), ("both", msg(3))]
    assert await layer.group_send_many(items) == [None] * 4
    assert layer.stats()["group_sends"] == 4
    # RabbitMQ's broker, and a Redis inbox, hand group messages to the process after the
    # call returns, and the receiving process caps them: let them land (a's third is
    # dropped there) before receiving frees room.
    async with asyncio.timeout(5):
        while layer.stats()["dropped_full"] < 1:
            await asyncio.sleep(0.02)
    await asyncio.sleep(0.1)
    # a got 0 and 1, then was full for 3; b and named.member got 0 and 3.
    assert [(await recv(layer, a))["seq"] for _ in range(2)] == [0, 1]
    for member in (b, "named.member"):
        assert [(await recv(layer, member))["seq"] for _ in range(2)] == [0, 3]
        await nothing(layer, member)
    await nothing(layer, a)
    assert layer.stats()["dropped_full"] == 1


async def test_group_send_many_reaches_a_peers_members(make_layer: Layers) -> None:
    layer = make_layer()
    peer = make_layer.peer(layer)
    theirs = await peer.new_channel()
    await layer.group_add("room", theirs)
    assert await layer.group_send_many([("room", msg(i)) for i in range(5)]) == [None] * 5
    assert [(await recv(peer, theirs))["seq"] for _ in range(5)] == list(range(5))


async def test_group_send_many_refuses_a_bad_group_before_sending(layer: ChannelLayer) -> None:
    channel = await layer.new_channel()
    await layer.group_add("fine", channel)
    with pytest.raises(InvalidChannelName, match="group_send_many item 1"):
        await layer.group_send_many([("fine", msg(0)), ("no!bang", msg(1))])
    with pytest.raises(TypeError, match="group_send_many item 0"):
        await layer.group_send_many([("fine", {"no": "type"})])
    await nothing(layer, channel)
    assert layer.stats()["group_sends"] == 0


async def test_batches_on_a_closed_layer_raise(make_layer: Layers) -> None:
    layer = make_layer()
    await layer.close()
    with pytest.raises(ChannelLayerClosed):
        await layer.send_many([("x", msg())])
    with pytest.raises(ChannelLayerClosed):
        await layer.group_send_many([("x", msg())])

"""Capacity per channel: ChannelFull on send, skip-and-count on group_send."""

from __future__ import annotations

import re

import pytest

from layers.exceptions import ChannelFull
from tests.contract.conftest import Layers
from tests.helpers import msg, nothing, recv


async def test_send_to_a_full_channel_raises_channel_full(make_layer: Layers) -> None:
    layer = make_layer(capacity=3)
    for i in range(3):
        await layer.send("full", msg(i))
    with pytest.raises(ChannelFull, match="'full' is at its capacity of 3"):
        await layer.send("full", msg(3))
    with pytest.raises(layer.ChannelFull):
        await layer.send("full", msg(3))
    assert [(await recv(layer, "full"))["seq"] for _ in range(3)] == [0, 1, 2]
    await nothing(layer, "full")


async def test_receiving_frees_capacity(make_layer: Layers) -> None:
    layer = make_layer(capacity=1)
    await layer.send("one", msg(1))
    await recv(layer, "one")
    await layer.send("one", msg(2))
    assert (await recv(layer, "one"))["seq"] == 2


async def test_capacity_is_per_channel_not_per_sender(make_layer: Layers) -> None:
    first = make_layer(capacity=2)
    second = make_layer.peer(first, capacity=2)
    await first.send("shared", msg(1))
    await second.send("shared", msg(2))
    with pytest.raises(ChannelFull):
        await first.send("shared", msg(3))
    with pytest.raises(ChannelFull):
        await second.send("shared", msg(3))
    await first.send("other", msg(4))


async def test_channel_capacity_globs_apply(make_layer: Layers) -> None:
    layer = make_layer(capacity=5, channel_capacity={"http.*": 1, "ws*": 2})
    assert layer.get_capacity("http.request") == 1
    assert layer.get_capacity("wsx") == 2
    assert layer.get_capacity("other") == 5
    await layer.send("http.request", msg())
    with pytest.raises(ChannelFull, match="capacity of 1"):
        await layer.send("http.request", msg())
    for _ in range(5):
        await layer.send("other", msg())
    with pytest.raises(ChannelFull, match="capacity of 5"):
        await layer.send("other", msg())


async def test_channel_capacity_regexes_and_first_match_wins(make_layer: Layers) -> None:
    layer = make_layer(
        capacity=10,
        channel_capacity={re.compile(r"^urgent\."): 1, "re:^urg": 3, "urgent.*": 7},
    )
    assert layer.get_capacity("urgent.x") == 1
    assert layer.get_capacity("urgx") == 3
    await layer.send("urgent.x", msg())
    with pytest.raises(ChannelFull):
        await layer.send("urgent.x", msg())


async def test_channel_capacity_applies_to_process_local_channels(make_layer: Layers) -> None:
    layer = make_layer(capacity=10, channel_capacity={"specific.*": 2})
    channel = await layer.new_channel()
    await layer.send(channel, msg(1))
    await layer.send(channel, msg(2))
    with pytest.raises(ChannelFull):
        await layer.send(channel, msg(3))


async def test_group_send_skips_full_members_and_counts(make_layer: Layers) -> None:
    layer = make_layer(capacity=1)
    full, free = await layer.new_channel(), await layer.new_channel()
    await layer.group_add("room", full)
    await layer.group_add("room", free)
    await layer.send(full, msg(0))
    await layer.group_send("room", msg(1))  # never raises ChannelFull
    assert (await recv(layer, free))["seq"] == 1
    assert (await recv(layer, full))["seq"] == 0
    await nothing(layer, full)
    assert layer.stats()["dropped_full"] == 1

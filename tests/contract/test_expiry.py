"""Expiry: late messages are dropped and counted; memberships lapse."""

from __future__ import annotations

import asyncio

from tests.contract.conftest import Layers
from tests.helpers import msg, nothing, recv


async def test_unread_message_expires_and_is_never_delivered_late(make_layer: Layers) -> None:
    layer = make_layer(expiry=0.2)
    await layer.send("slow", msg(1))
    await asyncio.sleep(0.35)
    await layer.send("slow", msg(2))
    assert (await recv(layer, "slow"))["seq"] == 2
    await nothing(layer, "slow")
    assert layer.stats()["dropped_expired"] == 1


async def test_expired_messages_free_capacity(make_layer: Layers) -> None:
    layer = make_layer(expiry=0.2, capacity=2)
    await layer.send("c", msg(1))
    await layer.send("c", msg(2))
    await asyncio.sleep(0.35)
    await layer.send("c", msg(3))
    await layer.send("c", msg(4))
    assert [(await recv(layer, "c"))["seq"] for _ in range(2)] == [3, 4]


async def test_expiry_applies_to_local_channels_and_groups(make_layer: Layers) -> None:
    layer = make_layer(expiry=0.2)
    channel = await layer.new_channel()
    await layer.group_add("g", channel)
    await layer.group_send("g", msg(1))
    await layer.send(channel, msg(2))
    await asyncio.sleep(0.35)
    await nothing(layer, channel)
    assert layer.stats()["dropped_expired"] == 2


async def test_group_membership_expires(make_layer: Layers) -> None:
    layer = make_layer(group_expiry=0.2)
    channel = await layer.new_channel()
    await layer.group_add("lapse", channel)
    assert await layer.group_channels("lapse") == [channel]
    await asyncio.sleep(0.35)
    assert await layer.group_channels("lapse") == []
    await layer.group_send("lapse", msg(1))
    await nothing(layer, channel)


async def test_group_add_renews_membership(make_layer: Layers) -> None:
    layer = make_layer(group_expiry=0.4)
    channel = await layer.new_channel()
    await layer.group_add("renew", channel)
    await asyncio.sleep(0.25)
    await layer.group_add("renew", channel)
    await asyncio.sleep(0.25)
    await layer.group_send("renew", msg(1))
    assert (await recv(layer, channel))["seq"] == 1

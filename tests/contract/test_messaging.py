"""Sending and receiving: equality, order, local channels, prefix receive, competition."""

from __future__ import annotations

import asyncio
import re

from layers.base import ChannelLayer
from tests.contract.conftest import Layers
from tests.helpers import msg, nothing, recv


async def test_receiver_gets_an_equal_dict(layer: ChannelLayer) -> None:
    message = {
        "type": "chat.message",
        "text": "héllo ✓",
        "n": -(2**63),
        "big": 2**64 - 1,
        "f": 1.5,
        "ok": True,
        "none": None,
        "raw": b"\x00\xff",
        "nested": {"list": [1, "two", {"three": [3.0]}], "empty": {}},
    }
    await layer.send("chat", message)
    assert await recv(layer, "chat") == message


async def test_tuples_become_lists_and_bytes_stay_bytes(layer: ChannelLayer) -> None:
    await layer.send(
        "c", {"type": "t", "tuple": (1, (2, 3)), "bytes": b"ab", "ba": bytearray(b"z")}
    )
    got = await recv(layer, "c")
    assert got == {"type": "t", "tuple": [1, [2, 3]], "bytes": b"ab", "ba": b"z"}
    assert type(got["bytes"]) is bytes
    assert type(got["tuple"]) is list


async def test_fifo_for_one_sender_and_one_receiver(layer: ChannelLayer) -> None:
    for i in range(50):
        await layer.send("fifo", msg(i))
    assert [(await recv(layer, "fifo"))["seq"] for _ in range(50)] == list(range(50))


async def test_receive_waits_for_a_later_send(layer: ChannelLayer) -> None:
    waiting = asyncio.ensure_future(recv(layer, "later"))
    await asyncio.sleep(0.05)
    assert not waiting.done()
    await layer.send("later", msg(7))
    assert (await waiting)["seq"] == 7


async def test_channels_are_independent(layer: ChannelLayer) -> None:
    await layer.send("a", msg(1))
    await layer.send("b", msg(2))
    assert (await recv(layer, "b"))["seq"] == 2
    assert (await recv(layer, "a"))["seq"] == 1
    await nothing(layer, "a")


async def test_new_channel_names_are_unique_valid_and_local(layer: ChannelLayer) -> None:
    names = {await layer.new_channel() for _ in range(200)}
    assert len(names) == 200
    for name in names:
        assert re.fullmatch(r"specific\.[A-Za-z0-9_\-.]+![A-Za-z0-9_\-.]+", name), name
        assert layer.require_valid_channel_name(name)
    custom = await layer.new_channel("http.response")
    assert custom.startswith("http.response.")
    assert "!" in custom
    # channels' own default spells the prefix with a trailing dot
    assert ".." not in await layer.new_channel("specific.")


async def test_process_local_channel_round_trip(layer: ChannelLayer) -> None:
    channel = await layer.new_channel()
    await layer.send(channel, msg(1))
    assert await recv(layer, channel) == msg(1)


async def test_peer_can_send_to_a_process_local_channel(make_layer: Layers) -> None:
    receiver = make_layer()
    sender = make_layer.peer(receiver)
    channel = await receiver.new_channel()
    await sender.send(channel, msg(3))
    assert await recv(receiver, channel) == msg(3)


async def test_local_channels_of_one_process_do_not_mix(layer: ChannelLayer) -> None:
    one, two = await layer.new_channel(), await layer.new_channel()
    await layer.send(one, msg(1))
    await layer.send(two, msg(2))
    assert (await recv(layer, two))["seq"] == 2
    assert (await recv(layer, one))["seq"] == 1


async def test_prefix_receive_gets_every_local_channel_in_arrival_order(
    layer: ChannelLayer,
) -> None:
    a = await layer.new_channel()
    b = await layer.new_channel()
    inbox = layer.non_local_name(a)
    assert inbox == layer.non_local_name(b)
    assert inbox.endswith("!")
    await layer.send(b, msg(1))
    await layer.send(a, msg(2))
    await layer.send(b, msg(3))
    assert [(await recv(layer, inbox))["seq"] for _ in range(3)] == [1, 2, 3]
    await nothing(layer, a)


async def test_prefix_receive_wakes_for_a_later_send(layer: ChannelLayer) -> None:
    a = await layer.new_channel()
    waiting = asyncio.ensure_future(recv(layer, layer.non_local_name(a)))
    await asyncio.sleep(0.05)
    await layer.send(a, msg(5))
    assert (await waiting)["seq"] == 5


async def test_competing_receivers_each_get_different_messages(make_layer: Layers) -> None:
    first = make_layer()
    second = make_layer.peer(first)
    got: list[int] = []

    async def drain(layer: ChannelLayer) -> None:
        while True:
            got.append((await layer.receive("jobs"))["seq"])

    tasks = [asyncio.ensure_future(drain(first)), asyncio.ensure_future(drain(second))]
    await asyncio.sleep(0.02)
    for i in range(60):
        await first.send("jobs", msg(i))
    async with asyncio.timeout(5):
        while len(got) < 60:
            await asyncio.sleep(0.01)
    await asyncio.sleep(0.05)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    assert sorted(got) == list(range(60))


async def test_each_receiver_gets_its_own_copy(layer: ChannelLayer) -> None:
    a, b = await layer.new_channel(), await layer.new_channel()
    await layer.group_add("copies", a)
    await layer.group_add("copies", b)
    await layer.group_send("copies", {"type": "t", "list": [1]})
    first = await recv(layer, a)
    first["list"].append(2)
    assert (await recv(layer, b))["list"] == [1]

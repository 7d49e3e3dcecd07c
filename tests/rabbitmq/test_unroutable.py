"""Sends to a process that is gone: detected by mandatory publishing, counted, logged."""

from __future__ import annotations

import asyncio

import pytest

from layers.exceptions import InvalidChannelName
from tests.helpers import msg, recv
from tests.rabbitmq.broker import queue_exists
from tests.rabbitmq.conftest import MakeLayer


async def test_send_to_a_closed_layers_channel_is_counted_unroutable(
    rabbit: MakeLayer, amqp_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    gone = rabbit()
    channel = await gone.new_channel()
    inbox = gone.stats()["inbox"]
    assert await queue_exists(amqp_url, inbox)
    await gone.close()
    assert not await queue_exists(amqp_url, inbox)  # close() deletes the inbox

    sender = rabbit(prefix=gone.prefix)
    await sender.send(channel, msg(1))  # no exception: the process may just have left
    assert sender.stats()["dropped_unroutable"] == 1
    assert "dropped_unroutable" in caplog.text
    assert channel in caplog.text


async def test_send_to_a_made_up_process_channel_is_counted(rabbit: MakeLayer) -> None:
    sender = rabbit()
    await sender.send("specific.nosuchclient!x", msg())
    assert sender.stats()["dropped_unroutable"] == 1


async def test_group_add_of_a_gone_process_channel_is_counted(rabbit: MakeLayer) -> None:
    gone = rabbit()
    channel = await gone.new_channel()
    await gone.close()
    other = rabbit(prefix=gone.prefix)
    await other.group_add("room", channel)
    assert other.stats()["dropped_unroutable"] == 1
    assert await other.group_channels("room") == []


async def test_a_live_peer_process_channel_is_delivered_not_counted(rabbit: MakeLayer) -> None:
    receiver = rabbit()
    sender = rabbit(prefix=receiver.prefix)
    channel = await receiver.new_channel()
    await sender.send(channel, msg(5))
    assert (await recv(receiver, channel))["seq"] == 5
    assert sender.stats()["dropped_unroutable"] == 0


async def test_group_member_in_another_live_process_hears_the_group(rabbit: MakeLayer) -> None:
    # group_add of a peer's channel tells the peer by a control message on its inbox.
    owner = rabbit()
    other = rabbit(prefix=owner.prefix)
    channel = await owner.new_channel()
    await other.group_add("room", channel)
    await other.group_send("room", msg(6))
    assert (await recv(owner, channel))["seq"] == 6
    await other.group_discard("room", channel)
    await asyncio.sleep(0.05)
    await other.group_send("room", msg(7))
    await owner.send(channel, msg(8))
    assert (await recv(owner, channel))["seq"] == 8


async def test_receiving_on_another_layers_channel_is_refused(rabbit: MakeLayer) -> None:
    owner = rabbit()
    other = rabbit(prefix=owner.prefix)
    channel = await owner.new_channel()
    with pytest.raises(InvalidChannelName, match="belongs to another process"):
        await other.receive(channel)

"""Capacity through x-max-length and confirms; expiry through TTLs, dead letters and deadlines."""

from __future__ import annotations

import asyncio
import time

import aiormq
import pytest

from layers.exceptions import ChannelFull
from layers.rabbitmq import wire
from tests.helpers import msg, nothing, recv
from tests.rabbitmq.conftest import MakeLayer


async def test_the_broker_refuses_a_full_normal_channel_for_every_sender(
    rabbit: MakeLayer,
) -> None:
    first = rabbit(capacity=2)
    second = rabbit(prefix=first.prefix, capacity=2)
    await first.send("work", msg(1))
    await second.send("work", msg(2))
    with pytest.raises(ChannelFull, match="'work' is at its capacity of 2"):
        await second.send("work", msg(3))
    assert (await recv(first, "work"))["seq"] == 1
    await second.send("work", msg(4))  # room again


async def test_group_send_to_a_full_normal_member_counts_a_drop(rabbit: MakeLayer) -> None:
    layer = rabbit(capacity=1)
    await layer.group_add("workers", "busy")
    await layer.send("busy", msg(0))
    await layer.group_send("workers", msg(1))  # the broker nacks: never ChannelFull here
    assert layer.stats()["dropped_full"] == 1
    assert (await recv(layer, "busy"))["seq"] == 0
    await nothing(layer, "busy")


async def test_group_send_counts_what_the_broker_confirmed(rabbit: MakeLayer) -> None:
    sender = rabbit(channel_capacity={"worker": 1})
    member = rabbit(prefix=sender.prefix)
    mine, theirs = await sender.new_channel(), await member.new_channel()
    for channel in (mine, theirs, await member.new_channel(), "worker"):
        await sender.group_add("room", channel)
    await sender.group_send("room", msg(1))  # four members, one confirm
    await sender.group_send("nobody", msg(2))
    await sender.group_send("room", msg(3))  # "worker" is full: refused
    stats = sender.stats()
    assert stats["sent"] == 1  # the confirmed one, not its four deliveries
    assert stats["group_sends"] == 3
    assert stats["dropped_full"] == 1
    assert (
        stats["group_sends_confirmed"],
        stats["group_sends_no_member"],
        stats["group_sends_refused"],
    ) == (1, 1, 1)
    assert (await recv(sender, mine))["seq"] == 1
    assert (await recv(member, theirs))["seq"] == 1


async def test_a_peer_process_channel_over_capacity_drops_at_the_receiver(
    rabbit: MakeLayer,
) -> None:
    receiver = rabbit(capacity=2)
    sender = rabbit(prefix=receiver.prefix, capacity=2)
    channel = await receiver.new_channel()
    for i in range(3):
        await sender.send(channel, msg(i))
    async with asyncio.timeout(5):  # until the receiver's inbox consumer has seen all three
        while receiver.stats()["queued"] + receiver.stats()["dropped_full"] < 3:
            await asyncio.sleep(0.01)
    assert [(await recv(receiver, channel))["seq"] for _ in range(2)] == [0, 1]
    await nothing(receiver, channel)
    assert receiver.stats()["dropped_full"] == 1


async def test_a_process_that_does_not_keep_up_makes_its_senders_raise_channel_full(
    rabbit: MakeLayer,
) -> None:
    receiver = rabbit(inbox_capacity=3)
    sender = rabbit(prefix=receiver.prefix)
    channel = await receiver.new_channel()
    await receiver.group_add("room", channel)
    await receiver.inbox.stop()  # stuck: its inbox fills on the broker
    for i in range(3):
        await sender.send(channel, msg(i))
    with pytest.raises(ChannelFull, match="inbox_capacity"):
        await sender.send(channel, msg(3))
    with pytest.raises(ChannelFull, match="inbox of the process"):
        await sender.group_add("hall", channel)  # its owner could not be told
    await sender.group_send("room", msg(4))  # never raises: counted as a drop
    assert sender.stats()["dropped_full"] == 1
    await receiver.inbox.ensure()  # it catches up: the first three arrive, then room again
    assert [(await recv(receiver, channel))["seq"] for _ in range(3)] == [0, 1, 2]
    await sender.send(channel, msg(5))
    assert (await recv(receiver, channel))["seq"] == 5


async def test_a_message_expired_in_the_queue_is_counted_by_its_sender(
    rabbit: MakeLayer,
) -> None:
    sender = rabbit(expiry=0.2)
    receiver = rabbit(prefix=sender.prefix, expiry=0.2)
    await sender.send("slow", msg(1))
    await asyncio.sleep(0.4)
    await nothing(receiver, "slow")
    async with asyncio.timeout(5):  # the dead letter travels back to the sender's inbox
        while sender.stats()["dropped_expired"] < 1:
            await asyncio.sleep(0.02)
    assert receiver.stats()["dropped_expired"] == 0


async def test_a_late_message_is_dropped_on_receive(rabbit: MakeLayer, amqp_url: str) -> None:
    layer = rabbit(expiry=30)
    await layer.send("late", msg(0))  # declares the queue
    assert (await recv(layer, "late"))["seq"] == 0
    # A message whose deadline passed while the broker still held it (clock or TTL lag).
    connection = await aiormq.connect(amqp_url)
    channel = await connection.channel()
    past = int((time.time() - 1) * 1000)
    headers = {wire.DEADLINE: past, wire.SENDER: "nobody"}
    payload = layer.codec.encode(msg(1))
    await channel.basic_publish(
        payload,
        routing_key=layer.topology.channel_queue("late"),
        properties=aiormq.spec.Basic.Properties(headers=headers),
    )
    await connection.close()
    await layer.send("late", msg(2))
    assert (await recv(layer, "late"))["seq"] == 2
    assert layer.stats()["dropped_expired"] == 1

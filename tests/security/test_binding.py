"""Encrypted messages are bound to where they were sent (issue 17, item 6).

Someone with write access to the backend, but not the key, copies a real ciphertext
into another channel's queue: straight into Redis, into a RabbitMQ queue, into an IPC
region. The receiver drops it and counts it (dropped_undecodable), and goes on
delivering. A group message is delivered only to channels that are members of that
group, however the entry that carries it names its channels.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import AsyncIterator

import aio_pika
import pytest
from redis.asyncio import Redis

from layers.base import ChannelLayer
from layers.inbox import HEADER
from layers.ipc import IPCChannelLayer
from layers.rabbitmq import RabbitMQChannelLayer
from layers.redis import RedisChannelLayer
from tests.helpers import msg, nothing, recv

KEYS = ["binding-sixteen-bytes-at-least"]


@pytest.fixture
async def client(redis_url: str) -> AsyncIterator[Redis]:
    connection = Redis.from_url(redis_url)
    yield connection
    await connection.aclose()


async def replay_refused(receiver: ChannelLayer, channel: str, dropped: int) -> None:
    """Nothing arrives on channel; dropped replays were counted; real sends still arrive."""
    await nothing(receiver, channel, 0.3)
    assert receiver.stats()["dropped_undecodable"] == dropped
    assert receiver.stats()["received"] == 0


def redis_pair(url: str) -> tuple[RedisChannelLayer, RedisChannelLayer]:
    """Two encrypting layers of one prefix, as two processes would have."""
    prefix = f"b{secrets.token_hex(4)}"
    made = [RedisChannelLayer(hosts=[url], prefix=prefix, symmetric_encryption_keys=KEYS)]
    made.append(RedisChannelLayer(hosts=[url], prefix=prefix, symmetric_encryption_keys=KEYS))
    return made[0], made[1]


async def close_all(*layers: ChannelLayer) -> None:
    await layers[0].flush()
    for layer in layers:
        await layer.close()


async def test_redis_ciphertext_replayed_onto_another_channel_is_dropped(
    redis_url: str, client: Redis
) -> None:
    sender, receiver = redis_pair(redis_url)
    try:
        await sender.send("payments", msg(1))
        stolen = await client.lrange(sender.keys.channel("payments"), 0, -1)
        assert len(stolen) == 1
        await client.rpush(sender.keys.channel("audit"), *stolen)
        await replay_refused(receiver, "audit", 1)
        # The original, and a real message to audit, arrive.
        assert (await recv(receiver, "payments"))["seq"] == 1
        await sender.send("audit", msg(2))
        assert (await recv(receiver, "audit"))["seq"] == 2
    finally:
        await close_all(sender, receiver)


async def test_redis_group_entry_reaches_only_the_groups_members(
    redis_url: str, client: Redis
) -> None:
    sender, receiver = redis_pair(redis_url)
    try:
        member, outsider = await receiver.new_channel(), await receiver.new_channel()
        await receiver.group_add("room", member)
        await receiver.group_add("room", "members.only")
        await sender.group_send("room", msg(3))
        # The ciphertext, as the normal channel member holds it (the inbox's reader
        # takes its own copy at once): a forged inbox entry names both local channels.
        [stolen] = await client.lrange(sender.keys.channel("members.only"), 0, -1)
        inbox = receiver.non_local_name(member)
        parts = f"{member[len(inbox) :]},{outsider[len(inbox) :]}".encode()
        forged = stolen[:13] + parts + b"\n" + HEADER + stolen[13:]
        await client.rpush(receiver.keys.inbox(inbox), forged)
        assert (await recv(receiver, member))["seq"] == 3
        assert (await recv(receiver, member))["seq"] == 3
        await nothing(receiver, outsider, 0.3)
        assert receiver.stats()["dropped_undecodable"] == 1
    finally:
        await close_all(sender, receiver)


async def test_rabbitmq_ciphertext_replayed_onto_other_queues_is_dropped(amqp_url: str) -> None:
    options = {"url": amqp_url, "prefix": f"b{secrets.token_hex(4)}"}
    sender = RabbitMQChannelLayer(**options, symmetric_encryption_keys=KEYS)
    receiver = RabbitMQChannelLayer(**options, symmetric_encryption_keys=KEYS)
    connection = await aio_pika.connect(amqp_url)
    try:
        await receiver.group_add("room", "members.only")
        for name in ("audit", "outsider"):  # their queues exist once sent to
            await sender.send(name, msg(0))
            assert (await recv(receiver, name))["seq"] == 0
        await sender.send("payments", msg(1))
        await sender.group_send("room", msg(2))
        channel = await connection.channel()
        for source, target in (("payments", "audit"), ("members.only", "outsider")):
            queue = await channel.declare_queue(
                receiver.topology.channel_queue(source), passive=True
            )
            stolen = await queue.get(no_ack=True, timeout=5)
            await channel.default_exchange.publish(
                aio_pika.Message(stolen.body, headers=stolen.headers),
                routing_key=receiver.topology.channel_queue(target),
            )
        await nothing(receiver, "audit", 0.3)
        await nothing(receiver, "outsider", 0.3)
        assert receiver.stats()["dropped_undecodable"] == 2
    finally:
        await connection.close()
        await close_all(sender, receiver)


async def test_ipc_ciphertext_replayed_in_the_region_is_dropped() -> None:
    name = f"bind{secrets.token_hex(4)}"
    sender = IPCChannelLayer(name=name, symmetric_encryption_keys=KEYS)
    receiver = IPCChannelLayer(name=name, symmetric_encryption_keys=KEYS)
    try:
        member, outsider = await receiver.new_channel(), await receiver.new_channel()
        await receiver.group_add("room", member)
        await sender.send("payments", msg(1))
        await sender.group_send("room", msg(2))
        inbox = receiver.non_local_name(member)
        now = time.monotonic()
        with receiver.txn() as txn:
            stolen, _ = txn.state.pop("payments", now)
            assert stolen is not None
            assert txn.state.push("audit", now + 60, stolen)
            # The group's entry, forged to name both channels.
            [(_, entry)], _ = txn.state.pop_inbox(inbox, now, 10)
            payload = entry.partition(b"\n")[2][len(HEADER) :]
            parts = [member[len(inbox) :], outsider[len(inbox) :]]
            assert txn.state.push_local(inbox, parts, now + 60, payload)
            txn.state.take_watchers(inbox, txn.wake)
            txn.changed = True
        await nothing(receiver, "audit", 0.3)
        assert (await recv(receiver, member))["seq"] == 2
        await nothing(receiver, outsider, 0.3)
        assert receiver.stats()["dropped_undecodable"] == 2
    finally:
        await close_all(sender, receiver)


async def test_rabbitmq_takes_the_broker_s_routing_as_membership(
    amqp_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A group message the broker routed through the group's binding is a member's,
    even when a listing of the group's records comes out partial (two compactions at
    once each see part of them: rabbitmq/registry.py)."""
    options = {"url": amqp_url, "prefix": f"b{secrets.token_hex(4)}"}
    sender = RabbitMQChannelLayer(**options, symmetric_encryption_keys=KEYS)
    receiver = RabbitMQChannelLayer(**options, symmetric_encryption_keys=KEYS)
    try:
        await receiver.group_add("room", "members.only")
        await sender.group_send("room", msg(1))

        async def partial_listing(group: str) -> list[str]:
            return []

        monkeypatch.setattr(receiver, "_group_channels", partial_listing)
        monkeypatch.setattr(receiver._binding, "_read_members", partial_listing)
        assert (await recv(receiver, "members.only"))["seq"] == 1
        assert receiver.stats()["dropped_undecodable"] == 0
    finally:
        await close_all(sender, receiver)

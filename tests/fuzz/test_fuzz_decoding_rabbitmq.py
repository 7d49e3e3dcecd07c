"""Garbage published straight into a RabbitMQ layer's queues is dropped and counted, never fatal.

Raw aio-pika, bypassing ``send``, publishes into a process inbox (the queue its
``new_channel()`` channels share), into a normal channel's queue, and into the group
exchange under a group with members both kinds: random bodies, truncated and
byte-flipped valid encodings, valid encodings under a foreign key, and bodies whose
headers the layer relies on are missing or odd (no channel header, one naming no
channel of that inbox, malformed membership control messages, odd deadlines and
message ids). Each is acked and counted once (``dropped_undecodable``, or
``dropped_expired`` for a past deadline) by the inbox consumer or by the receive that
meets it, and sends before and after reach that channel and the others.

A flipped byte in a plain (unencrypted) payload may still decode: nothing can tell
without encryption, and such a message is delivered as what it decoded to.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator
from typing import Any

import aio_pika
import pytest
from aio_pika.abc import AbstractChannel, AbstractRobustConnection
from hypothesis import given, settings
from hypothesis import strategies as st

from layers.rabbitmq import RabbitMQChannelLayer, wire
from tests.fuzz.garbage import deliveries_go_on, foreign, tampered
from tests.helpers import msg, recv

Published = tuple[dict[str, Any], bytes]

not_str = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(1 << 63), (1 << 63) - 1),
    st.floats(width=32, allow_nan=False, allow_infinity=False),  # what pamqp encodes
    st.binary(max_size=8).map(bytearray),  # an AMQP byte array
)
odd = not_str | st.text(max_size=8)
some = odd.filter(lambda v: v is not None)  # an op header of None is no op header
ids = st.none() | st.text(max_size=8)


def inbox_headers(local: str) -> st.SearchStrategy[dict[str, Any]]:
    """Headers of an inbox message that the inbox must drop and count whatever its body."""
    foreign_channel = st.sampled_from([local.replace("!", "."), f"x.{'0' * 12}!a", local + " "])
    return st.one_of(
        st.just({}),
        st.fixed_dictionaries({wire.CHANNEL: odd | foreign_channel}),
        st.fixed_dictionaries({wire.OP: some}, optional={wire.GROUP: odd, wire.CHANNEL: odd}),
        st.fixed_dictionaries(
            {wire.OP: st.sampled_from([wire.ADD, wire.DISCARD]), wire.GROUP: not_str},
            optional={wire.CHANNEL: st.just(local)},
        ),
        st.fixed_dictionaries(
            {
                wire.OP: st.sampled_from([wire.ADD, wire.DISCARD]),
                wire.GROUP: st.just("g"),
                wire.CHANNEL: not_str | foreign_channel,
            }
        ),
        st.fixed_dictionaries({wire.GROUP: not_str}),
        st.fixed_dictionaries({"x-death": odd}),
    )


# Headers under which a message is delivered to its channel, where receive() decodes it.
delivered_headers = st.fixed_dictionaries(
    {}, optional={wire.DEADLINE: odd, wire.SENDER: odd, "x-other": odd}
)


@pytest.fixture
async def raw(amqp_url: str) -> AsyncIterator[AbstractChannel]:
    connection: AbstractRobustConnection = await aio_pika.connect_robust(amqp_url)
    yield await connection.channel()
    await connection.close()


async def publish(
    channel: AbstractChannel,
    exchange: str,
    key: str,
    messages: list[Published],
    data: st.DataObject,
) -> None:
    target = (
        channel.default_exchange
        if not exchange
        else await channel.get_exchange(exchange, ensure=False)
    )
    for headers, body in messages:
        message_id = data.draw(ids, label="message_id")
        await target.publish(aio_pika.Message(body, headers=headers, message_id=message_id), key)


@pytest.mark.parametrize("encrypted", [False, True], ids=["plain", "encrypted"])
@settings(max_examples=15)
@given(bodies=st.lists(st.binary(max_size=64), min_size=1, max_size=4), data=st.data())
async def test_garbage_in_rabbitmq_queues_is_dropped_and_counted(
    amqp_url: str, raw: AbstractChannel, encrypted: bool, bodies: list[bytes], data: st.DataObject
) -> None:
    options: dict[str, Any] = {
        "url": amqp_url,
        "prefix": f"z{secrets.token_hex(4)}",
        "symmetric_encryption_keys": ["k1-sixteen-bytes-at-least"] if encrypted else None,
    }
    layer, peer = RabbitMQChannelLayer(**options), RabbitMQChannelLayer(**options)
    try:
        local, other, member = [await layer.new_channel() for _ in range(3)]
        await layer.group_add("g", member)
        await layer.group_add("g", "normal")  # declares its queue, bound to the group
        good = layer.codec.encode(msg(0))
        payloads = [*bodies, tampered(good, data, encrypted), foreign()]
        headed = [(data.draw(delivered_headers, label="headers"), b) for b in payloads]
        bad_headers = data.draw(st.lists(inbox_headers(local), min_size=1, max_size=6))
        to_inbox = [({**h, wire.CHANNEL: local}, b) for h, b in headed]
        to_inbox += [(h, data.draw(st.sampled_from(payloads))) for h in bad_headers]
        to_group = [({wire.GROUP: "g"}, b) for b in payloads]
        to_group += [(h, b"") for h in bad_headers]
        await publish(raw, "", layer.inbox.queue_name, to_inbox, data)
        await publish(raw, "", layer.topology.channel_queue("normal"), headed, data)
        await publish(raw, layer.topology.groups, "g", to_group, data)

        survived = await deliveries_go_on(layer, peer, local, other, member)
        assert not encrypted or survived == 0
        stats = layer.stats()
        # Each one counted once, where it was found: the group exchange copies a
        # message to both members' queues.
        broken = len(to_inbox) + len(headed) + 2 * len(to_group)
        assert stats["dropped_undecodable"] + stats["dropped_expired"] + survived == broken
        assert stats["received"] == 5 + survived
    finally:
        for each in (layer, peer):
            await each.flush()
            await each.close()


async def test_a_far_future_deadline_header_does_not_outlive_expiry(
    amqp_url: str, raw: AbstractChannel
) -> None:
    layer = RabbitMQChannelLayer(url=amqp_url, prefix=f"z{secrets.token_hex(4)}", expiry=0.5)
    try:
        local = await layer.new_channel()
        forged = {wire.CHANNEL: local, wire.DEADLINE: int((time.time() + 3600) * 1000)}
        message = aio_pika.Message(layer.codec.encode(msg(0)), headers=forged)
        await raw.default_exchange.publish(message, layer.inbox.queue_name)
        await asyncio.sleep(0.8)  # buffered by the inbox consumer, unread past expiry
        await layer.send(local, msg(1))
        assert (await recv(layer, local))["seq"] == 1
        assert layer.stats()["dropped_expired"] == 1
    finally:
        await layer.flush()
        await layer.close()

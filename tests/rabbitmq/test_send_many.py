"""send_many on RabbitMQ: bundles per inbox, publishes in flight together, each confirm checked."""

from __future__ import annotations

import asyncio
from typing import Any

import aiormq
import pytest

from layers.exceptions import ChannelFull, ChannelLayerConnectionError
from layers.rabbitmq import wire
from layers.rabbitmq.connections import Link, Outcome
from layers.rabbitmq.sending import BUNDLE_BYTES, bundles, unbundle
from tests.helpers import msg, nothing, recv
from tests.rabbitmq.conftest import MakeLayer


async def test_a_batch_is_published_together_and_each_confirm_is_checked(
    rabbit: MakeLayer, monkeypatch: pytest.MonkeyPatch
) -> None:
    receiver = rabbit(channel_capacity={"work": 3})
    sender = rabbit(prefix=receiver.prefix, channel_capacity={"work": 3})
    local = await receiver.new_channel()
    mine = await sender.new_channel()
    in_flight, most = 0, 0
    publish = Link.publish

    async def counted(link: Link, *args: Any, **kwargs: Any) -> Outcome:
        nonlocal in_flight, most
        in_flight += 1
        most = max(most, in_flight)
        try:
            return await publish(link, *args, **kwargs)
        finally:
            in_flight -= 1

    monkeypatch.setattr(Link, "publish", counted)
    items = [(local, msg(i)) for i in range(50)]
    items += [("work", msg(100 + i)) for i in range(4)]  # capacity 3: the 4th is refused
    items.append((mine, msg(200)))  # the sender's own channel: no publish
    results = await sender.send_many(items)
    assert results[:53] == [None] * 53
    assert isinstance(results[53], ChannelFull)
    assert "'work' is at its capacity of 3" in str(results[53])
    assert results[54] is None
    # The 50 items for the receiver's channel are one bundle, then the four for "work"
    # in windows of 2: one after another would never have two in flight.
    assert most == 2
    assert sender.stats()["sent"] == 54
    assert [(await recv(receiver, local))["seq"] for _ in range(50)] == list(range(50))
    assert [(await recv(receiver, "work"))["seq"] for _ in range(3)] == [100, 101, 102]
    assert (await recv(sender, mine))["seq"] == 200
    await nothing(receiver, "work")


async def test_a_lost_link_fails_the_items_it_hit(
    rabbit: MakeLayer, monkeypatch: pytest.MonkeyPatch
) -> None:
    receiver = rabbit()
    sender = rabbit(prefix=receiver.prefix)
    local = await receiver.new_channel()
    await sender.send("lost", msg(0))  # connected, the queue declared
    publish = Link.publish
    calls = 0

    async def failing(link: Link, *args: Any, **kwargs: Any) -> Outcome:
        nonlocal calls
        calls += 1
        if calls > 2:
            await asyncio.sleep(0)
            raise ChannelLayerConnectionError("publishing: the connection is closed")
        return await publish(link, *args, **kwargs)

    monkeypatch.setattr(Link, "publish", failing)
    results = await sender.send_many([("lost", msg(i)) for i in range(1, 6)])
    assert results[:2] == [None, None]
    assert all(isinstance(r, ChannelLayerConnectionError) for r in results[2:])
    # A bundle's items share its one publish, and its error.
    results = await sender.send_many([(local, msg(i)) for i in range(6, 9)])
    assert all(isinstance(r, ChannelLayerConnectionError) for r in results)
    monkeypatch.undo()
    assert [(await recv(receiver, "lost"))["seq"] for _ in range(3)] == [0, 1, 2]
    await nothing(receiver, local)


async def test_items_for_another_process_travel_in_bundles_of_a_hundred(
    rabbit: MakeLayer,
) -> None:
    receiver = rabbit(inbox_capacity=3, capacity=200)
    sender = rabbit(prefix=receiver.prefix)
    first, second = await receiver.new_channel(), await receiver.new_channel()
    await receiver.inbox.stop()  # its inbox fills on the broker, one message per bundle
    items = [(first if i % 2 else second, msg(i)) for i in range(250)]
    assert await sender.send_many(items) == [None] * 250  # 3 messages: within capacity 3
    with pytest.raises(ChannelFull, match="inbox_capacity"):
        await sender.send(first, msg(250))
    await receiver.inbox.ensure()
    odd = [(await recv(receiver, first))["seq"] for _ in range(125)]
    even = [(await recv(receiver, second))["seq"] for _ in range(125)]
    assert (odd, even) == (list(range(1, 250, 2)), list(range(0, 250, 2)))
    assert sender.stats()["sent"] == 250


async def test_an_expired_bundle_counts_each_item_at_its_sender(rabbit: MakeLayer) -> None:
    receiver = rabbit(expiry=0.2)
    sender = rabbit(prefix=receiver.prefix, expiry=0.2)
    channel = await receiver.new_channel()
    await receiver.inbox.stop()  # nobody takes the bundle before it expires
    assert await sender.send_many([(channel, msg(i)) for i in range(5)]) == [None] * 5
    async with asyncio.timeout(5):  # the dead letter travels back to the sender's inbox
        while sender.stats()["dropped_expired"] < 5:
            await asyncio.sleep(0.02)
    await asyncio.sleep(0.1)
    assert sender.stats()["dropped_expired"] == 5


async def test_a_malformed_bundle_is_dropped_and_counted(rabbit: MakeLayer, amqp_url: str) -> None:
    layer = rabbit()
    channel = await layer.new_channel()
    connection = await aiormq.connect(amqp_url)
    try:
        publisher = await connection.channel()
        for headers, body in [
            ({wire.BUNDLE: 2}, b"not msgpack \xc1"),
            ({wire.BUNDLE: 3}, b"\x92\xa1a\xc4\x01x"),  # ["a", b"x"]: one pair, not three
            ({wire.BUNDLE: 1}, b"\x92\xa6nobody\xc4\x01x"),  # not a channel of this layer
        ]:
            await publisher.basic_publish(
                body,
                routing_key=layer.stats()["inbox"],
                properties=aiormq.spec.Basic.Properties(headers=headers),
            )
    finally:
        await connection.close()
    async with asyncio.timeout(5):
        while layer.stats()["dropped_undecodable"] < 3:
            await asyncio.sleep(0.02)
    await nothing(layer, channel)


async def test_a_failed_declare_fails_every_item_not_yet_published(
    rabbit: MakeLayer, monkeypatch: pytest.MonkeyPatch
) -> None:
    receiver = rabbit()
    sender = rabbit(prefix=receiver.prefix)
    local, mine = await receiver.new_channel(), await sender.new_channel()
    await sender.send(local, msg(0))  # connected

    async def down(*_: Any) -> str:
        raise ChannelLayerConnectionError("declaring: the connection is closed")

    monkeypatch.setattr(sender.broker, "declare_channel", down)
    items = [(mine, msg(1)), (local, msg(2)), ("work", msg(3)), (local, msg(4))]
    results = await sender.send_many(items)
    assert results[0] is None  # its own channel: no publish needed
    # The item for local before "work" was waiting for its bundle: not sent, so an error.
    assert all(isinstance(r, ChannelLayerConnectionError) for r in results[1:])
    assert (await recv(receiver, local))["seq"] == 0
    await nothing(receiver, local)


def test_bundles_hold_at_most_a_hundred_items_and_about_a_mebibyte() -> None:
    big, small = b"x" * (BUNDLE_BYTES // 2 + 1), b"y" * 10
    items = [("p.a!1", big)] * 3 + [("p.a!2", small)] * 150

    def headers(**extra: Any) -> dict[str, Any]:
        return extra

    made = bundles(items, list(range(len(items))), "q", headers)
    # Two halves do not fit one mebibyte: each big item alone, sent as itself.
    assert [p.indexes for p in made[:2]] == [[0], [1]]
    assert made[0].headers == {wire.CHANNEL: "p.a!1"}
    assert made[0].body == big
    assert [len(p.indexes) for p in made[2:]] == [100, 51]  # the third big one + 99, then 51
    assert made[3].headers == {wire.BUNDLE: 51}
    assert unbundle(made[3].body, 51) == [items[i] for i in made[3].indexes]
    assert [i for p in made for i in p.indexes] == list(range(len(items)))

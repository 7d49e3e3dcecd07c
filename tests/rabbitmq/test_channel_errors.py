"""The publishing channel, shared by every call of a connection, is not closed needlessly.

A channel error (a 404, an unknown delivery tag) closes the channel under every call
in flight on it, and each reopen costs a round trip and (in aio-pika) some memory that
is never given back: found by the consumer churn test in tests/faults/.
"""

from __future__ import annotations

import pytest
from aiormq.abc import AbstractChannel
from aiormq.exceptions import ChannelNotFoundEntity

from layers.rabbitmq import registry
from tests.rabbitmq.conftest import MakeLayer


async def test_join_leave_join_keeps_the_publishing_channel(rabbit: MakeLayer) -> None:
    layer = rabbit()
    channel = await layer.new_channel()
    link = await layer.links.here()
    await layer.group_add("g", channel)
    before = await link.channel.get_underlay_channel()
    # The discard removes the last binding, and the broker auto-deletes the exchange:
    # the next join must declare it again rather than bind to a missing exchange.
    await layer.group_discard("g", channel)
    await layer.group_add("g", channel)
    after = await link.channel.get_underlay_channel()
    assert after is before, "a channel error closed the channel"
    assert not after.is_closed
    await layer.group_send("g", {"type": "m"})
    assert (await layer.receive(channel))["type"] == "m"


async def test_compaction_whose_channel_closed_before_its_acks_keeps_the_records(
    rabbit: MakeLayer, monkeypatch: pytest.MonkeyPatch
) -> None:
    layer = rabbit()
    channel = await layer.new_channel()
    await layer.group_add("g", channel)
    taken = registry.take

    async def take_then_break_the_channel(
        amqp: AbstractChannel, queue: str, count: int
    ) -> list[object]:
        got = await taken(amqp, queue, count)
        # Another call on the shared channel hits a channel error right after the take.
        with pytest.raises(ChannelNotFoundEntity):
            await amqp.queue_bind(queue, f"{layer.prefix}.no-such-exchange", routing_key="x")
        return got  # type: ignore[return-value]

    monkeypatch.setattr(registry, "take", take_then_break_the_channel)
    # The acks of the taken records must not go to the reopened channel (their tags
    # mean nothing there: "unknown delivery tag", another channel error).
    assert await layer.group_channels("g") == [channel]
    monkeypatch.undo()
    link = await layer.links.here()
    reopened = await link.channel.get_underlay_channel()
    # The records went back to the queue with the closed channel; nothing was lost.
    # The broker answers these calls after any stale ack, so its error would show here.
    assert await layer.group_channels("g") == [channel]
    now = await link.channel.get_underlay_channel()
    assert now is reopened, "a stale ack closed the reopened channel"
    assert not now.is_closed

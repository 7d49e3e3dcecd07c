"""The inbox acks a run of deliveries with one ack (acks.py), and never leaves one unacked."""

from __future__ import annotations

import asyncio
from typing import Any

from aiormq.abc import AbstractChannel

from layers.rabbitmq import RabbitMQChannelLayer
from tests.helpers import msg, recv
from tests.rabbitmq.conftest import MakeLayer


async def _acks_of(layer: RabbitMQChannelLayer) -> list[tuple[int, bool]]:
    """(delivery tag, multiple) of every ack the layer's inbox consumer writes from now on."""
    channel = layer.inbox._channel
    assert channel is not None
    underlay: AbstractChannel = await channel.get_underlay_channel()
    written: list[tuple[int, bool]] = []
    real = underlay.basic_ack

    async def basic_ack(delivery_tag: int, multiple: bool = False, **kw: Any) -> None:
        written.append((delivery_tag, multiple))
        await real(delivery_tag, multiple=multiple, **kw)

    underlay.basic_ack = basic_ack  # type: ignore[method-assign]
    return written


async def test_a_run_of_deliveries_is_acked_in_a_few_acks(rabbit: MakeLayer) -> None:
    receiver = rabbit(prefetch_count=100)
    sender = rabbit(prefix=receiver.prefix)
    channel = await receiver.new_channel()
    written = await _acks_of(receiver)
    for i in range(50):
        await sender.send(channel, msg(i))
    assert [(await recv(receiver, channel))["seq"] for _ in range(50)] == list(range(50))
    await asyncio.sleep(0.2)
    # One ack per message before; now at most one per 25 (a quarter of the prefetch
    # window), or per pause of the sender, and the last covers every delivery.
    assert len(written) <= 10
    assert written[-1] == (50, True)


async def test_a_lone_delivery_is_acked_soon(rabbit: MakeLayer) -> None:
    receiver = rabbit(prefetch_count=100)
    sender = rabbit(prefix=receiver.prefix)
    channel = await receiver.new_channel()
    written = await _acks_of(receiver)
    await sender.send(channel, msg(0))
    assert (await recv(receiver, channel))["seq"] == 0
    await asyncio.sleep(0.2)  # acks wait 5 ms at most
    assert written == [(1, True)]

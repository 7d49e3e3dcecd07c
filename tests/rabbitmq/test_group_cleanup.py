"""Nothing of a group stays on the broker once its last member left."""

from __future__ import annotations

import asyncio

import pytest

from layers.rabbitmq.connections import Link
from tests.helpers import msg, nothing, recv
from tests.rabbitmq.broker import exchange_exists, queue_exists
from tests.rabbitmq.conftest import MakeLayer


async def test_a_group_goes_with_its_last_member(rabbit: MakeLayer, amqp_url: str) -> None:
    first = rabbit()
    second = rabbit(prefix=first.prefix)
    topo = first.topology
    local = await first.new_channel()
    for n in range(10):
        group = f"room{n}"
        await first.group_add(group, local)
        await first.group_add(group, "worker")
        await first.group_discard(group, local)
        await first.group_discard(group, "worker")
        assert not await queue_exists(amqp_url, topo.registry_queue(group)), group
    other = await second.new_channel()
    await first.group_add("shared", local)
    await second.group_add("shared", other)
    await first.group_discard("shared", local)
    assert await queue_exists(amqp_url, topo.registry_queue("shared"))  # other is in it
    await first.group_discard("shared", other)  # a peer's member, discarded from here
    assert not await queue_exists(amqp_url, topo.registry_queue("shared"))
    await first.group_send("shared", msg())
    await nothing(second, other)


async def test_a_group_goes_with_the_layer_of_its_last_member(
    rabbit: MakeLayer, amqp_url: str
) -> None:
    layer = rabbit()
    topo = layer.topology
    await layer.group_add("room", await layer.new_channel())
    await layer.group_add("room", await layer.new_channel())
    await layer.close()
    assert not await queue_exists(amqp_url, topo.registry_queue("room"))
    assert not await exchange_exists(amqp_url, topo.groups)
    assert not await exchange_exists(amqp_url, topo.dead_letters)


async def test_a_group_add_racing_the_clean_up_still_works(
    rabbit: MakeLayer, amqp_url: str
) -> None:
    leaving = rabbit()
    joining = rabbit(prefix=leaving.prefix)
    old, new = await leaving.new_channel(), await joining.new_channel()
    registry = leaving.topology.registry_queue("room")
    for n in range(10):
        await leaving.group_add("room", old)
        await asyncio.gather(leaving.group_discard("room", old), joining.group_add("room", new))
        assert await queue_exists(amqp_url, registry)  # new's record is in it
        await leaving.group_send("room", msg(n))
        assert (await recv(joining, new))["seq"] == n
        # A compaction running meanwhile (group_send starts one) may hold some records
        # for a moment, and a listing may miss them then (registry.py): not for long.
        async with asyncio.timeout(3):
            while await joining.group_channels("room") != [new]:
                await asyncio.sleep(0.05)
        await joining.group_discard("room", new)
        assert not await queue_exists(amqp_url, registry)


async def test_the_first_group_send_leaves_the_fresh_records_alone(
    rabbit: MakeLayer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Compacting rewrites every record, one publish per member: right after the
    # group_adds wrote them it would only compete with the group's deliveries.
    layer = rabbit(group_expiry=1)
    compactions: list[str] = []
    real = layer.memberships.compact

    async def counted(link: Link, group: str, delete_if_empty: bool = False) -> list[str]:
        compactions.append(group)
        return await real(link, group, delete_if_empty)

    monkeypatch.setattr(layer.memberships, "compact", counted)
    channels = [await layer.new_channel() for _ in range(3)]
    for channel in channels:
        await layer.group_add("room", channel)
    await layer.group_send("room", msg(1))
    for channel in channels:
        assert (await recv(layer, channel))["seq"] == 1
    await asyncio.sleep(0.1)
    assert compactions == []
    await asyncio.sleep(0.5)  # past the interval (group_expiry / 2): now it compacts
    await layer.group_send("room", msg(2))
    async with asyncio.timeout(3):
        while compactions != ["room"]:
            await asyncio.sleep(0.02)

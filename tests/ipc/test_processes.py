"""Real processes sharing one region: groups, competing receivers, wake-ups, exits."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from layers.ipc.files import default_directory
from tests.helpers import msg, recv
from tests.ipc.conftest import Child


async def test_group_with_members_in_three_processes(
    open_layer: Any, region_name: str, children: list[Child]
) -> None:
    layer = open_layer()
    mine = await layer.new_channel()
    await layer.group_add("room", mine)
    children += [Child("member", region_name, "room") for _ in range(2)]
    theirs = [(await child.line()).split()[1] for child in children]
    assert sorted(await layer.group_channels("room")) == sorted([mine, *theirs])
    await layer.group_send("room", msg(42))
    assert (await recv(layer, mine))["seq"] == 42
    for child in children:
        assert json.loads(await child.line()) == msg(42)
        assert await child.wait() == 0
    # A clean exit takes the member's local channel out of the group.
    assert await layer.group_channels("room") == [mine]


async def test_competing_receivers_in_two_processes_get_each_message_once(
    open_layer: Any, region_name: str, children: list[Child]
) -> None:
    layer = open_layer(capacity=1000)
    children += [Child("compete", region_name, "jobs") for _ in range(2)]
    for child in children:
        assert await child.line() == "ready"
    for i in range(300):
        await layer.send("jobs", msg(i))
    for _ in children:
        await layer.send("jobs", {"type": "stop"})  # each child stops at its first
    got: list[int] = []
    for child in children:
        assert await child.wait() == 0
        got += [int(line) for line in await child.lines()]
    assert sorted(got) == list(range(300))


async def test_a_waiting_receiver_is_woken_by_a_send_from_another_process(
    open_layer: Any, region_name: str, children: list[Child]
) -> None:
    layer = open_layer()
    local = await layer.new_channel()
    for channel in ("wake", local):
        # No timer or polling runs while it waits: only the datagram can wake it.
        waiting = asyncio.ensure_future(recv(layer, channel, timeout=10))
        await asyncio.sleep(0.05)
        child = Child("send_and_exit", region_name, channel)
        children.append(child)
        assert (await waiting)["type"] == "from.child"
        assert await child.wait() == 0


async def test_a_process_exiting_never_destroys_the_region(
    open_layer: Any, region_name: str, children: list[Child]
) -> None:
    layer = open_layer()
    for round_ in range(3):
        # The child maps the region and exits without closing the layer: with
        # multiprocessing.shared_memory its resource tracker would unlink it now.
        child = Child("send_and_exit", region_name, "left")
        children.append(child)
        assert await child.wait() == 0
        assert default_directory(region_name).is_dir()
        assert (await recv(layer, "left"))["type"] == "from.child"
        await layer.send("still", msg(round_))
        assert (await recv(layer, "still"))["seq"] == round_


async def test_no_leftovers_in_dev_shm_after_a_clean_run(
    open_layer: Any, region_name: str, children: list[Child]
) -> None:
    layer = open_layer()
    children += [Child("member", region_name, "g") for _ in range(2)]
    for child in children:
        await child.line()
    assert default_directory(region_name).is_dir()
    await layer.group_send("g", msg())
    for child in children:
        assert await child.wait() == 0
    await layer.close()
    assert not default_directory(region_name).exists()

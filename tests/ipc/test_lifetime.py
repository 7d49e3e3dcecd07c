"""The region outlives its users while it holds something a later user could receive."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import pytest

from layers.ipc import IPCChannelLayer, region
from layers.ipc.files import default_directory
from layers.ipc.region import MIN_SIZE
from tests.helpers import msg, nothing, recv
from tests.ipc.conftest import Child


async def _run(children: list[Child], region_name: str, *steps: str) -> list[str]:
    """Run a child through steps to a clean exit; the lines it printed."""
    child = Child("steps", region_name, *steps)
    children.append(child)
    assert await child.wait() == 0
    return await child.lines()


async def test_a_message_from_a_process_that_closed_reaches_a_later_process(
    region_name: str, children: list[Child]
) -> None:
    assert await _run(children, region_name, "send:jobs:7") == ["done"]
    assert default_directory(region_name).is_dir()  # the sender was the last user
    got = await _run(children, region_name, "receive:jobs")
    assert [json.loads(got[0]), got[1]] == [msg(7), "done"]
    # The receiver, the last user again, left nothing behind: the region went.
    assert not default_directory(region_name).exists()


async def test_a_message_from_a_process_that_never_closed_reaches_a_later_one(
    open_layer: Any, region_name: str, children: list[Child]
) -> None:
    child = Child("send_and_exit", region_name, "left")
    children.append(child)
    assert await child.wait() == 0
    layer = open_layer()
    assert (await recv(layer, "left"))["type"] == "from.child"
    assert layer.stats()["region_recovered"] == 1


async def test_membership_added_by_an_exited_process_is_used_by_a_later_group_send(
    open_layer: Any, region_name: str, children: list[Child]
) -> None:
    await _run(children, region_name, "group_add:room:a", "group_add:room:b")
    await _run(children, region_name, "group_send:room:5")
    layer = open_layer()
    assert sorted(await layer.group_channels("room")) == ["a", "b"]
    assert (await recv(layer, "a"))["seq"] == 5
    assert (await recv(layer, "b"))["seq"] == 5


async def test_after_kill_9_of_every_user_the_committed_state_is_kept(
    open_layer: Any, region_name: str, children: list[Child]
) -> None:
    first = Child("steps", region_name, "send:jobs:1", "group_add:room:a", "local:room", "hold")
    children.append(first)
    assert (await first.line()).startswith("local ")
    assert await first.line() == "holding"
    second = Child("steps", region_name, "send:jobs:2", "local:room", "hold")
    children.append(second)
    assert (await second.line()).startswith("local ")
    assert await second.line() == "holding"
    for child in children:
        child.kill()
        await child.wait()
    layer = open_layer()
    # Normal channels and groups survive; the dead processes' local channels do not.
    assert [(await recv(layer, "jobs"))["seq"] for _ in range(2)] == [1, 2]
    assert await layer.group_channels("room") == ["a"]
    stats = layer.stats()
    assert (stats["region_recovered"], stats["region_users"]) == (2, 1)
    assert stats["dropped_dead_owner"] == 2  # one message queued for each local channel
    assert stats["region_queued"] == 0
    await layer.group_send("room", msg(3))
    assert (await recv(layer, "a"))["seq"] == 3


async def test_an_empty_region_is_removed_at_last_close(
    region_name: str, children: list[Child]
) -> None:
    first = IPCChannelLayer(name=region_name)
    second = IPCChannelLayer(name=region_name)
    await first.send("c", msg(1))
    await first.group_add("g", "c")
    await first.close()
    assert default_directory(region_name).is_dir()
    assert (await recv(second, "c"))["seq"] == 1
    await second.group_discard("g", "c")
    await second.close()
    assert not default_directory(region_name).exists()


async def test_the_last_user_keeps_a_region_with_a_group_member(region_name: str) -> None:
    layer = IPCChannelLayer(name=region_name)
    await layer.group_add("g", "member")
    await layer.close()
    assert default_directory(region_name).is_dir()
    later = IPCChannelLayer(name=region_name)
    assert await later.group_channels("g") == ["member"]
    await later.flush()
    await later.close()
    assert not default_directory(region_name).exists()


async def test_the_last_user_drops_its_own_local_messages_and_removes_the_region(
    region_name: str,
) -> None:
    layer = IPCChannelLayer(name=region_name)
    # Named by hand, not by new_channel(), so that no reader takes the message first.
    channel = f"specific.{layer.client_id}!a"
    await layer.group_add("g", channel)
    await layer.send(channel, msg())
    assert layer.stats()["region_queued"] == 1
    await layer.close()
    assert not default_directory(region_name).exists()
    assert layer.stats()["dropped_dead_owner"] == 1


async def test_expired_messages_do_not_keep_a_region(region_name: str) -> None:
    layer = IPCChannelLayer(name=region_name, expiry=0.05)
    await layer.send("c", msg())
    await asyncio.sleep(0.1)
    await layer.close()
    assert not default_directory(region_name).exists()
    assert layer.stats()["dropped_expired"] == 1


async def test_expired_messages_in_a_kept_region_are_dropped_and_counted_on_read(
    open_layer: Any, region_name: str
) -> None:
    sender = IPCChannelLayer(name=region_name, expiry=0.2)
    await sender.send("old", msg(1))
    await sender.send("new", msg(2))
    await sender.close()
    await asyncio.sleep(0.25)
    layer = open_layer()
    await layer.send("new", msg(3))
    assert (await recv(layer, "new"))["seq"] == 3
    await nothing(layer, "old")
    assert layer.stats()["dropped_expired"] == 2


async def test_a_send_to_a_closed_layers_local_channel_is_dropped_and_counted(
    open_layer: Any,
) -> None:
    stays, leaves = open_layer(), open_layer()
    channel = await leaves.new_channel()
    await leaves.close()
    await stays.send(channel, msg())  # no error: the message is dropped, and counted
    await stays.group_add("g", channel)
    await stays.group_add("g", "normal")
    await stays.group_send("g", msg())
    stats = stays.stats()
    assert stats["dropped_dead_owner"] == 2
    assert (stats["region_queued"], stats["dropped_full"]) == (1, 0)
    assert (await recv(stays, "normal"))["type"] == "test.message"


async def test_an_unreadable_region_starts_afresh_with_a_warning(
    open_layer: Any, region_name: str, caplog: pytest.LogCaptureFixture
) -> None:
    where = default_directory(region_name)
    where.mkdir(mode=0o700)
    (where / "region").write_bytes(b"NOTOURS!" + bytes(MIN_SIZE - 8))
    (where / "region").chmod(0o600)
    with caplog.at_level(logging.WARNING, logger="layers.ipc"):
        layer = open_layer()
    assert "made by another version" in caplog.text
    await layer.send("c", msg(1))
    assert (await recv(layer, "c"))["seq"] == 1


async def test_a_region_from_an_earlier_boot_starts_afresh(
    open_layer: Any,
    region_name: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    before = IPCChannelLayer(name=region_name)
    await before.send("c", msg(1))
    await before.close()
    # Its deadlines are time.monotonic() of a boot that is over: none can be trusted.
    monkeypatch.setattr(region, "_boot_id", lambda: "a-later-boot")
    with caplog.at_level(logging.WARNING, logger="layers.ipc"):
        layer = open_layer()
    assert "from an earlier boot" in caplog.text
    assert layer.stats()["region_queued"] == 0

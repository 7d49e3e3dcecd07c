"""One process: options, URLs, a full region, stats, sharing by name."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import sys
from pathlib import Path
from typing import Any

import pytest

from layers.config import layer_from_url
from layers.exceptions import (
    BackendNotAvailable,
    ChannelFull,
    ChannelLayerError,
    ConfigError,
    InvalidChannelName,
)
from layers.ipc import IPCChannelLayer
from layers.ipc.files import default_directory
from layers.ipc.region import DEFAULT_SIZE, MIN_SIZE
from tests.helpers import msg, nothing, recv


async def test_layers_with_one_name_share_whatever_their_prefix(open_layer: Any) -> None:
    first = open_layer(prefix="one")
    second = open_layer(prefix="two")
    await first.send("shared", msg(1))
    assert (await recv(second, "shared"))["seq"] == 1
    assert first.stats()["region_users"] == 2


async def test_the_name_defaults_to_the_prefix(region_name: str) -> None:
    layer = IPCChannelLayer(prefix=region_name)
    try:
        assert layer.stats()["region_path"] == str(default_directory(region_name))
    finally:
        await layer.close()


async def test_a_path_places_the_region(tmp_path: Path) -> None:
    where = tmp_path / "region"
    async with IPCChannelLayer(path=where) as layer:
        await layer.send("c", msg(1))
        assert (where / "region").is_file()
        assert (await recv(layer, "c"))["seq"] == 1
    assert not where.exists()


async def test_ipc_urls(region_name: str, tmp_path: Path) -> None:
    layer = layer_from_url(f"ipc://{region_name}?capacity=7")
    assert isinstance(layer, IPCChannelLayer)
    assert layer.capacity == 7
    assert layer.stats()["region_path"] == str(default_directory(region_name))
    await layer.close()
    by_path = layer_from_url(f"ipc://{tmp_path}/r")
    assert by_path.stats()["region_path"] == f"{tmp_path}/r"
    await by_path.close()
    with pytest.raises(ConfigError, match="needs a region name"):
        layer_from_url("ipc://")


@pytest.mark.parametrize(
    ("options", "error", "text"),
    [
        ({"name": "x", "path": "/tmp/x"}, ConfigError, "a name or a path, not both"),
        ({"name": "a/b"}, InvalidChannelName, "name"),
        ({"path": 3}, ConfigError, "path must be a directory path"),
        ({"size": 1000}, ConfigError, f"size must be a whole number of at least {MIN_SIZE}"),
        ({"size": True}, ConfigError, "size must be a whole number"),
    ],
)
def test_bad_options_are_named(options: dict[str, Any], error: type[Exception], text: str) -> None:
    with pytest.raises(error, match=text):
        IPCChannelLayer(**options)


async def test_the_size_given_at_creation_wins(
    open_layer: Any, caplog: pytest.LogCaptureFixture
) -> None:
    first = open_layer(size=MIN_SIZE)
    with caplog.at_level(logging.WARNING, logger="layers.ipc"):
        second = open_layer()
        third = open_layer(size=MIN_SIZE)
    assert first.stats()["region_bytes"] == second.stats()["region_bytes"] == MIN_SIZE
    assert third.stats()["region_bytes"] == MIN_SIZE
    assert DEFAULT_SIZE > MIN_SIZE
    # Not silently: the ignored size is named, once (the matching one says nothing).
    warned = [r.getMessage() for r in caplog.records]
    assert len(warned) == 1, warned
    assert f"size={DEFAULT_SIZE} is ignored" in warned[0]


async def test_a_full_region_says_so_and_recovers(open_layer: Any) -> None:
    layer = open_layer(size=MIN_SIZE, capacity=1000)
    big = msg(body="x" * 20_000)
    sent = 0
    error: ChannelFull | None = None
    while error is None:
        try:
            await layer.send(f"c{sent}", big)  # each channel holds one: none is full
            sent += 1
        except ChannelFull as exc:
            error = exc
    assert sent > 0
    assert "shared IPC region" in str(error)
    assert "is full" in str(error)
    assert "no channel is at its capacity" in str(error)
    # Nothing was corrupted: every message is intact, and the space comes back.
    assert await recv(layer, "c0") == big
    await layer.send("again", big)
    for i in range(1, sent):
        assert await recv(layer, f"c{i}") == big
    assert await recv(layer, "again") == big
    assert layer.stats()["region_heap_used"] == 0


async def test_group_send_to_a_full_region_drops_and_counts(open_layer: Any) -> None:
    layer = open_layer(size=MIN_SIZE, capacity=1000)
    channel = await layer.new_channel()
    await layer.group_add("g", channel)
    big = msg(body="y" * 50_000)
    for _ in range(2):
        await layer.group_send("g", big)
    await layer.group_send("g", big)  # never raises, even with the region full
    assert layer.stats()["dropped_full"] == 1
    assert await recv(layer, channel) == big
    assert await recv(layer, channel) == big
    await nothing(layer, channel)


async def test_stats_report_the_fill_level(open_layer: Any) -> None:
    layer = open_layer()
    await layer.send("c", msg(body="z" * 1000))
    stats = layer.stats()
    assert stats["region_queued"] == 1
    assert stats["region_heap_used"] >= 1000
    assert 0 < stats["region_fill"] < 1
    assert 0 < stats["region_index_fill"] < 1
    assert (stats["region_channels"], stats["region_users"]) == (1, 1)
    await recv(layer, "c")
    assert layer.stats()["region_heap_used"] == 0


async def test_a_local_channel_of_another_layer_cannot_be_received(open_layer: Any) -> None:
    owner, other = open_layer(), open_layer()
    channel = await owner.new_channel()
    with pytest.raises(InvalidChannelName, match="belongs to another process"):
        await other.receive(channel)


async def test_closing_drops_the_closers_local_channels(open_layer: Any) -> None:
    stays, leaves = open_layer(), open_layer()
    channel = await leaves.new_channel()
    await leaves.group_add("g", channel)
    await stays.send(channel, msg())
    await leaves.close()
    assert await stays.group_channels("g") == []
    assert stays.stats()["region_queued"] == 0


async def test_a_full_index_refuses_sends_and_group_send_counts_the_drops(
    open_layer: Any,
) -> None:
    layer = open_layer(size=MIN_SIZE)
    for i in range(20):
        await layer.group_add("g", f"member.{i}")
    sent = 0
    full: ChannelFull | None = None
    while full is None:  # each channel with a message takes a little of the index
        try:
            await layer.send(f"p.{sent:06d}.{'x' * 80}", msg())
            sent += 1
        except ChannelFull as exc:
            full = exc
    assert sent > 100
    assert "its index needs" in str(full)
    await layer.group_send("g", msg())  # never raises ChannelFull
    assert layer.stats()["dropped_full"] == 20
    await layer.flush()  # and the layer is usable again
    await layer.send("new.channel", msg(5))
    assert (await recv(layer, "new.channel"))["seq"] == 5


async def test_a_full_heap_refuses_group_add(open_layer: Any) -> None:
    layer = open_layer(size=MIN_SIZE, capacity=100_000)
    for size in (30_000, 3_000, 300, 1):  # fill the heap down to its last crumbs
        with contextlib.suppress(ChannelFull):
            while True:
                await layer.send(f"fill.{size}", msg(body="x" * size))
    with pytest.raises(ChannelFull, match="region .* is full.*no room for group 'g'"):
        await layer.group_add("g", "x" * 90)


async def test_a_layer_dropped_without_close_does_not_keep_the_region(region_name: str) -> None:
    kept = IPCChannelLayer(name=region_name)
    dropped = IPCChannelLayer(name=region_name)
    await dropped.send("c", msg())
    assert kept.stats()["region_users"] == 2
    del dropped
    gc.collect()
    assert (await recv(kept, "c"))["seq"] == 0
    await kept.close()  # now the last user, of an empty region: it goes (region_name checks)


async def test_receiving_a_local_message_frees_capacity_for_other_senders(
    open_layer: Any,
) -> None:
    owner, sender = open_layer(capacity=2), open_layer(capacity=2)
    channel = await owner.new_channel()
    await sender.send(channel, msg(1))
    await sender.send(channel, msg(2))
    with pytest.raises(ChannelFull, match="capacity of 2"):
        await sender.send(channel, msg(3))  # buffered in the owner, still counted
    await asyncio.sleep(0.05)  # the owner's reader buffers both and goes idle
    assert (await recv(owner, channel))["seq"] == 1
    for _ in range(200):  # the owner releases the count soon after, in a batch
        try:
            await sender.send(channel, msg(3))
            break
        except ChannelFull:
            await asyncio.sleep(0.01)
    assert [(await recv(owner, channel))["seq"] for _ in range(2)] == [2, 3]


def test_needs_linux(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "platform", "darwin")
    with pytest.raises(BackendNotAvailable, match="needs Linux, not darwin"):
        IPCChannelLayer(name="never-made")


async def test_a_forked_child_cannot_use_its_parents_layer(open_layer: Any) -> None:
    layer = open_layer()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report what using the inherited layer does, and vanish
        try:
            asyncio.run(layer.send("c", msg()))
            outcome = b"sent"
        except ChannelLayerError as exc:
            outcome = str(exc).encode()
        os.write(write, outcome)
        os._exit(0)
    os.close(write)
    await asyncio.to_thread(os.waitpid, pid, 0)
    with os.fdopen(read, "rb") as pipe:
        assert pipe.read().startswith(b"an IPCChannelLayer cannot be used across fork()")
    await layer.send("c", msg(1))  # the parent's layer is unharmed
    assert (await recv(layer, "c"))["seq"] == 1


async def test_group_messages_are_capped_by_the_receiving_layer_and_counted_nowhere(
    open_layer: Any,
) -> None:
    # Issue 14: a local channel holds its capacity of direct messages plus its capacity
    # of group ones; group ones are dropped and counted by the owner, never refused.
    owner, other = open_layer(capacity=2), open_layer(capacity=2)
    channel = await owner.new_channel()
    await other.group_add("g", channel)
    for i in range(3):
        await other.group_send("g", msg(i))
    async with asyncio.timeout(5):
        while owner.stats()["dropped_full"] < 1:
            await asyncio.sleep(0.01)
    assert (owner.stats()["dropped_full"], other.stats()["dropped_full"]) == (1, 0)
    await other.send(channel, msg(10))
    await other.send(channel, msg(11))
    with pytest.raises(ChannelFull):
        await other.send(channel, msg(12))
    assert [(await recv(owner, channel))["seq"] for _ in range(4)] == [0, 1, 10, 11]
    await nothing(owner, channel)
    await other.send(channel, msg(13))  # every direct count was released
    assert (await recv(owner, channel))["seq"] == 13

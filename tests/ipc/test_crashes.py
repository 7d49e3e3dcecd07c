"""kill -9 at any instant: no deadlock, no torn or duplicated message, nothing left over."""

from __future__ import annotations

import asyncio
import random
import signal
from pathlib import Path
from typing import Any

import pytest

from layers.ipc import IPCChannelLayer
from tests.helpers import msg, nothing, recv
from tests.ipc.child import body
from tests.ipc.conftest import Child

KILLS = 30  # by the test, at random instants
# By the child itself, right after a random heap write of a send, before its commit: a
# kill inside a write on every run, where random instants land there only by chance.
KILLS_MID_WRITE = 3
MARKER = {"type": "test.marker"}
SIZE = 20_000
REGION = 64 * 1024 * 1024  # a heap of about 48 MiB
# Sends per child: each puts three copies of about SIZE bytes in the heap (two normal
# channels and this process's inbox), so 600 fill at most about 36 MiB of it. A full
# region would make group_send skip a member: a counted drop, not a loss, but a gap.
LIMIT = 600


async def _drain(layer: IPCChannelLayer, channel: str) -> list[dict[str, Any]]:
    """Everything before the marker the test sent after the kill (FIFO: no guessing how
    long a dead writer's last message may take to show)."""
    got = []
    while (message := await recv(layer, channel, timeout=10))["type"] != MARKER["type"]:
        got.append(message)
    return got


@pytest.mark.timeout(120)  # about 0.3 s a run, several times that under load
async def test_kill_9_in_the_middle_of_sends_many_times(
    open_layer: Any, region_name: str, children: list[Child], tmp_path: Path
) -> None:
    layer = open_layer(capacity=100_000, size=REGION)
    member = await layer.new_channel()
    await layer.group_add("crashers", member)
    await layer.group_add("crashers", "crash.group")
    heap_used = layer.stats()["region_heap_used"]  # the group's members
    phase = tmp_path / "phase"
    rng = random.Random(1234)
    mid_write = [False] * KILLS + [True] * KILLS_MID_WRITE
    rng.shuffle(mid_write)
    for run, inside_a_write in enumerate(mid_write):
        phase.write_bytes(b"\0")
        # Each send writes three times (two channels and this process's inbox): the
        # child gets to write LIMIT, whatever its sends' order, long before its limit.
        die_at = rng.randrange(LIMIT) if inside_a_write else -1
        child = Child(
            "spam",
            region_name,
            *map(str, (run, SIZE, phase, LIMIT, die_at)),
            capacity=100_000,
        )
        children.append(child)
        assert await child.line() == "ready"
        if not inside_a_write:
            await asyncio.sleep(rng.uniform(0, 0.03))
            child.kill()
        assert await child.wait() == -signal.SIGKILL
        if inside_a_write:
            assert phase.read_bytes() == b"\1", f"run {run}: not killed inside a write"
        await layer.send("crash", MARKER)
        await layer.group_send("crashers", MARKER)
        for channel in ("crash", "crash.group", member):
            got = await _drain(layer, channel)
            for message in got:
                assert message["run"] == run
                assert message["body"] == body(run, message["seq"], SIZE), "a torn message"
            # Every committed send is there once, in order; the one cut short is not.
            seqs = [m["seq"] for m in got]
            assert seqs == list(range(len(got))), f"run {run}, channel {channel!r}"
    # The survivor goes on, and no dead writer's half-written space stayed taken.
    await layer.send("after", msg(1))
    assert (await recv(layer, "after"))["seq"] == 1
    stats = layer.stats()
    assert (stats["region_queued"], stats["region_heap_used"]) == (0, heap_used)


async def test_a_writer_killed_holding_the_lock_leaves_nothing_visible(
    open_layer: Any, region_name: str, children: list[Child]
) -> None:
    layer = open_layer()
    await layer.send("torn", msg(1))
    child = Child("die_holding_the_lock", region_name, "torn")
    children.append(child)
    assert await child.line() == "holding"
    await child.wait()
    # The kernel released its lock, so this does not hang; the child's node, written
    # and linked after ours but never committed, is invisible.
    assert (await recv(layer, "torn"))["seq"] == 1
    await nothing(layer, "torn")
    await layer.send("torn", msg(2))
    assert (await recv(layer, "torn"))["seq"] == 2
    assert layer.stats()["region_heap_used"] == 0


@pytest.mark.parametrize("local", [False, True], ids=["normal", "local"])
async def test_a_sender_killed_as_it_wakes_the_receiver_strands_no_waiter(
    open_layer: Any, region_name: str, children: list[Child], local: bool
) -> None:
    layer = open_layer()
    channel = await layer.new_channel() if local else "woken"
    waiting = asyncio.create_task(recv(layer, channel))
    await asyncio.sleep(0.1)  # it found nothing and left its watch
    child = Child("die_waking", region_name, channel)
    children.append(child)
    assert await child.line() == "ready"
    await child.wait()
    # The child died waking us: its send must not have used up our watch unseen, or
    # this one, which finds no watch left to wake, would leave the receiver asleep.
    await layer.send(channel, msg(2))
    # The child wakes before it commits, so its message never was.
    assert (await waiting)["seq"] == 2
    await nothing(layer, channel)


async def test_a_stale_region_is_recovered_on_the_next_open(
    open_layer: Any, region_name: str, children: list[Child]
) -> None:
    child = Child("hold_channel", region_name, "g")
    children.append(child)
    assert (await child.line()).startswith("ready")
    child.kill()  # the only user dies: the region is stale
    await child.wait()
    layer = open_layer()
    stats = layer.stats()
    assert (stats["region_recovered"], stats["region_users"], stats["region_queued"]) == (1, 1, 0)
    assert await layer.group_channels("g") == []
    await layer.send("fresh", msg(3))
    assert (await recv(layer, "fresh"))["seq"] == 3


async def test_survivors_reap_a_dead_participant(
    open_layer: Any, region_name: str, children: list[Child]
) -> None:
    layer = open_layer(expiry=0.2)  # sweeps (and looks for the dead) every 0.1 s
    child = Child("hold_channel", region_name, "g", expiry=0.2)
    children.append(child)
    channel = (await child.line()).split()[1]
    assert await layer.group_channels("g") == [channel]
    assert layer.stats()["region_users"] == 2
    child.kill()
    await child.wait()
    await asyncio.sleep(0.15)
    await layer.group_send("g", msg())  # any operation sweeps when it is due
    stats = layer.stats()
    assert await layer.group_channels("g") == []
    assert (stats["region_users"], stats["region_queued"]) == (1, 0)


async def test_a_dead_participants_wake_up_socket_goes_with_it(
    open_layer: Any, region_name: str, children: list[Child]
) -> None:
    layer = open_layer(expiry=0.2)
    wake = Path(layer.stats()["region_path"]) / "wake"
    child = Child("hold_channel", region_name, "g", expiry=0.2)
    children.append(child)
    await child.line()
    for _ in range(100):  # its inbox reader binds its socket as it starts waiting
        if await asyncio.to_thread(lambda: list(wake.iterdir())):
            break
        await asyncio.sleep(0.02)
    (socket,) = await asyncio.to_thread(lambda: list(wake.iterdir()))
    child.kill()
    await child.wait()
    assert socket.exists()  # a crash leaves it, unlike an abstract name
    await asyncio.sleep(0.15)
    await layer.group_send("g", msg())  # the sweep finds the child dead
    assert not await asyncio.to_thread(socket.exists)

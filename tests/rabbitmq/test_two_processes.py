"""A group with members in two real processes: the broker copies one publish to both."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

from layers.rabbitmq.topology import client_of
from tests.helpers import msg, recv
from tests.rabbitmq.broker import delete_queue
from tests.rabbitmq.conftest import MakeLayer

ROOT = Path(__file__).resolve().parents[2]


async def _line(process: asyncio.subprocess.Process) -> dict[str, object]:
    assert process.stdout is not None
    async with asyncio.timeout(20):
        raw = await process.stdout.readline()
    assert raw, "the member process ended early"
    return json.loads(raw)  # type: ignore[no-any-return]


async def _member(amqp_url: str, prefix: str, *extra: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.rabbitmq.member_process",
        amqp_url,
        prefix,
        "room",
        *extra,
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
    )


async def test_group_members_in_two_processes(rabbit: MakeLayer, amqp_url: str) -> None:
    here = rabbit()
    process = await _member(amqp_url, here.prefix)
    try:
        theirs = str((await _line(process))["channel"])
        mine = await here.new_channel()
        await here.group_add("room", mine)
        assert sorted(await here.group_channels("room")) == sorted([mine, theirs])
        await here.group_send("room", msg(7))
        assert (await recv(here, mine))["seq"] == 7
        assert await _line(process) == {"got": 7}
        async with asyncio.timeout(20):
            assert await process.wait() == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    # The other process has left (and discarded its membership on the way out).
    assert await here.group_channels("room") == [mine]
    await here.send(theirs, msg(8))
    assert here.stats()["dropped_unroutable"] == 1


async def test_messages_for_a_killed_process_come_back_to_the_sender_as_expired(
    rabbit: MakeLayer, amqp_url: str
) -> None:
    # kill -9: no close(), so its inbox lingers (x-expires) and stays bound. What is
    # sent to it meanwhile expires there and is dead-lettered back to the sender, which
    # counts it: never acknowledged as delivered and then lost without a trace.
    here = rabbit(expiry=0.3)
    process = await _member(amqp_url, here.prefix, "0.3")
    try:
        theirs = str((await _line(process))["channel"])
    finally:
        process.kill()
        await process.wait()
    await here.send(theirs, msg(1))
    await here.group_send("room", msg(2))
    async with asyncio.timeout(10):
        while here.stats()["dropped_expired"] < 2:
            await asyncio.sleep(0.05)
    assert here.stats()["dropped_unroutable"] == 0
    await delete_queue(amqp_url, here.topology.inbox_queue(client_of(theirs)))

"""A group with members in two real processes: the broker copies one publish to both."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

from tests.helpers import msg, recv
from tests.rabbitmq.conftest import MakeLayer

ROOT = Path(__file__).resolve().parents[2]


async def _line(process: asyncio.subprocess.Process) -> dict[str, object]:
    assert process.stdout is not None
    async with asyncio.timeout(20):
        raw = await process.stdout.readline()
    assert raw, "the member process ended early"
    return json.loads(raw)  # type: ignore[no-any-return]


async def test_group_members_in_two_processes(rabbit: MakeLayer, amqp_url: str) -> None:
    here = rabbit()
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.rabbitmq.member_process",
        amqp_url,
        here.prefix,
        "room",
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
    )
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

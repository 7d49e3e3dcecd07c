"""A process that counts and dies: python -m tests.redis.counting_process OPTIONS_JSON.

Two layers on the options' servers and prefix send, send_many, group_send and
group_send_many (see test_figures.py for what that adds up to), then the process kills
itself with SIGKILL: it never closes, so nothing of its own adds counts afterwards,
and only what the scripts counted in Redis remains.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
from typing import Any

from layers.exceptions import ChannelFull
from layers.redis import RedisChannelLayer


def _msg(i: int) -> dict[str, Any]:
    return {"type": "test.message", "seq": i}


async def main(options: dict[str, Any]) -> None:
    brief = RedisChannelLayer(**options, expiry=1)
    layer = RedisChannelLayer(**options, capacity=2)
    await brief.send("old", _msg(0))
    await asyncio.sleep(1.2)
    # A send drops expired heads only when they leave no room: with a capacity of 1,
    # this one drops the expired message (and counts it).
    await RedisChannelLayer(**options, capacity=1).send("old", _msg(1))
    for i in range(3):
        # The third finds "jobs" full: its caller gets the error, so it is no drop.
        with contextlib.suppress(ChannelFull):
            await layer.send("jobs", _msg(i))
    assert await layer.send_many([("many", _msg(0)), ("many", _msg(1))]) == [None, None]
    # Two members in the inbox of a process that is not there: handed over, not seen.
    for member in ("jobs", "other", "specific.ghost!a", "specific.ghost!b"):
        await layer.group_add("room", member)
    await layer.group_send("room", _msg(5))
    assert await layer.group_send_many([("room", _msg(6))]) == [None]
    print("done", flush=True)
    os.kill(os.getpid(), signal.SIGKILL)


if __name__ == "__main__":
    asyncio.run(main(json.loads(sys.argv[1])))

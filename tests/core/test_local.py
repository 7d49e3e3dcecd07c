"""layers/local.py: the per-process buffers every backend delivers into."""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor

from layers.local import Counters, LocalChannels


async def test_a_waiter_woken_in_another_loop_keeps_its_message_from_drain_unwatched() -> None:
    # A fetcher in another loop hands a message to this loop's waiter, then gives
    # back what nobody watches: the message woken for must not be given back.
    local = LocalChannels(Counters())
    getter = asyncio.ensure_future(local.get("c"))
    await asyncio.sleep(0)
    assert local.waiting("c") == 1

    def fetcher_in_another_loop() -> list[tuple[float, bytes]]:
        assert local.put("c", b"m", time.monotonic() + 60, 10)
        return local.drain_unwatched("c")

    # Run while this loop is blocked, so the wake-up it was sent has not run yet.
    with ThreadPoolExecutor(1) as pool:
        drained = pool.submit(fetcher_in_another_loop).result(5)
    assert drained == []
    async with asyncio.timeout(5):
        assert await getter == b"m"
    assert local.drain_unwatched("c") == []


async def test_drain_unwatched_takes_what_no_live_waiter_will_take() -> None:
    local = LocalChannels(Counters())
    deadline = time.monotonic() + 60
    assert local.put("c", b"m", deadline, 10)
    assert local.drain_unwatched("c") == [(deadline, b"m")]

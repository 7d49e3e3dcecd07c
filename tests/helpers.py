"""Small helpers for tests that wait on layers without ever hanging."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from layers.base import ChannelLayer

WAIT = 5.0


async def recv(layer: ChannelLayer, channel: str, timeout: float = WAIT) -> dict[str, Any]:
    """Receive one message or fail the test after timeout seconds."""
    async with asyncio.timeout(timeout):
        return await layer.receive(channel)


async def nothing(layer: ChannelLayer, channel: str, wait: float = 0.15) -> None:
    """Assert that no message arrives on channel within wait seconds."""
    task = asyncio.ensure_future(layer.receive(channel))
    done, _ = await asyncio.wait([task], timeout=wait)
    if done:
        raise AssertionError(f"expected nothing on {channel!r}, got {task.result()!r}")
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def msg(i: int = 0, **extra: Any) -> dict[str, Any]:
    """A small test message numbered i."""
    return {"type": "test.message", "seq": i, **extra}

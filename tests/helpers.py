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


CROSS_PROCESS_BACKENDS = ["redis", "ipc", "rabbitmq"]
"""Backends whose layers in separate OS processes share channels and groups."""


def with_prefix(url: str, prefix: str) -> str:
    """url with a prefix query option added."""
    return f"{url}{'&' if '?' in url else '?'}prefix={prefix}"


def cross_process_config(request: Any, backend: str, prefix: str) -> tuple[dict[str, Any], str]:
    """(a CHANNEL_LAYERS entry, the URL of the same layer) on backend's test server.

    request is the pytest fixture request: the server fixture is only asked for when
    the backend needs it.
    """
    if backend == "ipc":
        config: dict[str, Any] = {"name": prefix, "prefix": prefix}
        return {"BACKEND": "layers.ipc.IPCChannelLayer", "CONFIG": config}, (
            f"ipc://{prefix}?prefix={prefix}"
        )
    if backend == "redis":
        server: str = request.getfixturevalue("redis_url")
        config = {"hosts": [server], "prefix": prefix}
        path = "layers.redis.RedisChannelLayer"
    else:
        server = request.getfixturevalue("amqp_url")
        config = {"url": server, "prefix": prefix}
        path = "layers.rabbitmq.RabbitMQChannelLayer"
    return {"BACKEND": path, "CONFIG": config}, with_prefix(server, prefix)


async def fill_for_figures(one: ChannelLayer, two: ChannelLayer) -> None:
    """The figures tests' traffic, between two layers of one deployment with capacity 2.

    Groups room (a channel of one's and "jobs") and hall ("jobs"); three group_sends
    to room, the third finding both members full; a send to "other"; one message
    received from "jobs" and from one's channel.
    """
    mine = await one.new_channel()
    await one.group_add("room", mine)
    await one.group_add("room", "jobs")
    await two.group_add("hall", "jobs")
    for i in range(3):
        await two.group_send("room", msg(i))
    await two.send("other", msg(9))
    assert (await recv(one, "jobs"))["seq"] == 0
    assert (await recv(one, mine))["seq"] == 0


def check_filled_figures(figures: dict[str, Any], *, sent: int, dead_owner: int) -> None:
    """What fill_for_figures leaves in the deployment's figures (read from JSON).

    2 group deliveries to "jobs" (the store refused its third), 3 to one's inbox (one's
    own buffer refused the third: issue 14's rule). One left in "jobs" and one in
    "other"; the group message left in one's buffer is one's to count (the store never
    counted it).
    """
    assert figures["scope"] == "deployment"
    counters = figures["counters"]
    assert counters["sent"] == sent
    assert counters["group_sends"] == 3
    assert counters["delivered"] == 2
    assert counters["dropped_full"] == 2
    assert counters["dropped_dead_owner"] == dead_owner
    assert counters["dropped_expired"] == counters["dropped_undecodable"] == 0
    assert figures["queued"] == 2
    assert (figures["groups"], figures["members"]) == (2, 3)
    assert figures["deepest"] == {"jobs": 1, "other": 1}  # ties by name
    assert figures["largest_groups"] == {"room": 2, "hall": 1}


async def figures_elsewhere(layer: str | dict[str, Any], top: int = 10) -> dict[str, Any]:
    """`chanlayers stats --json` run in a fresh process: the figures it reads of layer,
    a URL or a CHANNEL_LAYERS entry (for what no URL says, e.g. several Redis shards)."""
    import asyncio
    import json
    import os
    import sys

    env = dict(os.environ)
    if isinstance(layer, str):
        which = ["--layer", layer]
    else:
        env["CHANNEL_LAYERS"] = json.dumps({"default": layer})
        which = []
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "layers",
        "stats",
        "--json",
        "--top",
        str(top),
        *which,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, err.decode()
    found: dict[str, Any] = json.loads(out)
    return found

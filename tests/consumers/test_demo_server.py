"""`chanlayers demo --workers 2` on Redis, as a real subprocess, with real WebSocket clients."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.typing import Origin

from tests.consumers.conftest import cli_process, free_port


async def next_chat(client: ClientConnection) -> dict[str, Any]:
    """The next 'message' frame (presence notes of other clients are skipped)."""
    while True:
        frame = json.loads(await asyncio.wait_for(client.recv(), timeout=5))
        if frame["type"] == "message":
            return dict(frame)


async def open_until_two_workers(
    url: str, origin: str
) -> tuple[ClientConnection, ClientConnection]:
    """Connect (from origin's page) until two clients are served by different workers."""
    first: ClientConnection | None = None
    first_pid = None
    async with asyncio.timeout(30):
        while True:
            try:
                client = await connect(url, origin=Origin(origin))
            except OSError:
                await asyncio.sleep(0.1)  # the server is still starting
                continue
            welcome = json.loads(await asyncio.wait_for(client.recv(), timeout=5))
            assert welcome["type"] == "welcome"
            assert welcome["room"] == "lobby"
            if first is None:
                first, first_pid = client, welcome["pid"]
            elif welcome["pid"] != first_pid:
                return first, client
            else:
                await client.close()


async def test_two_browsers_on_two_workers_and_an_external_group_send(
    redis_layer_url: str,
) -> None:
    port = free_port()
    async with cli_process(
        "demo", "--workers", "2", "--port", str(port), "--layer", redis_layer_url
    ) as server:
        first, second = await open_until_two_workers(
            f"ws://127.0.0.1:{port}/ws/lobby", f"http://127.0.0.1:{port}"
        )
        async with first, second:
            await first.send(json.dumps({"user": "ann", "text": "hello from worker one"}))
            for client in (first, second):
                got = await next_chat(client)
                assert (got["user"], got["text"]) == ("ann", "hello from worker one")
            await second.send(json.dumps({"user": "bob", "text": "and from worker two"}))
            for client in (first, second):
                assert (await next_chat(client))["text"] == "and from worker two"

            message = {"type": "chat.message", "text": "hi", "user": "ops"}
            async with cli_process(
                "group-send", "room.lobby", json.dumps(message), "--layer", redis_layer_url
            ) as sender:
                assert await asyncio.wait_for(sender.wait(), timeout=20) == 0
            for client in (first, second):
                assert await next_chat(client) == {
                    "type": "message",
                    "user": "ops",
                    "text": "hi",
                    "pid": None,
                }
        assert server.returncode is None

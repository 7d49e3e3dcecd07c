"""End to end: a real uvicorn server in-process, real `websockets` clients, memory:// groups."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest
import uvicorn
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosedError

from consumers import AsyncJsonWebsocketConsumer, URLRouter, route
from layers import ChannelLayer


class Room(AsyncJsonWebsocketConsumer):
    groups = ["lobby"]

    async def receive_json(self, content: Any) -> None:
        await self.send_json({"echo": content})

    async def chat_message(self, event: dict[str, Any]) -> None:
        await self.send_json({"text": event["text"]})


@contextlib.asynccontextmanager
async def serving(app: Any = None) -> AsyncIterator[tuple[str, uvicorn.Server]]:
    """(ws:// URL, server) of a uvicorn server running app (default: the lobby Room) on a
    free 127.0.0.1 port."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    app = app or URLRouter([route("/ws/lobby/", Room.as_asgi())])
    # websockets-sansio: uvicorn's default websockets backend is websockets.legacy,
    # which warns on import (and filterwarnings=error turns that into a failure).
    config = uvicorn.Config(
        app, port=port, log_level="warning", lifespan="off", ws="websockets-sansio"
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        async with asyncio.timeout(5):
            while not server.started:
                await asyncio.sleep(0.01)
        yield f"ws://127.0.0.1:{port}", server
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, timeout=5)
        sock.close()


@pytest.fixture
async def server_url() -> AsyncIterator[str]:
    """ws:// URL of a uvicorn server running the app on a free 127.0.0.1 port."""
    async with serving() as (url, _):
        yield url


async def test_group_send_reaches_both_clients_and_bad_json_closes_1007(
    server_url: str, layer: ChannelLayer
) -> None:
    async with (
        connect(f"{server_url}/ws/lobby/") as first,
        connect(f"{server_url}/ws/lobby/") as second,
    ):
        # Groups are joined before accept, so both are members once the handshakes finish.
        assert len(await layer.group_channels("lobby")) == 2
        await layer.group_send("lobby", {"type": "chat.message", "text": "hello, both"})
        for client in (first, second):
            reply = await asyncio.wait_for(client.recv(), timeout=2)
            assert json.loads(reply) == {"text": "hello, both"}

        await first.send(json.dumps({"ping": 1}))
        assert json.loads(await asyncio.wait_for(first.recv(), timeout=2)) == {"echo": {"ping": 1}}

        await second.send("{this is not json")
        with pytest.raises(ConnectionClosedError) as closed:
            await asyncio.wait_for(second.recv(), timeout=2)
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 1007
        # The server and the other client are unaffected.
        await first.send(json.dumps("still here"))
        assert json.loads(await asyncio.wait_for(first.recv(), timeout=2)) == {"echo": "still here"}

    # Both consumers saw websocket.disconnect and left the group.
    async with asyncio.timeout(2):
        while await layer.group_channels("lobby"):
            await asyncio.sleep(0.01)


async def test_server_shutdown_with_clients_still_connected_leaves_the_group(
    layer: ChannelLayer,
) -> None:
    async with serving() as (url, server), connect(f"{url}/ws/lobby/") as client:
        assert len(await layer.group_channels("lobby")) == 1
        server.should_exit = True
        # The server closes the socket (1012, going away) and ends the consumer.
        with pytest.raises(ConnectionClosedError):
            await asyncio.wait_for(client.recv(), timeout=5)
        async with asyncio.timeout(5):
            while await layer.group_channels("lobby"):
                await asyncio.sleep(0.01)

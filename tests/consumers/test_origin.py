"""Origin checks: the same decisions as Channels' validators, a WebSocket closed before
accept (403 from a real server), and a 403 for HTTP."""

from __future__ import annotations

import asyncio
from urllib.parse import urlparse

import pytest
from channels.security.websocket import OriginValidator as ChannelsOriginValidator
from websockets.asyncio.client import connect
from websockets.typing import Origin

from consumers import (
    AllowedHostsOriginValidator,
    AsyncWebsocketConsumer,
    OriginValidator,
    ProtocolTypeRouter,
)
from consumers.asgi import Receive, Scope, Send
from consumers.testing import ApplicationCommunicator, HttpCommunicator, WebsocketCommunicator
from layers.exceptions import ConfigError
from tests.consumers.test_websocket_server import serving

PATTERNS = [
    ["*"],
    ["example.com"],
    [".example.com"],
    ["http://example.com"],
    ["https://example.com:8443"],
    ["example.com:8000"],
    ["localhost", "127.0.0.1", "[::1]"],
    ["http://[::1]:8000"],
    [],
]
ORIGINS = [
    None,
    "http://example.com",
    "https://example.com",
    "http://example.com:80",
    "http://example.com:8000",
    "https://example.com:8443",
    "https://EXAMPLE.com:8443",
    "http://sub.example.com",
    "http://badexample.com",
    "http://example.com.evil.net",
    "http://localhost:8000",
    "http://[::1]:8000",
    "http://127.0.0.1",
    "null",
    "file://",
    "http://example.com:notaport",
]


def channels_decision(patterns: list[str], origin: str | None) -> bool | None:
    try:
        parsed = None if origin is None else urlparse(origin)
        return bool(ChannelsOriginValidator(None, patterns).valid_origin(parsed))
    except ValueError:  # Channels raises on a port that is not a number
        return None


async def reaches(patterns: list[str], origin: str | None) -> bool:
    """True if a WebSocket from origin gets through OriginValidator(patterns)."""
    reached: list[bool] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        reached.append(True)
        await receive()
        await send({"type": "websocket.close"})

    headers = [] if origin is None else [(b"origin", origin.encode())]
    comm = WebsocketCommunicator(OriginValidator(app, patterns), "/ws", headers=headers)
    await comm.connect()
    await comm.wait()
    return bool(reached)


@pytest.mark.parametrize("patterns", PATTERNS, ids=str)
async def test_the_same_decisions_as_channels(patterns: list[str]) -> None:
    for origin in ORIGINS:
        # Where Channels crashes (a port that is not a number), the origin is refused.
        expected = bool(channels_decision(patterns, origin))
        assert await reaches(patterns, origin) == expected, (patterns, origin)


class Echo(AsyncWebsocketConsumer):
    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        await self.send(text_data=text_data)


async def test_a_refused_websocket_is_closed_before_accept() -> None:
    app = OriginValidator(Echo.as_asgi(), ["https://chat.example"])
    refused = WebsocketCommunicator(app, "/ws", headers=[(b"origin", b"https://evil.example")])
    assert await refused.connect() == (False, 1000)
    allowed = WebsocketCommunicator(app, "/ws", headers=[(b"origin", b"https://chat.example")])
    assert (await allowed.connect())[0] is True
    await allowed.send_to(text_data="hi")
    assert await allowed.receive_from() == "hi"
    await allowed.disconnect()


async def test_a_refused_http_request_gets_403() -> None:
    async def page(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    app = OriginValidator(page, [".example.com"])
    refused = HttpCommunicator(app, "GET", "/", headers=[(b"origin", b"https://evil.example")])
    assert (await refused.get_response())["status"] == 403
    allowed = HttpCommunicator(app, "GET", "/", headers=[(b"origin", b"https://a.example.com")])
    assert (await allowed.get_response())["body"] == b"ok"


async def test_other_connection_types_and_bad_arguments_are_refused() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        raise AssertionError("not reached")

    comm = ApplicationCommunicator(OriginValidator(app, ["*"]), {"type": "lifespan"})
    with pytest.raises(ValueError, match="not 'lifespan'"):
        await comm.wait()
    with pytest.raises(ConfigError, match="a list of origins"):
        OriginValidator(app, "example.com")
    # Outside Django, AllowedHostsOriginValidator needs its hosts given.
    with pytest.raises(ConfigError, match="pass allowed_hosts"):
        AllowedHostsOriginValidator(app)
    assert AllowedHostsOriginValidator(app, ["a.example"]).allowed_origins == ["a.example"]


async def handshake_status(port: int, origin: str) -> bytes:
    """The status line a WebSocket handshake from origin's page gets (socket closed after)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(
            f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            f"Sec-WebSocket-Version: 13\r\nOrigin: {origin}\r\n\r\n".encode()
        )
        return await asyncio.wait_for(reader.readline(), timeout=5)
    finally:
        writer.close()
        await writer.wait_closed()


async def test_a_real_browser_handshake_from_another_site_gets_403() -> None:
    app = ProtocolTypeRouter(
        {"websocket": AllowedHostsOriginValidator(Echo.as_asgi(), ["localhost"])}
    )
    async with serving(app) as (base, _):
        port = int(base.rpartition(":")[2])
        assert (await handshake_status(port, "https://evil.example")).startswith(b"HTTP/1.1 403")
        assert (await handshake_status(port, f"http://localhost:{port}")).startswith(
            b"HTTP/1.1 101"
        )
        async with connect(f"{base}/ws", origin=Origin(f"http://localhost:{port}")) as client:
            await client.send("hello")
            assert await client.recv() == "hello"

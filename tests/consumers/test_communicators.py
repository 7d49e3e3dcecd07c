"""consumers.testing: the channels.testing API, against our own consumers."""

from __future__ import annotations

from typing import Any

import pytest

from consumers import AsyncHttpConsumer, AsyncWebsocketConsumer
from consumers.testing import ApplicationCommunicator, HttpCommunicator, WebsocketCommunicator


class Echo(AsyncWebsocketConsumer):
    """Echoes frames; 'scope' answers with the parts of the scope the communicator built."""

    async def connect(self) -> None:
        chosen = self.scope["subprotocols"][-1] if self.scope["subprotocols"] else None
        await self.accept(subprotocol=chosen, headers=[(b"x-served-by", b"echo")])

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if text_data == "scope":
            path, query = self.scope["path"], self.scope["query_string"].decode()
            await self.send(text_data=f'{{"path": "{path}", "query": "{query}"}}')
        elif text_data == "raw":
            await self.base_send({"type": "websocket.close", "code": 4001})
        else:
            await self.send(text_data=text_data, bytes_data=bytes_data)


class Refuse(AsyncWebsocketConsumer):
    async def connect(self) -> None:
        await self.close(code=4403)


class Page(AsyncHttpConsumer):
    async def handle(self, body: bytes) -> None:
        if self.scope["method"] == "POST":
            await self.send_headers(status=201, headers={"content-type": "text/plain"})
            await self.send_body(b"got ", more_body=True)
            await self.send_body(body)
        else:
            text = f"{self.scope['path']}?{self.scope['query_string'].decode()}"
            await self.send_response(200, text.encode(), headers=[(b"x-a", b"1")])


async def test_websocket_connect_frames_json_and_disconnect() -> None:
    comm = WebsocketCommunicator(
        Echo.as_asgi(), "/ws/a%20room/?x=1", headers=[(b"origin", b"t")], subprotocols=["v1"]
    )
    assert comm.scope["headers"] == [(b"origin", b"t")]
    assert await comm.connect() == (True, "v1")
    assert comm.response_headers == [(b"x-served-by", b"echo")]
    await comm.send_to(text_data="hello")
    assert await comm.receive_from() == "hello"
    await comm.send_to(bytes_data=b"\x00\x01")
    assert await comm.receive_from() == b"\x00\x01"
    await comm.send_json_to({"n": [1, 2]})
    assert await comm.receive_json_from() == {"n": [1, 2]}
    await comm.send_to(text_data="scope")
    assert await comm.receive_json_from() == {"path": "/ws/a room/", "query": "x=1"}
    assert await comm.receive_nothing() is True
    await comm.disconnect()
    assert comm.future.done()
    assert comm.future.exception() is None


def test_websocket_spec_version_goes_into_the_scope_when_given() -> None:
    assert (
        WebsocketCommunicator(Echo.as_asgi(), "/ws/", spec_version="2.3").scope["spec_version"]
        == "2.3"
    )
    assert "spec_version" not in WebsocketCommunicator(Echo.as_asgi(), "/ws/").scope


async def test_websocket_refusal_is_false_and_the_close_code() -> None:
    comm = WebsocketCommunicator(Refuse.as_asgi(), "/ws/")
    assert await comm.connect() == (False, 4403)
    await comm.disconnect()


async def test_websocket_surprises_fail_with_what_arrived() -> None:
    comm = WebsocketCommunicator(Echo.as_asgi(), "/ws/")
    await comm.connect()
    await comm.send_to(bytes_data=b"raw bytes")
    with pytest.raises(AssertionError, match="expected a JSON text frame"):
        await comm.receive_json_from()
    await comm.send_to(text_data="raw")
    with pytest.raises(AssertionError, match="'websocket.close'"):
        await comm.receive_from()
    with pytest.raises(ValueError, match="exactly one"):
        await comm.send_to()
    with pytest.raises(TypeError, match="text_data must be a str"):
        await comm.send_to(text_data=b"x")  # type: ignore[arg-type]
    await comm.disconnect()
    with pytest.raises(TypeError, match="path must be a str"):
        WebsocketCommunicator(Echo.as_asgi(), b"/ws/")  # type: ignore[arg-type]


async def test_http_get_and_streamed_post() -> None:
    got = await HttpCommunicator(Page.as_asgi(), "get", "/p/?q=2").get_response()
    assert got == {"status": 200, "headers": [(b"x-a", b"1")], "body": b"/p/?q=2"}
    posted = await HttpCommunicator(Page.as_asgi(), "POST", "/p/", body=b"data").get_response()
    assert posted["status"] == 201
    assert posted["headers"] == [(b"content-type", b"text/plain")]
    assert posted["body"] == b"got data"
    with pytest.raises(TypeError, match="body must be bytes"):
        HttpCommunicator(Page.as_asgi(), "POST", "/", body="text")  # type: ignore[arg-type]


async def test_http_response_that_is_not_http_fails_clearly() -> None:
    async def not_http(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.close"})

    with pytest.raises(AssertionError, match="Expected type 'http.response.start', but was 'w"):
        await HttpCommunicator(not_http, "GET", "/").get_response()


def test_application_communicator_is_asgirefs() -> None:
    import asgiref.testing

    assert ApplicationCommunicator is asgiref.testing.ApplicationCommunicator

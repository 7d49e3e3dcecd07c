"""Test helpers in the shape of channels.testing: drive an ASGI app with no server.

ApplicationCommunicator is asgiref's; WebsocketCommunicator and HttpCommunicator add
the handshake, frame and response helpers with channels' method names and defaults
(hence timeout= parameters on coroutines), so
tests written against channels.testing run unchanged. A protocol surprise (a frame
that is not websocket.send, a JSON payload in a bytes frame) fails the test with an
AssertionError that says what arrived.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any
from urllib.parse import unquote, urlsplit

from asgiref.testing import ApplicationCommunicator

from .asgi import ASGIApp, Message

__all__ = ["ApplicationCommunicator", "HttpCommunicator", "WebsocketCommunicator"]

Headers = Iterable[tuple[bytes, bytes]]


def _scope(kind: str, path: str, headers: Headers | None) -> dict[str, Any]:
    """The scope fields both communicators share, from a path with an optional query."""
    if not isinstance(path, str):
        raise TypeError(f"path must be a str such as '/ws/room/?x=1', got {type(path).__name__}")
    parts = urlsplit(path)
    return {
        "type": kind,
        "path": unquote(parts.path),
        "raw_path": parts.path.encode("latin-1"),
        "query_string": parts.query.encode("latin-1"),
        "headers": [(bytes(name), bytes(value)) for name, value in headers or ()],
    }


def _expect(message: Message, kind: str) -> Message:
    if message.get("type") != kind:
        # channels' wording, which tests match; then what arrived, whole.
        raise AssertionError(
            f"Expected type {kind!r}, but was {message.get('type')!r}"
            + ("" if set(message) <= {"type"} else f" (the application sent {message!r})")
        )
    return message


class _Communicator(ApplicationCommunicator):
    """Typed access to the (untyped) asgiref base."""

    # The base's __del__ reads it: a constructor refusing its arguments must not warn.
    _future = None

    def __init__(self, application: ASGIApp, scope: dict[str, Any]) -> None:
        super().__init__(application, scope)  # type: ignore[no-untyped-call]
        self.scope: dict[str, Any] = scope

    async def _put(self, message: Message) -> None:
        await self.send_input(message)  # type: ignore[no-untyped-call]

    async def _get(self, timeout: float) -> Message:  # noqa: ASYNC109
        message: Message = await self.receive_output(timeout)  # type: ignore[no-untyped-call]
        return message


class WebsocketCommunicator(_Communicator):
    """Drive a WebSocket app: connect, send and receive frames, disconnect."""

    def __init__(
        self,
        application: ASGIApp,
        path: str,
        headers: Headers | None = None,
        subprotocols: Iterable[str] | None = None,
        spec_version: str | None = None,
    ) -> None:
        scope = _scope("websocket", path, headers)
        scope["subprotocols"] = list(subprotocols or ())
        if spec_version:
            scope["spec_version"] = spec_version
        super().__init__(application, scope)
        self.response_headers: list[tuple[bytes, bytes]] | None = None

    async def connect(self, timeout: float = 1) -> tuple[bool, str | int | None]:  # noqa: ASYNC109
        """(True, subprotocol) if the app accepted, (False, close code) if it refused."""
        await self._put({"type": "websocket.connect"})
        response: Message = await self._get(timeout)
        if response.get("type") == "websocket.close":
            return False, response.get("code", 1000)
        _expect(response, "websocket.accept")
        self.response_headers = list(response.get("headers", []))
        return True, response.get("subprotocol")

    async def send_to(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        """Send one frame to the app: exactly one of text_data or bytes_data."""
        if (text_data is None) == (bytes_data is None):
            raise ValueError("send_to() takes exactly one of text_data or bytes_data")
        if text_data is not None:
            if not isinstance(text_data, str):
                raise TypeError(f"text_data must be a str, got {type(text_data).__name__}")
            await self._put({"type": "websocket.receive", "text": text_data})
        else:
            if not isinstance(bytes_data, bytes):
                raise TypeError(f"bytes_data must be bytes, got {type(bytes_data).__name__}")
            await self._put({"type": "websocket.receive", "bytes": bytes_data})

    async def send_json_to(self, data: Any) -> None:
        """Send data as one JSON text frame."""
        await self.send_to(text_data=json.dumps(data))

    async def receive_from(self, timeout: float = 1) -> str | bytes:  # noqa: ASYNC109
        """The next frame the app sends: a str for text, bytes for binary."""
        response = _expect(await self._get(timeout), "websocket.send")
        text, data = response.get("text"), response.get("bytes")
        if isinstance(text, str) and data is None:
            return text
        if isinstance(data, bytes) and text is None:
            return data
        raise AssertionError(f"a websocket.send needs one str text or bytes bytes: {response!r}")

    async def receive_json_from(self, timeout: float = 1) -> Any:  # noqa: ASYNC109
        """The next frame, which must be JSON text, decoded."""
        payload = await self.receive_from(timeout)
        if not isinstance(payload, str):
            raise AssertionError(f"expected a JSON text frame, got a bytes frame {payload!r}")
        return json.loads(payload)

    async def disconnect(self, code: int = 1000, timeout: float = 1) -> None:  # noqa: ASYNC109
        """Tell the app the client closed with code, and wait for it to finish."""
        await self._put({"type": "websocket.disconnect", "code": code})
        await self.wait(timeout)  # type: ignore[no-untyped-call]


class HttpCommunicator(_Communicator):
    """Drive an HTTP app: send one request, collect the whole response."""

    def __init__(
        self,
        application: ASGIApp,
        method: str,
        path: str,
        body: bytes = b"",
        headers: Headers | None = None,
    ) -> None:
        if not isinstance(body, bytes):
            raise TypeError(f"body must be bytes, got {type(body).__name__}")
        scope = _scope("http", path, headers)
        scope.update(method=method.upper(), http_version="1.1", scheme="http")
        super().__init__(application, scope)
        self.body = body
        self.sent_request = False

    async def send_request(self) -> None:
        """Send the request body once (get_response does it for you)."""
        if not self.sent_request:
            self.sent_request = True
            await self._put({"type": "http.request", "body": self.body})

    async def get_response(self, timeout: float = 1) -> dict[str, Any]:  # noqa: ASYNC109
        """{'status', 'headers', 'body'} of the response; timeout applies to each part."""
        await self.send_request()
        start = _expect(await self._get(timeout), "http.response.start")
        chunks: list[bytes] = []
        while True:
            chunk = _expect(await self._get(timeout), "http.response.body")
            chunks.append(chunk.get("body", b""))
            if not chunk.get("more_body", False):
                break
        response = {key: value for key, value in start.items() if key != "type"}
        response.setdefault("headers", [])
        response["body"] = b"".join(chunks)
        return response

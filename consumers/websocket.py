"""WebSocket consumers (plain and JSON, async and sync) in the Django Channels shape.

The protocol machinery (groups, frame decoding, StopConsumer) is written once, async,
in _WebsocketBase and runs on the event loop for both twins; only the user's hooks
(connect, receive, disconnect, receive_json, ...) go through the base's _call split,
so a sync consumer runs them in a worker thread.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Callable, Iterable
from typing import Any

from asgiref.sync import AsyncToSync

from .asgi import Message
from .base import AsyncConsumer, SyncConsumer, _Consumer, handler_name
from .exceptions import AcceptConnection, DenyConnection, StopConsumer

__all__ = [
    "AsyncJsonWebsocketConsumer",
    "AsyncWebsocketConsumer",
    "JsonWebsocketConsumer",
    "WebsocketConsumer",
]

log = logging.getLogger("consumers")

# RFC 6455 close codes the consumers send on their own.
INVALID_PAYLOAD = 1007


def _accept(subprotocol: str | None, headers: Iterable[tuple[bytes, bytes]] | None) -> Message:
    message: Message = {"type": "websocket.accept", "subprotocol": subprotocol}
    if headers is not None:
        # Passed on as given (channels does too: tests compare them as they wrote them).
        items = list(headers)
        for item in items:
            if len(item) != 2 or not all(isinstance(part, bytes) for part in item):
                raise TypeError(f"accept() headers are (name, value) pairs of bytes, got {item!r}")
        message["headers"] = items
    return message


def _close(code: int | None, reason: str | None) -> Message:
    message: Message = {"type": "websocket.close"}
    if code is not None:
        message["code"] = code
    if reason is not None:
        message["reason"] = reason
    return message


def _outgoing(text_data: str | None, bytes_data: bytes | None, close: bool | int) -> list[Message]:
    """The ASGI messages for send(): one frame, then a close if asked for."""
    if (text_data is None) == (bytes_data is None):
        raise ValueError("send() takes exactly one of text_data or bytes_data")
    frame: Message = {"type": "websocket.send"}
    frame.update({"text": text_data} if text_data is not None else {"bytes": bytes_data})
    if close is False:
        return [frame]
    # channels' convention: close=True closes normally, an int is the close code.
    return [frame, _close(None if close is True else close, None)]


class _WebsocketBase(_Consumer):
    """The websocket.* handlers, shared by all four consumers."""

    async def dispatch(self, message: Message) -> None:
        name = handler_name(message)
        if name in _RESERVED:
            raise ValueError(f"refusing message type {message['type']!r}: it names consumer API")
        await super().dispatch(message)

    async def _hook(self, hook: Callable[[], Any]) -> None:
        """Run a user hook the way this twin runs handlers (awaited, or in a thread)."""
        await self._call(lambda _message: hook(), {})

    async def websocket_connect(self, message: Message) -> None:
        """Join self.groups, then run connect(); DenyConnection closes, AcceptConnection accepts."""
        await self._join_groups()
        try:
            await self._hook(self.connect)
        except AcceptConnection:
            await self.base_send(_accept(None, None))
        except DenyConnection:
            # A refused client is no member; the server's disconnect comes later, if at all.
            await self._leave_groups()
            await self.base_send(_close(None, None))

    async def websocket_receive(self, message: Message) -> None:
        """Hand a frame to receive() (JSON consumers: decode it for receive_json())."""
        await self._frame(message.get("text"), message.get("bytes"))

    async def _frame(self, text_data: str | None, bytes_data: bytes | None) -> None:
        await self._hook(
            functools.partial(self.receive, text_data=text_data, bytes_data=bytes_data)
        )

    async def websocket_disconnect(self, message: Message) -> None:
        """Leave self.groups, run disconnect(code) and end the consumer."""
        await self._leave_groups()
        # ASGI: 1005 when the client's close frame carried no code.
        await self._hook(functools.partial(self.disconnect, message.get("code", 1005)))
        raise StopConsumer

    async def _refuse(self, code: int, why: str) -> None:
        log.warning("%s closing with %d: %s", type(self).__name__, code, why)
        await self.base_send(_close(code, None))

    # The user's hooks; each twin overrides them with its own flavour.
    def connect(self) -> Any:
        raise NotImplementedError

    def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> Any:
        raise NotImplementedError

    def disconnect(self, code: int) -> Any:
        raise NotImplementedError


class _JsonBase(_WebsocketBase):
    """Decode text frames as JSON on the loop; bad JSON closes the socket (1007).

    A binary frame raises ValueError, as in channels: a client speaking another protocol
    is a bug of the deployment, not bad input to tolerate.
    """

    async def _frame(self, text_data: str | None, bytes_data: bytes | None) -> None:
        if text_data is None:
            raise ValueError(
                f"{type(self).__name__} got a binary WebSocket frame ({len(bytes_data or b'')}"
                " bytes): no text section to decode as JSON"
            )
        try:
            content = self.decode_json(text_data)
        except (ValueError, RecursionError) as error:
            await self._refuse(INVALID_PAYLOAD, f"bad JSON from the client ({error})")
            return
        await self._hook(functools.partial(self.receive_json, content))

    @classmethod
    def decode_json(cls, text_data: str) -> Any:
        return json.loads(text_data)

    @classmethod
    def encode_json(cls, content: Any) -> str:
        return json.dumps(content)

    def receive_json(self, content: Any) -> Any:
        raise NotImplementedError


class AsyncWebsocketConsumer(_WebsocketBase, AsyncConsumer):
    """A WebSocket consumer whose hooks are coroutines."""

    async def connect(self) -> None:
        """Called on websocket.connect, after joining groups; accepts by default."""
        await self.accept()

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        """Called with each frame from the client."""

    async def disconnect(self, code: int) -> None:
        """Called once the socket is closed, after leaving groups."""

    async def accept(
        self, subprotocol: str | None = None, headers: Iterable[tuple[bytes, bytes]] | None = None
    ) -> None:
        """Accept the connection, optionally choosing a subprotocol and adding headers."""
        await self.base_send(_accept(subprotocol, headers))

    async def send(  # type: ignore[override]
        self,
        text_data: str | None = None,
        bytes_data: bytes | None = None,
        close: bool | int = False,
    ) -> None:
        """Send a text or a bytes frame to the client; close=True or a code closes after."""
        for message in _outgoing(text_data, bytes_data, close):
            await self.base_send(message)

    async def close(self, code: int | None = None, reason: str | None = None) -> None:
        """Close the connection with an optional code and reason."""
        await self.base_send(_close(code, reason))


class WebsocketConsumer(_WebsocketBase, SyncConsumer):
    """A WebSocket consumer whose hooks are plain functions, run in a worker thread."""

    def connect(self) -> None:
        """Called on websocket.connect, after joining groups; accepts by default."""
        self.accept()

    def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        """Called with each frame from the client."""

    def disconnect(self, code: int) -> None:
        """Called once the socket is closed, after leaving groups."""

    def accept(
        self, subprotocol: str | None = None, headers: Iterable[tuple[bytes, bytes]] | None = None
    ) -> None:
        """Accept the connection, optionally choosing a subprotocol and adding headers."""
        AsyncToSync(self.base_send)(_accept(subprotocol, headers))

    def send(  # type: ignore[override]
        self,
        text_data: str | None = None,
        bytes_data: bytes | None = None,
        close: bool | int = False,
    ) -> None:
        """Send a text or a bytes frame to the client; close=True or a code closes after."""
        for message in _outgoing(text_data, bytes_data, close):
            AsyncToSync(self.base_send)(message)

    def close(self, code: int | None = None, reason: str | None = None) -> None:
        """Close the connection with an optional code and reason."""
        AsyncToSync(self.base_send)(_close(code, reason))


class AsyncJsonWebsocketConsumer(_JsonBase, AsyncWebsocketConsumer):
    """An async WebSocket consumer that speaks JSON text frames."""

    async def receive_json(self, content: Any) -> None:
        """Called with each decoded frame from the client."""

    async def send_json(self, content: Any, close: bool | int = False) -> None:
        await self.send(text_data=self.encode_json(content), close=close)


class JsonWebsocketConsumer(_JsonBase, WebsocketConsumer):
    """A sync WebSocket consumer that speaks JSON text frames (hooks in a thread)."""

    def receive_json(self, content: Any) -> None:
        """Called with each decoded frame from the client."""

    def send_json(self, content: Any, close: bool | int = False) -> None:
        self.send(text_data=self.encode_json(content), close=close)


# Layer messages must not reach the WebSocket API either ({"type": "close"} from a peer);
# the websocket_* handlers are the only names these classes add that are dispatchable.
_RESERVED = frozenset(
    name
    for klass in (
        _WebsocketBase,
        _JsonBase,
        AsyncWebsocketConsumer,
        WebsocketConsumer,
        AsyncJsonWebsocketConsumer,
        JsonWebsocketConsumer,
    )
    for name in (*vars(klass), *vars(klass).get("__annotations__", {}))
    if not name.startswith("websocket_")
)

"""AsyncHttpConsumer: plain responses, streaming, and long-poll over groups.

Unlike channels' own (django/channels#1302, #1747), the consumer does not end when
handle() returns: it ends once the response is complete or the client is gone, so a
handler may leave the response open and finish it from a group message, or let the
class's timeout finish it with 204.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Mapping

from .asgi import Message, Receive, Scope, Send
from .base import AsyncConsumer, handler_name
from .exceptions import StopConsumer

__all__ = ["AsyncHttpConsumer"]

HeaderValue = str | bytes
Headers = Mapping[HeaderValue, HeaderValue] | Iterable[tuple[HeaderValue, HeaderValue]]

# Compared by identity: no client or layer message can ever be this object.
_TIMED_OUT: Message = {"type": "http.timeout"}


def _header_bytes(value: HeaderValue, what: str) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        try:
            return value.encode("latin-1")
        except UnicodeEncodeError:
            raise ValueError(f"header {what} {value!r} is not latin-1") from None
    raise TypeError(f"header {what} must be str or bytes, got {type(value).__name__}")


def _headers(headers: Headers | None) -> list[tuple[bytes, bytes]]:
    items = headers.items() if isinstance(headers, Mapping) else headers or ()
    return [(_header_bytes(name, "name"), _header_bytes(value, "value")) for name, value in items]


class AsyncHttpConsumer(AsyncConsumer):
    """An HTTP consumer: handle(body) answers now, or later from a layer message."""

    timeout: float | None = None
    """Seconds an unfinished response may wait after handle(); then on_timeout() runs."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self._body: list[bytes] = []
        self._started = False
        self._finished = False
        self._waiting = asyncio.Event()
        await super().__call__(scope, receive, send)

    def _more_sources(self) -> list[Callable[[], Awaitable[Message]]]:
        return [self._timer] if self.timeout is not None else []

    async def _timer(self) -> Message:
        await self._waiting.wait()
        assert self.timeout is not None
        await asyncio.sleep(self.timeout)
        return _TIMED_OUT

    async def dispatch(self, message: Message) -> None:
        """Run the handler for message; end the consumer once the response is complete."""
        if message is _TIMED_OUT:
            await self.on_timeout()
        else:
            if handler_name(message) in _RESERVED:
                refused = message["type"]
                raise ValueError(f"refusing message type {refused!r}: it names consumer API")
            await super().dispatch(message)
        if self._finished:
            await self.disconnect()
            raise StopConsumer

    async def http_request(self, message: Message) -> None:
        """Collect the body; once complete, join self.groups and run handle(body)."""
        self._body.append(message.get("body", b""))
        if message.get("more_body", False):
            return
        await self._join_groups()
        await self.handle(b"".join(self._body))
        if not self._finished:
            # Left open for a later message: start the clock, if there is one.
            self._waiting.set()

    async def http_disconnect(self, message: Message) -> None:
        """The client went away: run disconnect() and end (groups are left on the way out)."""
        await self.disconnect()
        raise StopConsumer

    async def handle(self, body: bytes) -> None:
        """Answer the request (override): send a response, or leave it for later."""
        raise NotImplementedError(f"{type(self).__name__} must define handle(self, body)")

    async def on_timeout(self) -> None:
        """The response waited self.timeout seconds: 204 No Content, or end the stream."""
        if self._started:
            await self.send_body(b"")
        else:
            await self.send_response(204, b"")

    async def disconnect(self) -> None:
        """Called once when the request is over: response complete or client gone."""

    async def send_headers(self, *, status: int = 200, headers: Headers | None = None) -> None:
        """Start the response: status and headers (a dict or (name, value) pairs)."""
        if self._started:
            raise RuntimeError("the response has already started; send_headers() goes once")
        if not isinstance(status, int) or not 100 <= status <= 599:
            raise ValueError(f"status must be an int from 100 to 599, got {status!r}")
        message = {"type": "http.response.start", "status": status, "headers": _headers(headers)}
        await self.base_send(message)
        self._started = True

    async def send_body(self, body: bytes, *, more_body: bool = False) -> None:
        """Send a part of the body; more_body=False (the default) completes the response."""
        if not self._started:
            raise RuntimeError("send_headers() must come before send_body()")
        if self._finished:
            raise RuntimeError("the response is already complete")
        if not isinstance(body, bytes):
            raise TypeError(f"body must be bytes, got {type(body).__name__}")
        await self.base_send({"type": "http.response.body", "body": body, "more_body": more_body})
        self._finished = not more_body

    async def send_response(
        self, status: int, body: bytes, *, headers: Headers | None = None
    ) -> None:
        """Send a whole response at once."""
        await self.send_headers(status=status, headers=headers)
        await self.send_body(body)


# Layer messages must not reach the HTTP API ({"type": "send.response"} from a peer).
_RESERVED = frozenset(
    name
    for name in (*vars(AsyncHttpConsumer), *vars(AsyncHttpConsumer).get("__annotations__", {}))
    if not name.startswith("http_")
)

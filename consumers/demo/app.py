"""The chat demo's ASGI application: the page at /, a WebSocket per room at /ws/{room}."""

from __future__ import annotations

import contextlib
import json
import os
from importlib.resources import files
from typing import Any
from urllib.parse import parse_qs

from layers import ChannelLayerError, get_channel_layer
from layers.naming import check_group

from ..asgi import ASGIApp, Receive, Scope, Send
from ..exceptions import DenyConnection, RouteNotFound
from ..http import AsyncHttpConsumer
from ..routing import ProtocolTypeRouter, URLRouter, route
from ..security import AllowedHostsOriginValidator
from ..websocket import AsyncJsonWebsocketConsumer

__all__ = [
    "ChatConsumer",
    "PageConsumer",
    "allowed_hosts",
    "figures",
    "lifespan",
    "make_app",
    "room_group",
]

MAX_TEXT = 2000
MAX_USER = 40
# Hosts whose pages may open the chat's WebSockets, comma-separated (serve() adds --host).
ALLOWED_HOSTS_ENV = "CHANLAYERS_DEMO_ALLOWED_HOSTS"
LOCAL_HOSTS = ("localhost", "127.0.0.1", "[::1]")


def allowed_hosts(environ: dict[str, str] | None = None) -> list[str]:
    """The hosts whose pages may connect: $CHANLAYERS_DEMO_ALLOWED_HOSTS, else this machine."""
    given = (os.environ if environ is None else environ).get(ALLOWED_HOSTS_ENV, "")
    return [h.strip() for h in given.split(",") if h.strip()] or list(LOCAL_HOSTS)


def room_group(room: str) -> str:
    """The group of a room ('lobby' -> 'room.lobby'); InvalidChannelName if it cannot be one."""
    return check_group(f"room.{room}")


def _text(value: object, limit: int, default: str) -> str:
    return value[:limit] if isinstance(value, str) and value.strip() else default


class ChatConsumer(AsyncJsonWebsocketConsumer):
    """One browser in one room: what it says goes to the room's group, the group's to it."""

    async def websocket_connect(self, message: dict[str, Any]) -> None:
        room = self.scope["url_route"]["kwargs"]["room"]
        try:
            self.groups = [room_group(room)]
        except TypeError:
            # An invalid room name: refuse before joining anything.
            self.groups = []
            self.room = ""
        else:
            self.room = room
        # The page passes its user name, so join and leave lines can name who it was.
        query = parse_qs(bytes(self.scope.get("query_string", b"")).decode("latin-1"))
        self.user = _text((query.get("user") or [""])[0], MAX_USER, "anonymous")
        await super().websocket_connect(message)

    async def connect(self) -> None:
        if not self.room:
            raise DenyConnection
        await self.accept()
        await self.send_json(
            {"type": "welcome", "room": self.room, "pid": os.getpid(), "channel": self.channel_name}
        )
        await self._tell(self._presence("joined"))

    async def disconnect(self, code: int) -> None:
        if self.room:
            # At server shutdown the layer may be closed already; nobody is left to tell.
            with contextlib.suppress(ChannelLayerError):
                await self._tell(self._presence("left"))

    async def receive_json(self, content: Any) -> None:
        if not isinstance(content, dict):
            await self.send_json({"type": "error", "error": "send a JSON object with 'text'"})
            return
        text = _text(content.get("text"), MAX_TEXT, "")
        if not text:
            await self.send_json({"type": "error", "error": "'text' must be a non-empty string"})
            return
        user = _text(content.get("user"), MAX_USER, "anonymous")
        await self._tell({"type": "chat.message", "text": text, "user": user, "pid": os.getpid()})

    async def chat_message(self, event: dict[str, Any]) -> None:
        """A message to the room, from a browser or from `chanlayers group-send`."""
        await self.send_json(
            {
                "type": "message",
                "user": _text(event.get("user"), MAX_USER, "anonymous"),
                "text": _text(event.get("text"), MAX_TEXT, ""),
                "pid": event.get("pid"),
            }
        )

    async def chat_presence(self, event: dict[str, Any]) -> None:
        await self.send_json(
            {
                "type": "presence",
                "event": event.get("event"),
                "user": _text(event.get("user"), MAX_USER, "anonymous"),
                "pid": event.get("pid"),
            }
        )

    def _presence(self, event: str) -> dict[str, Any]:
        return {"type": "chat.presence", "event": event, "user": self.user, "pid": os.getpid()}

    async def _tell(self, event: dict[str, Any]) -> None:
        assert self.channel_layer is not None
        await self.channel_layer.group_send(self.groups[0], event)


class PageConsumer(AsyncHttpConsumer):
    """The chat page (HTML with inline script, no external assets)."""

    channel_layer_alias = None

    async def handle(self, body: bytes) -> None:
        page = files(__package__).joinpath("chat.html").read_bytes()
        headers = [
            (b"content-type", b"text/html; charset=utf-8"),
            (b"content-length", str(len(page)).encode()),
            (b"cache-control", b"no-store"),
        ]
        await self.send_response(200, page, headers=headers)


async def lifespan(scope: Scope, receive: Receive, send: Send) -> None:
    """Build the layer at startup (a bad layer fails the worker early) and close it at exit."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            try:
                get_channel_layer()
            except ChannelLayerError as error:
                await send({"type": "lifespan.startup.failed", "message": str(error)})
                return
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            # Closing releases connections and (ipc://) this process's share of the segment.
            await get_channel_layer().close()
            await send({"type": "lifespan.shutdown.complete"})
            return


# A one-colour speech bubble, so the browser's favicon request is answered, not a 404.
_FAVICON = (
    b'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 16 16">'
    b'<path d="M2 2h12v9H7l-4 3v-3H2z" fill="#2b6cb0"/></svg>'
)


async def favicon(scope: Scope, receive: Receive, send: Send) -> None:
    """The demo's icon (SVG)."""
    headers = [(b"content-type", b"image/svg+xml"), (b"content-length", b"%d" % len(_FAVICON))]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": _FAVICON})


async def figures(scope: Scope, receive: Receive, send: Send) -> None:
    """The whole deployment's counters as JSON, read from the layer (every worker's
    counts, not this worker's), for the page's live message counter."""
    try:
        found = await get_channel_layer().figures(0)
        body, status = json.dumps({"counters": dict(found.counters), "scope": found.scope}), 200
    except ChannelLayerError as error:
        body, status = json.dumps({"error": str(error)}), 503
    data = body.encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", b"%d" % len(data)),
        (b"cache-control", b"no-store"),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": data})


def pages_or_404(router: URLRouter) -> ASGIApp:
    """router for HTTP, answering 404 where no route matches (URLRouter raises, as channels)."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await router(scope, receive, send)
        except RouteNotFound:
            headers = [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", b"9")]
            await send({"type": "http.response.start", "status": 404, "headers": headers})
            await send({"type": "http.response.body", "body": b"Not Found"})

    return app


def make_app() -> ASGIApp:
    """The demo application (a factory, so each uvicorn worker builds its own)."""
    return ProtocolTypeRouter(
        {
            "http": pages_or_404(
                URLRouter(
                    [
                        route("/", PageConsumer.as_asgi()),
                        route("/favicon.ico", favicon),
                        route("/figures", figures),
                    ]
                )
            ),
            # Another site's page must not chat as the visitor: the Origin is checked.
            "websocket": AllowedHostsOriginValidator(
                URLRouter([route("/ws/{room}", ChatConsumer.as_asgi())]), allowed_hosts()
            ),
            "lifespan": lifespan,
        }
    )

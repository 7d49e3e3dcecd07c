"""The chat demo's ASGI application: the page at /, a WebSocket per room at /ws/{room}."""

from __future__ import annotations

import contextlib
import os
from importlib.resources import files
from typing import Any

from layers import ChannelLayerError, get_channel_layer
from layers.naming import check_group

from ..asgi import ASGIApp, Receive, Scope, Send
from ..exceptions import DenyConnection
from ..http import AsyncHttpConsumer
from ..routing import ProtocolTypeRouter, URLRouter, route
from ..websocket import AsyncJsonWebsocketConsumer

__all__ = ["ChatConsumer", "PageConsumer", "lifespan", "make_app", "room_group"]

MAX_TEXT = 2000
MAX_USER = 40


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
        await super().websocket_connect(message)

    async def connect(self) -> None:
        if not self.room:
            raise DenyConnection
        await self.accept()
        await self.send_json(
            {"type": "welcome", "room": self.room, "pid": os.getpid(), "channel": self.channel_name}
        )
        await self._tell({"type": "chat.presence", "event": "joined", "pid": os.getpid()})

    async def disconnect(self, code: int) -> None:
        if self.room:
            # At server shutdown the layer may be closed already; nobody is left to tell.
            with contextlib.suppress(ChannelLayerError):
                await self._tell({"type": "chat.presence", "event": "left", "pid": os.getpid()})

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
            {"type": "presence", "event": event.get("event"), "pid": event.get("pid")}
        )

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


def make_app() -> ASGIApp:
    """The demo application (a factory, so each uvicorn worker builds its own)."""
    return ProtocolTypeRouter(
        {
            "http": URLRouter([route("/", PageConsumer.as_asgi())]),
            "websocket": URLRouter([route("/ws/{room}", ChatConsumer.as_asgi())]),
            "lifespan": lifespan,
        }
    )

"""ProtocolTypeRouter, URLRouter (nested, int, 404/4404) and ChannelNameRouter."""

from __future__ import annotations

from typing import Any

import pytest
from asgiref.testing import ApplicationCommunicator

from consumers import (
    AsyncConsumer,
    ChannelNameRouter,
    ProtocolTypeRouter,
    StopConsumer,
    URLRouter,
    route,
)
from consumers.asgi import Receive, Scope, Send


def tagged(tag: str) -> Any:
    """An app that answers with its tag, the url_route it got and what path was left."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send(
            {
                "type": "routed",
                "tag": tag,
                "scope_type": scope["type"],
                "url_route": scope.get("url_route"),
                "path_remaining": scope.get("path_remaining"),
            }
        )

    return app


async def run(app: Any, scope: dict[str, Any]) -> list[dict[str, Any]]:
    """Run app to its end and return everything it sent."""
    comm = ApplicationCommunicator(app, scope)
    await comm.wait(timeout=1)
    sent = []
    while not comm.output_queue.empty():
        sent.append(comm.output_queue.get_nowait())
    return sent


URLS = URLRouter(
    [
        route("/chat/{room}/", tagged("chat")),
        route("/items/{id:int}/", tagged("item")),
        route(
            "/rooms/{building}/",
            URLRouter([route("{number:int}/", tagged("room")), route("", tagged("building"))]),
        ),
    ]
)


async def test_protocol_type_router_picks_by_type() -> None:
    app = ProtocolTypeRouter({"http": tagged("h"), "websocket": tagged("w")})
    assert (await run(app, {"type": "http"}))[0]["tag"] == "h"
    assert (await run(app, {"type": "websocket"}))[0]["tag"] == "w"
    with pytest.raises(ValueError, match="'lifespan'"):
        await run(app, {"type": "lifespan"})


async def test_url_router_segment_placeholder() -> None:
    [sent] = await run(URLS, {"type": "websocket", "path": "/chat/lobby/"})
    assert sent["tag"] == "chat"
    assert sent["url_route"] == {"args": (), "kwargs": {"room": "lobby"}}
    # One segment only: a slash inside the value does not match.
    [sent] = await run(URLS, {"type": "websocket", "path": "/chat/a/b/"})
    assert sent == {"type": "websocket.close", "code": 4404}


async def test_url_router_int_conversion() -> None:
    [sent] = await run(URLS, {"type": "http", "path": "/items/42/"})
    assert sent["url_route"]["kwargs"] == {"id": 42}
    assert isinstance(sent["url_route"]["kwargs"]["id"], int)
    start, _ = await run(URLS, {"type": "http", "path": "/items/forty-two/"})
    assert start["status"] == 404


async def test_nested_url_router_passes_the_remainder() -> None:
    [sent] = await run(URLS, {"type": "http", "path": "/rooms/north/12/"})
    assert sent["tag"] == "room"
    assert sent["url_route"]["kwargs"] == {"building": "north", "number": 12}
    assert sent["path_remaining"] == ""
    [sent] = await run(URLS, {"type": "http", "path": "/rooms/north/"})
    assert sent["tag"] == "building"
    assert sent["url_route"]["kwargs"] == {"building": "north"}


async def test_unmatched_http_is_404() -> None:
    start, body = await run(URLS, {"type": "http", "path": "/nowhere/"})
    assert start["type"] == "http.response.start"
    assert start["status"] == 404
    assert body == {"type": "http.response.body", "body": b"Not Found"}


async def test_unmatched_websocket_is_closed_with_4404() -> None:
    sent = await run(URLS, {"type": "websocket", "path": "/nowhere/"})
    assert sent == [{"type": "websocket.close", "code": 4404}]


async def test_nested_unmatched_is_404() -> None:
    start, _ = await run(URLS, {"type": "http", "path": "/rooms/north/x/"})
    assert start["status"] == 404


async def test_route_refuses_bad_patterns() -> None:
    with pytest.raises(ValueError, match="'float'"):
        route("/a/{x:float}/", tagged("x"))
    with pytest.raises(ValueError, match="twice"):
        route("/{x}/{x}/", tagged("x"))
    with pytest.raises(ValueError, match="'1x'"):
        route("/{1x}/", tagged("x"))


class Thumbnails(AsyncConsumer):
    """A consumer for the 'thumbnails' channel."""

    async def thumbnail_make(self, message: dict[str, Any]) -> None:
        await self.send({"type": "made", "channel": self.scope["channel"], "id": message["id"]})
        raise StopConsumer


async def test_channel_name_router() -> None:
    app = ChannelNameRouter({"thumbnails": Thumbnails.as_asgi()})
    comm = ApplicationCommunicator(app, {"type": "channel", "channel": "thumbnails"})
    await comm.send_input({"type": "thumbnail.make", "id": 7})
    assert await comm.receive_output(timeout=1) == {
        "type": "made",
        "channel": "thumbnails",
        "id": 7,
    }
    await comm.wait(timeout=1)
    with pytest.raises(ValueError, match="'resize'"):
        await run(app, {"type": "channel", "channel": "resize"})
    with pytest.raises(ValueError, match="'http'"):
        await run(app, {"type": "http", "path": "/"})


async def test_routers_nest_inside_protocol_type_router() -> None:
    app = ProtocolTypeRouter({"websocket": URLS, "channel": ChannelNameRouter({})})
    [sent] = await run(app, {"type": "websocket", "path": "/items/3/"})
    assert sent["url_route"]["kwargs"] == {"id": 3}

"""ProtocolTypeRouter, URLRouter (nested, int, Django patterns, misses) and ChannelNameRouter."""

from __future__ import annotations

from typing import Any

import pytest
from asgiref.testing import ApplicationCommunicator

from consumers import (
    AsyncConsumer,
    ChannelNameRouter,
    ProtocolTypeRouter,
    RouteNotFound,
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
    with pytest.raises(KeyError):
        await run(app, {"tyyype": "http"})


async def test_url_router_segment_placeholder() -> None:
    [sent] = await run(URLS, {"type": "websocket", "path": "/chat/lobby/"})
    assert sent["tag"] == "chat"
    assert sent["url_route"] == {"args": (), "kwargs": {"room": "lobby"}}
    # One segment only: a slash inside the value does not match.
    with pytest.raises(RouteNotFound, match="'chat/a/b/'"):
        await run(URLS, {"type": "websocket", "path": "/chat/a/b/"})


async def test_url_router_int_conversion() -> None:
    [sent] = await run(URLS, {"type": "http", "path": "/items/42/"})
    assert sent["url_route"]["kwargs"] == {"id": 42}
    assert isinstance(sent["url_route"]["kwargs"]["id"], int)
    with pytest.raises(RouteNotFound):
        await run(URLS, {"type": "http", "path": "/items/forty-two/"})


async def test_nested_url_router_passes_the_remainder() -> None:
    [sent] = await run(URLS, {"type": "http", "path": "/rooms/north/12/"})
    assert sent["tag"] == "room"
    assert sent["url_route"]["kwargs"] == {"building": "north", "number": 12}
    assert sent["path_remaining"] == ""
    [sent] = await run(URLS, {"type": "http", "path": "/rooms/north/"})
    assert sent["tag"] == "building"
    assert sent["url_route"]["kwargs"] == {"building": "north"}


async def test_unmatched_path_raises_a_value_error_naming_it() -> None:
    # channels raises ValueError for a path no route matches; the server logs it and
    # refuses the connection (HTTP 500, WebSocket handshake rejected).
    for kind in ("http", "websocket"):
        with pytest.raises(RouteNotFound, match="'nowhere/'") as caught:
            await run(URLS, {"type": kind, "path": "/nowhere/"})
        assert isinstance(caught.value, ValueError)


async def test_nested_miss_tries_the_parents_later_routes() -> None:
    inner = URLRouter([route("no-match/", tagged("inner"))])
    app = URLRouter([route("prefix/", inner), route("prefix/stuff/", tagged("later"))])
    [sent] = await run(app, {"type": "http", "path": "/prefix/stuff/"})
    assert sent["tag"] == "later"
    with pytest.raises(RouteNotFound):
        await run(URLS, {"type": "http", "path": "/rooms/north/x/"})


async def test_patterns_match_with_or_without_the_leading_slash() -> None:
    app = URLRouter([route("rooms/{name}/{id:int}", tagged("r")), route("/plain/", tagged("p"))])
    [sent] = await run(app, {"type": "websocket", "path": "/rooms/lobby/7"})
    assert sent["url_route"]["kwargs"] == {"name": "lobby", "id": 7}
    [sent] = await run(app, {"type": "websocket", "path": "plain/"})
    assert sent["tag"] == "p"


async def test_root_path_is_left_out_of_matching() -> None:
    app = URLRouter([route("", tagged("root")), route("foo/", tagged("foo"))])
    [sent] = await run(app, {"type": "http", "path": "/root/foo/", "root_path": "/root"})
    assert sent["tag"] == "foo"
    with pytest.raises(RouteNotFound, match="outside"):
        await run(app, {"type": "http", "path": "/", "root_path": "/root"})


async def test_route_kwargs_are_defaults_in_url_route() -> None:
    app = URLRouter([route("page/{n:int}/", tagged("p"), kwargs={"default": 42})])
    [sent] = await run(app, {"type": "http", "path": "/page/3/"})
    assert sent["url_route"] == {"args": (), "kwargs": {"n": 3, "default": 42}}


async def test_routers_return_the_apps_return_value() -> None:
    async def answer(scope: Scope, receive: Receive, send: Send) -> Any:
        return scope["url_route"]["kwargs"]["x"]

    inner = URLRouter([route("{x:int}/", answer)])
    app = ProtocolTypeRouter({"http": URLRouter([route("n/", inner)])})
    assert await app({"type": "http", "path": "/n/5/"}, None, None) == 5  # type: ignore[arg-type]
    names = ChannelNameRouter({"work": answer})
    scope = {"channel": "work", "url_route": {"kwargs": {"x": 9}}}
    assert await names(scope, None, None) == 9  # type: ignore[arg-type]


async def test_url_router_takes_django_path_and_re_path() -> None:
    from django.urls import path, re_path

    posargs = tagged("pos")
    app = URLRouter(
        [
            path("kwarg/<str:name>/", tagged("kw")),
            re_path(r"^posarg/(\d+)/$", posargs),
            path("defaults/", tagged("def"), kwargs={"default": 42}),
            path("nest/<int:n>/", URLRouter([re_path(r"^x/(?P<y>\w+)/$", tagged("in"))])),
        ]
    )
    [sent] = await run(app, {"type": "http", "path": "/kwarg/hello/"})
    assert sent["url_route"] == {"args": (), "kwargs": {"name": "hello"}}
    [sent] = await run(app, {"type": "http", "path": "/posarg/123/"})
    assert sent["url_route"] == {"args": ("123",), "kwargs": {}}
    [sent] = await run(app, {"type": "http", "path": "/defaults/"})
    assert sent["url_route"]["kwargs"] == {"default": 42}
    [sent] = await run(app, {"type": "http", "path": "/nest/4/x/why/"})
    assert sent["url_route"]["kwargs"] == {"n": 4, "y": "why"}
    with pytest.raises(RouteNotFound):
        await run(app, {"type": "http", "path": "/nest/4/zzz/"})


def test_url_router_refuses_include_and_other_entries() -> None:
    from django.core.exceptions import ImproperlyConfigured
    from django.urls import include, path

    with pytest.raises(ImproperlyConfigured, match="include\\(\\) is not supported"):
        URLRouter([path("", include([]))])
    with pytest.raises(TypeError, match="route\\(...\\) entries"):
        URLRouter(["/chat/"])


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
    # channels routes by scope["channel"] alone; a scope without one is refused.
    with pytest.raises(ValueError, match="without a 'channel' key"):
        await run(app, {"type": "http", "path": "/"})


async def test_routers_nest_inside_protocol_type_router() -> None:
    app = ProtocolTypeRouter({"websocket": URLS, "channel": ChannelNameRouter({})})
    [sent] = await run(app, {"type": "websocket", "path": "/items/3/"})
    assert sent["url_route"]["kwargs"] == {"id": 3}

"""Routers: by scope type, by URL path (with small {name}/{name:int} patterns), by channel."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .asgi import ASGIApp, Receive, Scope, Send

__all__ = ["ChannelNameRouter", "ProtocolTypeRouter", "Route", "URLRouter", "route"]

# converter name -> (regex for one value, conversion of the matched text)
_CONVERTERS: dict[str, tuple[str, Callable[[str], Any]]] = {
    "str": (r"[^/]+", str),
    "int": (r"[0-9]+", int),
}
_PLACEHOLDER = re.compile(r"\{([^{}:]*)(?::([^{}]*))?\}")


def _pick(mapping: Mapping[str, ASGIApp], key: object, what: str) -> ASGIApp:
    """The app for key, or a ValueError naming key and what is configured."""
    app = mapping.get(key) if isinstance(key, str) else None
    if app is None:
        raise ValueError(
            f"no application configured for {what} {key!r}; "
            f"configured: {', '.join(map(repr, mapping)) or 'none'}"
        )
    return app


class ProtocolTypeRouter:
    """Send each connection to the app configured for its scope['type']."""

    def __init__(self, application_mapping: Mapping[str, ASGIApp]) -> None:
        self.application_mapping = dict(application_mapping)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        app = _pick(self.application_mapping, scope.get("type"), "scope type")
        await app(scope, receive, send)


@dataclass(frozen=True)
class Route:
    """A compiled path pattern and the app it leads to."""

    pattern: str
    app: ASGIApp
    regex: re.Pattern[str]
    converters: Mapping[str, Callable[[str], Any]]

    @property
    def is_prefix(self) -> bool:
        """True when the app is a URLRouter, which routes the rest of the path itself."""
        return isinstance(self.app, URLRouter)

    def match(self, path: str) -> tuple[dict[str, Any], str] | None:
        """(kwargs, remaining path) if path matches, else None."""
        found = self.regex.match(path) if self.is_prefix else self.regex.fullmatch(path)
        if found is None:
            return None
        kwargs = {name: self.converters[name](text) for name, text in found.groupdict().items()}
        return kwargs, path[found.end() :]


def route(pattern: str, app: ASGIApp) -> Route:
    """A route: '{name}' matches one path segment, '{name:int}' digits converted to int."""
    parts: list[str] = []
    converters: dict[str, Callable[[str], Any]] = {}
    position = 0
    for found in _PLACEHOLDER.finditer(pattern):
        name, kind = found.group(1), found.group(2) or "str"
        if not name.isidentifier():
            raise ValueError(f"route {pattern!r}: {name!r} is not a valid placeholder name")
        if name in converters:
            raise ValueError(f"route {pattern!r}: placeholder {name!r} appears twice")
        if kind not in _CONVERTERS:
            raise ValueError(
                f"route {pattern!r}: unknown converter {kind!r}; known: {', '.join(_CONVERTERS)}"
            )
        regex, converters[name] = _CONVERTERS[kind]
        parts += [re.escape(pattern[position : found.start()]), f"(?P<{name}>{regex})"]
        position = found.end()
    parts.append(re.escape(pattern[position:]))
    return Route(pattern, app, re.compile("".join(parts)), converters)


class URLRouter:
    """Send each connection to the first route matching its path; 404 otherwise."""

    def __init__(self, routes: Iterable[Route]) -> None:
        self.routes = list(routes)
        for item in self.routes:
            if not isinstance(item, Route):
                raise TypeError(f"URLRouter takes route(...) entries, got {item!r}")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # A nested router sees only what its parent's prefix left over.
        path = scope.get("path_remaining", scope.get("path"))
        if not isinstance(path, str):
            raise ValueError(f"URLRouter needs a scope with a str 'path', got {path!r}")
        outer = scope.get("url_route", {}).get("kwargs", {})
        for item in self.routes:
            matched = item.match(path)
            if matched is None:
                continue
            kwargs, remaining = matched
            # A copy, so the parent's scope stays as it was for any other route.
            inner = dict(scope, path_remaining=remaining)
            inner["url_route"] = {"args": (), "kwargs": {**outer, **kwargs}}
            await item.app(inner, receive, send)
            return
        await self._not_found(scope, send, path)

    @staticmethod
    async def _not_found(scope: Scope, send: Send, path: str) -> None:
        kind = scope.get("type")
        if kind == "http":
            headers = [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", b"9")]
            await send({"type": "http.response.start", "status": 404, "headers": headers})
            await send({"type": "http.response.body", "body": b"Not Found"})
        elif kind == "websocket":
            # Closing before accept rejects the handshake; 4404 tells the client why.
            await send({"type": "websocket.close", "code": 4404})
        else:
            raise ValueError(f"no route for path {path!r} (scope type {kind!r})")


class ChannelNameRouter:
    """Send each 'channel' scope to the app configured for its scope['channel']."""

    def __init__(self, application_mapping: Mapping[str, ASGIApp]) -> None:
        self.application_mapping = dict(application_mapping)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope.get("type") != "channel":
            raise ValueError(
                f"ChannelNameRouter routes 'channel' scopes, got type {scope.get('type')!r}"
            )
        app = _pick(self.application_mapping, scope.get("channel"), "channel")
        await app(scope, receive, send)

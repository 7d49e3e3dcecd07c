"""Routers: by scope type, by URL path, by channel name, as Django Channels routes.

URLRouter takes route() entries ('{name}' and '{name:int}' placeholders, no Django
needed) and, where Django is installed, django.urls.path() and re_path() entries, as
channels' URLRouter does. Paths match without their leading slash, so "rooms/{id}/"
and "/rooms/{id}/" are the same route.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from .asgi import ASGIApp, Receive, Scope, Send
from .exceptions import RouteNotFound

__all__ = ["ChannelNameRouter", "ProtocolTypeRouter", "Route", "URLRouter", "route"]

# converter name -> (regex for one value, conversion of the matched text)
_CONVERTERS: dict[str, tuple[str, Callable[[str], Any]]] = {
    "str": (r"[^/]+", str),
    "int": (r"[0-9]+", int),
}
_PLACEHOLDER = re.compile(r"\{([^{}:]*)(?::([^{}]*))?\}")

Match = tuple[str, tuple[Any, ...], dict[str, Any]]
"""(path left for a nested router, positional captures, keyword captures)."""


def _pick(mapping: Mapping[str, ASGIApp], key: Any, what: str) -> ASGIApp:
    """The app for key, or a ValueError naming key and what is configured."""
    app = mapping.get(key) if isinstance(key, str) else None
    if app is None:
        raise ValueError(
            f"no application configured for {what} {key!r}; "
            f"configured: {', '.join(map(repr, mapping)) or 'none'}"
        )
    return app


def _routes_paths(app: object) -> bool:
    """True for an app that routes the rest of the path itself (channels' marker)."""
    return getattr(app, "_path_routing", False) is True


class ProtocolTypeRouter:
    """Send each connection to the app configured for its scope['type']."""

    def __init__(self, application_mapping: Mapping[str, ASGIApp]) -> None:
        self.application_mapping = dict(application_mapping)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> Any:
        # A scope without a type is no ASGI scope: KeyError, as in channels.
        app = _pick(self.application_mapping, scope["type"], "scope type")
        return await app(scope, receive, send)


class _Matcher(Protocol):
    @property
    def app(self) -> ASGIApp: ...

    @property
    def defaults(self) -> Mapping[str, Any]: ...

    def match(self, path: str) -> Match | None: ...


@dataclass(frozen=True)
class Route:
    """A compiled path pattern, the app it leads to, and default keyword arguments."""

    pattern: str
    app: ASGIApp
    regex: re.Pattern[str]
    converters: Mapping[str, Callable[[str], Any]]
    defaults: Mapping[str, Any] = field(default_factory=dict)
    name: str | None = None

    @property
    def is_prefix(self) -> bool:
        """True when the app routes the rest of the path itself (a nested URLRouter)."""
        return _routes_paths(self.app)

    def match(self, path: str) -> Match | None:
        """(remaining path, (), kwargs) if path (without its leading '/') matches."""
        path = path.lstrip("/")
        found = self.regex.match(path) if self.is_prefix else self.regex.fullmatch(path)
        if found is None:
            return None
        kwargs = {name: self.converters[name](text) for name, text in found.groupdict().items()}
        return path[found.end() :], (), kwargs


def route(
    pattern: str,
    app: ASGIApp,
    kwargs: Mapping[str, Any] | None = None,
    name: str | None = None,
) -> Route:
    """A route: '{name}' matches one path segment, '{name:int}' digits converted to int."""
    parts: list[str] = []
    converters: dict[str, Callable[[str], Any]] = {}
    body = pattern.lstrip("/")
    position = 0
    for found in _PLACEHOLDER.finditer(body):
        key, kind = found.group(1), found.group(2) or "str"
        if not key.isidentifier():
            raise ValueError(f"route {pattern!r}: {key!r} is not a valid placeholder name")
        if key in converters:
            raise ValueError(f"route {pattern!r}: placeholder {key!r} appears twice")
        if kind not in _CONVERTERS:
            raise ValueError(
                f"route {pattern!r}: unknown converter {kind!r}; known: {', '.join(_CONVERTERS)}"
            )
        regex, converters[key] = _CONVERTERS[kind]
        parts += [re.escape(body[position : found.start()]), f"(?P<{key}>{regex})"]
        position = found.end()
    parts.append(re.escape(body[position:]))
    return Route(pattern, app, re.compile("".join(parts)), converters, dict(kwargs or {}), name)


@dataclass(frozen=True)
class _DjangoRoute:
    """A django.urls path()/re_path() entry, matched with Django's own pattern."""

    pattern: Any
    app: ASGIApp
    defaults: Mapping[str, Any]

    def match(self, path: str) -> Match | None:
        found: Match | None = self.pattern.match(path)
        return found


def _django_route(entry: Any) -> _DjangoRoute:
    """Adapt a Django URL pattern; include() is refused, as channels refuses it."""
    from django.core.exceptions import ImproperlyConfigured
    from django.urls.resolvers import RegexPattern, RoutePattern

    if not getattr(entry, "callback", None):
        raise ImproperlyConfigured(
            f"{entry}: include() is not supported in URLRouter. Use nested URLRouter "
            "instances instead."
        )
    pattern = entry.pattern
    if _routes_paths(entry.callback):
        # A nested router matches a prefix: the same pattern, not as an endpoint.
        # Django keeps the source in private attributes; channels reads them too.
        if isinstance(pattern, RegexPattern):
            source = pattern._regex
        elif isinstance(pattern, RoutePattern):
            source = pattern._route
        else:
            raise TypeError(f"URLRouter: unsupported Django pattern type {type(pattern).__name__}")
        pattern = type(pattern)(source, pattern.name, is_endpoint=False)
    return _DjangoRoute(pattern, entry.callback, dict(entry.default_args))


def _matcher(entry: object) -> _Matcher:
    if isinstance(entry, Route):
        return entry
    if hasattr(entry, "pattern") and hasattr(getattr(entry, "pattern", None), "match"):
        return _django_route(entry)
    raise TypeError(
        f"URLRouter takes route(...) entries, or django.urls path()/re_path() ones, got {entry!r}"
    )


class URLRouter:
    """Send each connection to the first route matching its path.

    With no match it raises RouteNotFound (a ValueError), as channels does; a nested
    router's miss lets its parent try the routes after it.
    """

    _path_routing = True

    def __init__(self, routes: Iterable[object]) -> None:
        self.routes = list(routes)
        self._matchers = [_matcher(entry) for entry in self.routes]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> Any:
        nested = "path_remaining" in scope
        path = scope["path_remaining"] if nested else scope.get("path")
        if not isinstance(path, str):
            raise ValueError(f"URLRouter needs a scope with a str 'path', got {path!r}")
        if not nested:
            root = scope.get("root_path") or ""
            if root and not path.startswith(root):
                raise RouteNotFound(f"no route found for path {path!r} (outside {root!r})")
            path = path[len(root) :]
        path = path.lstrip("/")
        outer = scope.get("url_route") or {}
        for item in self._matchers:
            matched = item.match(path)
            if matched is None:
                continue
            remaining, args, kwargs = matched
            inner = dict(
                scope,
                path_remaining=remaining,
                url_route={
                    "args": tuple(outer.get("args", ())) + tuple(args),
                    "kwargs": {**outer.get("kwargs", {}), **kwargs, **item.defaults},
                },
            )
            if not _routes_paths(item.app):
                return await item.app(inner, receive, send)
            try:
                return await item.app(inner, receive, send)
            except RouteNotFound:
                continue  # the nested router had nothing: try the routes after it
        raise RouteNotFound(f"no route found for path {path!r}")


class ChannelNameRouter:
    """Send each scope to the app configured for its scope['channel'] (worker mode)."""

    def __init__(self, application_mapping: Mapping[str, ASGIApp]) -> None:
        self.application_mapping = dict(application_mapping)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> Any:
        if "channel" not in scope:
            raise ValueError(
                "ChannelNameRouter got a scope without a 'channel' key; it routes the "
                "scopes of a worker (type 'channel')"
            )
        app = _pick(self.application_mapping, scope["channel"], "channel")
        return await app(scope, receive, send)

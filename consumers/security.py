"""Origin checks, as channels.security.websocket: a page on another site must not open
WebSockets to this one with the visitor's cookies.

OriginValidator(app, allowed_origins) passes a connection on only if its Origin header
matches one of allowed_origins; AllowedHostsOriginValidator(app) takes them from
Django's ALLOWED_HOSTS (or from allowed_hosts=). Patterns behave as in Channels: "*"
allows anything (even no Origin at all); "example.com" or ".example.com" (that domain
and its subdomains) match any scheme and port; "https://example.com:8443" must match
scheme, host and port (a default port counts as given). A refused WebSocket is closed
before it is accepted, which a server answers with HTTP 403; a refused HTTP request
gets a 403 response.
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import SplitResult, urlsplit

from layers.exceptions import ConfigError

from .asgi import ASGIApp, Receive, Scope, Send

__all__ = ["AllowedHostsOriginValidator", "OriginValidator", "is_same_domain"]

_DEFAULT_PORTS = {"http": 80, "ws": 80, "https": 443, "wss": 443}
_DEBUG_HOSTS = ("localhost", "127.0.0.1", "[::1]")


def is_same_domain(host: str, pattern: str) -> bool:
    """host is pattern, or (for a pattern starting with '.') that domain or a subdomain."""
    if not pattern:
        return False
    pattern = pattern.lower()
    if pattern[0] == ".":
        return host.endswith(pattern) or host == pattern[1:]
    return host == pattern


def _port(parts: SplitResult) -> int | None:
    try:
        port = parts.port
    except ValueError:  # not a number, or out of range
        return None
    return port if port is not None else _DEFAULT_PORTS.get(parts.scheme)


def _origin(scope: Scope) -> SplitResult | None:
    """The request's Origin header, parsed; None if it has none (the last one counts)."""
    origin = None
    for name, value in scope.get("headers", ()):
        if name == b"origin":
            try:
                origin = urlsplit(value.decode("latin-1").lower())
            except ValueError:
                origin = None
    return origin


class OriginValidator:
    """Passes a WebSocket or HTTP connection on only if its Origin is allowed."""

    def __init__(self, application: ASGIApp, allowed_origins: Iterable[str]) -> None:
        if isinstance(allowed_origins, str):
            raise ConfigError(
                f"allowed_origins must be a list of origins, got the str {allowed_origins!r}"
            )
        self.application = application
        self.allowed_origins = list(allowed_origins)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            raise ValueError(
                f"OriginValidator guards http and websocket connections, not {scope['type']!r}"
            )
        if self.valid_origin(_origin(scope)):
            await self.application(scope, receive, send)
        else:
            await _deny(scope, receive, send)

    def valid_origin(self, origin: SplitResult | None) -> bool:
        """True if this parsed Origin (None: the header is missing) may connect."""
        if origin is None:
            return "*" in self.allowed_origins
        return any(
            pattern == "*" or self.match_allowed_origin(origin, pattern)
            for pattern in self.allowed_origins
        )

    @staticmethod
    def match_allowed_origin(origin: SplitResult, pattern: str) -> bool:
        """True if origin matches one allowed pattern (see the module docstring)."""
        if origin.hostname is None:
            return False
        wanted = urlsplit(pattern.lower())
        if not wanted.scheme:
            host = urlsplit("//" + pattern.lower()).hostname or pattern
            return is_same_domain(origin.hostname, host)
        return (
            wanted.scheme == origin.scheme
            and wanted.hostname is not None
            and _port(wanted) == _port(origin)
            and is_same_domain(origin.hostname, wanted.hostname)
        )


async def _deny(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "websocket":
        message = await receive()
        if message["type"] == "websocket.connect":
            await send({"type": "websocket.close"})
        return
    body = b"Forbidden: this origin may not connect\n"
    await send(
        {
            "type": "http.response.start",
            "status": 403,
            "headers": [
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def AllowedHostsOriginValidator(  # Channels' name (a function), so imports carry over
    application: ASGIApp, allowed_hosts: Iterable[str] | None = None
) -> OriginValidator:
    """An OriginValidator allowing Django's ALLOWED_HOSTS (or allowed_hosts, if given).

    As in Channels, with DEBUG on and ALLOWED_HOSTS empty, localhost, 127.0.0.1 and
    [::1] are allowed.
    """
    if allowed_hosts is None:
        try:
            from django.conf import settings

            hosts = list(settings.ALLOWED_HOSTS)
            debug = bool(settings.DEBUG)
        except Exception as exc:  # Django missing, or its settings not configured
            raise ConfigError(
                "AllowedHostsOriginValidator reads Django's ALLOWED_HOSTS, which is not "
                f"available here ({exc}); pass allowed_hosts=[...] instead"
            ) from exc
        allowed_hosts = list(_DEBUG_HOSTS) if debug and not hosts else hosts
    return OriginValidator(application, allowed_hosts)

"""Exceptions of the consumers package."""

from __future__ import annotations

__all__ = ["AcceptConnection", "DenyConnection", "RouteNotFound", "StopConsumer"]


# Not ...Error: channels' names, kept so code ported from channels reads the same.
class StopConsumer(Exception):
    """Raised by a handler to end its consumer cleanly."""


class DenyConnection(Exception):
    """Raised in a WebSocket consumer's connect() to refuse (close) the connection."""


class AcceptConnection(Exception):
    """Raised in a WebSocket consumer's connect() to accept the connection."""


class RouteNotFound(ValueError):
    """No route of a URLRouter matched the path (a ValueError, as channels raises)."""

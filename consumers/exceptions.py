"""Exceptions of the consumers package."""

from __future__ import annotations

__all__ = ["StopConsumer"]


# Not ...Error: channels' name, kept so code ported from channels reads the same.
class StopConsumer(Exception):
    """Raised by a handler to end its consumer cleanly."""

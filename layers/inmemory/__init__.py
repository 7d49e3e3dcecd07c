"""The in-memory backend: one process, no server."""

from .layer import InMemoryChannelLayer

__all__ = ["InMemoryChannelLayer"]

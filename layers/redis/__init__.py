"""The Redis backend: sharded over several servers, Sentinel, or a Redis Cluster."""

from .layer import RedisChannelLayer

__all__ = ["RedisChannelLayer"]

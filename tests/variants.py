"""The backends and variants the contract suite runs against; a backend joins with one entry."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from layers.base import ChannelLayer
from layers.inmemory import InMemoryChannelLayer
from layers.ipc import IPCChannelLayer
from layers.rabbitmq import RabbitMQChannelLayer
from layers.redis import RedisChannelLayer

ENCRYPTION_KEYS = ["contract-suite-key"]


class RelayingRedisChannelLayer(RedisChannelLayer):
    """A Redis layer whose messages to its own channels go through Redis all the same.

    The real layer delivers those in-process; the variants below that relay keep the
    contract suite exercising the inbox path (scripts, batches, depth counts) too.
    """

    def delivers_here(self, channel: str) -> bool:
        return False


@dataclass(frozen=True)
class Variant:
    """One backend configuration under test."""

    name: str
    factory: Callable[..., ChannelLayer]
    # True when two layer objects made with the same prefix share channels and groups
    # (as two processes would); False for in-memory, where a peer is the same object.
    shared: bool
    encrypted: bool = False
    options: dict[str, Any] = field(default_factory=dict)
    # A fixture that returns the servers to add to options, e.g. {"hosts": [...]}.
    servers: str | None = None

    def bind(self, **options: Any) -> Variant:
        """This variant with more options (the servers found for this run)."""
        return replace(self, options={**self.options, **options})

    def make(self, prefix: str | None = None, **options: Any) -> ChannelLayer:
        """A new layer of this variant; a random prefix keeps tests apart on shared servers."""
        merged = {**self.options, **options}
        merged.setdefault("prefix", prefix or f"t{secrets.token_hex(4)}")
        return self.factory(**merged)


VARIANTS = [
    Variant("inmemory", InMemoryChannelLayer, shared=False),
    Variant(
        "inmemory-encrypted",
        InMemoryChannelLayer,
        shared=False,
        encrypted=True,
        options={"symmetric_encryption_keys": ENCRYPTION_KEYS},
    ),
    # The region's name defaults to the prefix: each test gets its own region, and a
    # peer made with the same prefix shares it, as another process would.
    Variant("ipc", IPCChannelLayer, shared=True),
    Variant(
        "ipc-encrypted",
        IPCChannelLayer,
        shared=True,
        encrypted=True,
        options={"symmetric_encryption_keys": ENCRYPTION_KEYS},
    ),
    Variant("redis", RedisChannelLayer, shared=True, servers="redis_single"),
    Variant("redis-3shards", RelayingRedisChannelLayer, shared=True, servers="redis_sharded"),
    Variant(
        "redis-3shards-encrypted",
        RelayingRedisChannelLayer,
        shared=True,
        encrypted=True,
        options={"symmetric_encryption_keys": ENCRYPTION_KEYS},
        servers="redis_sharded",
    ),
    Variant("redis-sentinel", RedisChannelLayer, shared=True, servers="redis_sentinel_options"),
    Variant(
        "redis-cluster", RelayingRedisChannelLayer, shared=True, servers="redis_cluster_options"
    ),
    Variant("rabbitmq", RabbitMQChannelLayer, shared=True, servers="amqp_options"),
    Variant(
        "rabbitmq-encrypted",
        RabbitMQChannelLayer,
        shared=True,
        encrypted=True,
        options={"symmetric_encryption_keys": ENCRYPTION_KEYS},
        servers="amqp_options",
    ),
]

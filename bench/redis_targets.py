"""The Redis family: our RedisChannelLayer, channels_redis core and pubsub, raw redis-py.

All of them use one server: $REDIS_URL, else redis://127.0.0.1:6379. Every run gets its
own key prefix, and whatever a run leaves under it is deleted after the run (SCAN and
UNLINK on that prefix only: the server may be shared, so never FLUSHALL).
"""

from __future__ import annotations

import os
from functools import partial
from typing import Any

from .model import Layer
from .targets import CAPACITY, EXPIRY, RELAY_NOTE, Family, Target, relayed

__all__ = ["cleanup", "probe", "redis_targets", "redis_url"]

DEFAULT_URL = "redis://127.0.0.1:6379"
CORE_NOTE = (
    'hosts=[{"address": url, "socket_timeout": None}]: with redis-py 8 (socket_timeout'
    " now defaults to 5s) a receive() idle for 5s dies with TimeoutError, channels_redis#422"
)
PUBSUB_NOTE = (
    "Redis PUBLISH/SUBSCRIBE: nothing is queued, so a message sent while nobody is"
    " subscribed is lost, and every subscriber of a normal channel gets every message"
)
RAW_NOTE = (
    "ceiling: redis-py alone, RPUSH pipelined in batches of 100 and LPOP key 100 (BLPOP"
    " when empty) on one list, the same payload msgpack-encoded; W1 and W4 only"
)


RAW_1RT_NOTE = (
    "ceiling of a send() that hears back from Redis before it returns: redis-py alone,"
    " each RPUSH awaited on its own, LPOP key 100 to receive; W1 and W4 only"
)


def redis_url() -> str:
    """The server every Redis target uses."""
    return os.environ.get("REDIS_URL", DEFAULT_URL)


def probe() -> str:
    """'' if the server answers PING, else why not."""
    url = redis_url()
    try:
        import redis
    except ImportError as exc:
        return f"redis-py is not installed: {exc}"
    try:
        with redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2) as client:
            client.ping()
    except Exception as exc:
        return f"Redis at {url} does not answer: {type(exc).__name__}: {exc}"
    return ""


def cleanup(prefix: str) -> int:
    """Delete every key under prefix (a run's own, unique prefix); return how many."""
    import redis

    deleted = 0
    with redis.Redis.from_url(redis_url(), socket_timeout=10) as client:
        batch: list[Any] = []
        for key in client.scan_iter(match=f"{prefix}*", count=1000):
            batch.append(key)
            if len(batch) >= 500:
                deleted += int(client.unlink(*batch))
                batch = []
        if batch:
            deleted += int(client.unlink(*batch))
    return deleted


def _ours(cls: Any, prefix: str) -> Layer:
    layer: Layer = cls(hosts=[redis_url()], prefix=prefix, capacity=CAPACITY, expiry=EXPIRY)
    return layer


def _core(cls: Any, prefix: str) -> Layer:
    host = {"address": redis_url(), "socket_timeout": None}
    layer = cls(hosts=[host], prefix=prefix, capacity=CAPACITY, expiry=EXPIRY)
    # It has no close(); close_pools() closes this loop's connections.
    layer.close = layer.close_pools
    result: Layer = layer
    return result


def _pubsub(cls: Any, prefix: str) -> Layer:
    layer = cls(hosts=[redis_url()], prefix=prefix)
    # It has no close(); its flush() unsubscribes and closes the connections.
    layer.close = layer.flush
    result: Layer = layer
    return result


def _raw(key: str, label: str, batch: int, note: str) -> Target:
    url, runs, why = redis_url(), {}, ""
    try:
        from .raw import raw_cross_process, raw_p2p
    except ImportError as exc:
        why = f"redis-py or msgpack is not installed: {exc}"
    else:
        runs = {
            "W1": partial(raw_p2p, url=url, batch=batch),
            "W4": partial(raw_cross_process, url=url, batch=batch),
        }
    return FAMILY.ceiling(key, label, "redis", runs, why, note)


FAMILY = Family("redis", probe, cleanup)
OURS_GOALS = {
    ("cr-core", "W1", "rate"): 20.0,
    ("cr-core", "W2", "p50"): 0.3,
    ("cr-core", "W3 G=1000", "rate"): 10.0,
    ("cr-pubsub", "W3 G=1000", "rate"): 1.0,
    ("cr-core", "W4", "rate"): 3.0,
    ("cr-core", "W4 send_many", "rate"): 20.0,
}
RELAY_GOALS = {("cr-core", "W1", "rate"): 10.0}


def redis_targets() -> list[Target]:
    """ours-redis, channels_redis core and pubsub, and the raw redis-py ceiling."""
    return [
        FAMILY.layer(
            "ours-redis",
            "chanlayers RedisChannelLayer",
            "ours",
            "layers.redis",
            "RedisChannelLayer",
            _ours,
            goals=OURS_GOALS,
            note=f"hosts=[url], url={redis_url()}",
        ),
        FAMILY.layer(
            "ours-redis-relay",
            "chanlayers RedisChannelLayer, sending from a second layer",
            "ours",
            "layers.redis",
            "RedisChannelLayer",
            relayed(_ours),
            capabilities=frozenset(),
            goals=RELAY_GOALS,
            note=RELAY_NOTE,
        ),
        FAMILY.layer(
            "cr-core",
            "channels_redis.core.RedisChannelLayer",
            "peer",
            "channels_redis.core",
            "RedisChannelLayer",
            _core,
            note=CORE_NOTE,
        ),
        FAMILY.layer(
            "cr-pubsub",
            "channels_redis.pubsub.RedisPubSubChannelLayer",
            "peer",
            "channels_redis.pubsub",
            "RedisPubSubChannelLayer",
            _pubsub,
            note=PUBSUB_NOTE,
        ),
        _raw("redis-py", "raw redis-py client", 100, RAW_NOTE),
        _raw("redis-py-1rt", "raw redis-py, a round trip per message", 1, RAW_1RT_NOTE),
    ]

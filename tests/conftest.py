"""Shared fixtures: where the servers for the backend tests are (see tests/servers.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.rabbit_procs import RabbitProcess, shared_node, stop_shared_node
from tests.redis_procs import RedisCluster, RedisProcess, RedisSentinel
from tests.servers import RABBITMQ, REDIS, provide


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """A Redis URL: $REDIS_URL, 127.0.0.1:6379, a container, or a failed session."""
    with provide(REDIS) as url:
        yield url


@pytest.fixture(scope="session")
def amqp_url() -> Iterator[str]:
    """An AMQP URL: $AMQP_URL, 127.0.0.1:5672, a container, or a failed session."""
    with provide(RABBITMQ) as url:
        yield url


@pytest.fixture(scope="session")
def amqp_options(amqp_url: str) -> dict[str, str]:
    """Options for a RabbitMQ layer."""
    return {"url": amqp_url}


@pytest.fixture(scope="session")
def redis_single(redis_url: str) -> dict[str, list[str]]:
    """Options for a one-server Redis layer."""
    return {"hosts": [redis_url]}


# Servers the tests own (tests/redis_procs.py); the shared one is never stopped or flushed.


@pytest.fixture(scope="session")
def redis_shards(redis_url: str) -> Iterator[list[str]]:
    """Three Redis URLs: the shared server, then two servers this session owns."""
    with (
        RedisProcess(name="shard-1") as shard_1,
        RedisProcess(name="shard-2") as shard_2,
    ):
        yield [redis_url, shard_1.url, shard_2.url]


@pytest.fixture
def own_redis() -> Iterator[RedisProcess]:
    """A fresh Redis server the test may kill() and restart(); stopped at teardown."""
    with RedisProcess(name="own") as server:
        yield server


@pytest.fixture(scope="session", autouse=True)
def _owned_rabbit_node_stopped_at_end() -> Iterator[None]:
    """The session's owned RabbitMQ node (started on first use) is stopped at the end."""
    yield
    stop_shared_node()


@pytest.fixture
def own_rabbit() -> RabbitProcess:
    """The session's owned RabbitMQ node (with a TLS listener), running; see shared_node()."""
    return shared_node()


@pytest.fixture(scope="session")
def redis_sentinel() -> Iterator[RedisSentinel]:
    """An owned master, one replica and one Sentinel monitoring them as "mymaster".

    Session-wide: a test that calls failover() leaves the replica as the master
    (``.master``/``.replica`` are swapped); use a ``RedisSentinel()`` of your own if
    the test must not affect others.
    """
    with RedisSentinel(sentinels=1) as setup:
        yield setup


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[RedisCluster]:
    """A three-master Redis Cluster (no replicas), every node at cluster_state:ok."""
    with RedisCluster(size=3) as cluster:
        yield cluster


@pytest.fixture(scope="session")
def redis_sharded(redis_shards: list[str]) -> dict[str, list[str]]:
    """Options for a three-shard Redis layer."""
    return {"hosts": redis_shards}


@pytest.fixture(scope="session")
def redis_sentinel_options(redis_sentinel: RedisSentinel) -> dict[str, object]:
    """Options for a layer that finds its master through Sentinel."""
    return {"hosts": [{"sentinels": redis_sentinel.sentinels, "master_name": "mymaster"}]}


@pytest.fixture(scope="session")
def redis_cluster_options(redis_cluster: RedisCluster) -> dict[str, object]:
    """Options for a layer on a three-master Redis Cluster."""
    return {"hosts": [redis_cluster.url], "cluster": True}

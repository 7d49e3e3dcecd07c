"""The networked backends the fault tests run against; a backend joins with one entry.

Each entry knows how to start a server the test owns (so it may be killed and
restarted) and how to make a layer that reaches that server at a given address (the
fault proxy's, usually); every test in ``tests/faults/`` runs on each entry.

Redis gets a fresh ``redis-server`` per test (it starts in milliseconds). RabbitMQ gets
one owned node per session (tests/rabbit_procs.py; it boots in seconds), restarted by
the fixture if a test left it killed; every layer uses a random prefix, so tests that
share the node do not see each other's queues.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from layers.base import ChannelLayer
from layers.rabbitmq import RabbitMQChannelLayer
from layers.redis import RedisChannelLayer
from tests.rabbit_procs import RabbitProcess, shared_node
from tests.redis_procs import RedisProcess

__all__ = ["NETWORKED", "NetworkedBackend", "OwnedServer"]


class OwnedServer(Protocol):
    """A server process the test owns: where it listens, and how to crash and revive it."""

    @property
    def address(self) -> tuple[str, int]: ...

    def kill(self) -> None: ...

    def restart(self) -> Any: ...


@dataclass(frozen=True)
class NetworkedBackend:
    """One backend that talks to a server over TCP."""

    name: str
    server: Callable[[], contextlib.AbstractContextManager[OwnedServer]]
    """Starts an owned server; stops it on exit."""
    layer: Callable[..., ChannelLayer]
    """layer(host, port, **options): a layer whose server is at host:port."""
    fast_timeouts: dict[str, Any] = field(default_factory=dict)
    """Options that make an outage surface within about a second."""
    connections: Callable[[OwnedServer], int] | None = None
    """How many client connections the server has open now (for leak checks)."""
    counted_drops: Callable[[ChannelLayer], int] | None = None
    """Sends a layer returned from OK but dropped by a documented rule, and counted.

    AMQP: a publish to a queue that does not exist is returned by the broker, and the
    layer counts it (``dropped_unroutable``) rather than fail the send. After a crash
    of a broker without persistence, a receiver's queue is missing until the receiver
    reconnects and declares it again; what is sent to it meanwhile is dropped that way.
    """

    def make(self, host: str, port: int, fast: bool = True, **options: Any) -> ChannelLayer:
        """A layer on a random prefix, with fast timeouts (if fast) unless overridden."""
        timeouts = self.fast_timeouts if fast else {}
        merged = {"prefix": f"f{secrets.token_hex(4)}", **timeouts, **options}
        return self.layer(host, port, **merged)


@contextlib.contextmanager
def _redis_server(*extra_args: str) -> Iterator[OwnedServer]:
    with RedisProcess(extra_args, name="faults") as server:
        yield server


def _redis_layer(host: str, port: int, **options: Any) -> ChannelLayer:
    return RedisChannelLayer(hosts=[f"redis://{host}:{port}/0"], **options)


def _redis_connections(server: OwnedServer) -> int:
    assert isinstance(server, RedisProcess)
    # connected_clients counts this very INFO connection too.
    return int(server.info("clients")["connected_clients"]) - 1


@contextlib.contextmanager
def _rabbit_server() -> Iterator[OwnedServer]:
    # Not stopped on exit: a session fixture in tests/conftest.py stops it at the end.
    yield shared_node()


def _rabbit_layer(host: str, port: int, **options: Any) -> ChannelLayer:
    return RabbitMQChannelLayer(url=f"amqp://guest:guest@{host}:{port}/", **options)


def _rabbit_connections(server: OwnedServer) -> int:
    assert isinstance(server, RabbitProcess)
    return server.connections()


NETWORKED = [
    NetworkedBackend(
        name="redis",
        server=_redis_server,
        layer=_redis_layer,
        fast_timeouts={
            "socket_timeout": 0.5,
            "socket_connect_timeout": 0.5,
            "blocking_timeout": 0.5,
        },
        connections=_redis_connections,
    ),
    NetworkedBackend(
        name="rabbitmq",
        server=_rabbit_server,
        layer=_rabbit_layer,
        fast_timeouts={"connect_timeout": 0.5},
        connections=_rabbit_connections,
        counted_drops=lambda layer: int(layer.stats()["dropped_unroutable"]),
    ),
]

"""Find the Redis and RabbitMQ servers the backend tests run against.

Order, for each server:

1. its environment variable (``REDIS_URL`` / ``AMQP_URL``), taken as given;
2. the local default port, if a real server answers there (Redis: PING over RESP;
   RabbitMQ: the AMQP 0-9-1 protocol header, answered by a Connection.Start frame);
3. a testcontainers container, only where a Docker engine answers;
4. otherwise the session fails, with a message saying how to start one. A backend
   test is never skipped silently.

Steps 1 and 2 are plain functions (``find_url``, ``find_redis_url``, ``find_amqp_url``)
that return a URL or None; ``provide`` adds steps 3 and 4 and is what the session
fixtures in ``tests/conftest.py`` use.
"""

from __future__ import annotations

import contextlib
import gc
import os
import socket
import struct
import time
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, NoReturn

import pytest

__all__ = [
    "RABBITMQ",
    "REDIS",
    "Server",
    "amqp_answers",
    "docker_available",
    "fail_not_found",
    "find_amqp_url",
    "find_redis_url",
    "find_url",
    "not_found_message",
    "provide",
    "redis_answers",
    "require",
    "start_container",
    "wait_answering",
]

PROBE_TIMEOUT = 1.0
"""Seconds to wait for a local server to connect and answer."""

_AMQP_HEADER = b"AMQP\x00\x00\x09\x01"
_AMQP_FRAME_METHOD = 1
_AMQP_CONNECTION_START = (10, 10)  # class id, method id


def _recv_at_least(sock: socket.socket, count: int) -> bytes:
    """Read until count bytes arrived or the peer closed; may return fewer."""
    data = b""
    while len(data) < count:
        chunk = sock.recv(count - len(data))
        if not chunk:
            break
        data += chunk
    return data


def redis_answers(host: str, port: int, timeout: float = PROBE_TIMEOUT) -> bool:
    """True if a Redis server at host:port answers PING with PONG (raw RESP, no client)."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(b"*1\r\n$4\r\nPING\r\n")
            return _recv_at_least(sock, 7) == b"+PONG\r\n"
    except OSError:  # refused, unreachable, timed out, reset
        return False


def amqp_answers(host: str, port: int, timeout: float = PROBE_TIMEOUT) -> bool:
    """True if an AMQP 0-9-1 broker at host:port answers the protocol header.

    The broker must send a method frame (type 1) on channel 0 carrying
    Connection.Start (class 10, method 10). A broker that does not speak 0-9-1
    answers with its own protocol header instead, which is not accepted.
    """
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(_AMQP_HEADER)
            frame = _recv_at_least(sock, 11)
    except OSError:
        return False
    if len(frame) < 11:
        return False
    frame_type, channel, _size, class_id, method_id = struct.unpack("!BHIHH", frame[:11])
    return (
        frame_type == _AMQP_FRAME_METHOD
        and channel == 0
        and (class_id, method_id) == _AMQP_CONNECTION_START
    )


@dataclass(frozen=True)
class Server:
    """One kind of server the tests need, and how to find or start it."""

    name: str
    env_var: str
    host: str
    port: int
    scheme: str
    probe: Callable[[str, int, float], bool]
    url_template: str
    """The URL of a server found at {host}:{port}."""
    compose_service: str
    start_command: str
    image: str
    container_env: Mapping[str, str] = field(default_factory=dict)
    """Environment of the server's container (testcontainers path)."""

    def url(self, host: str | None = None, port: int | None = None) -> str:
        """The URL of this server at host:port (default: the local default port)."""
        return self.url_template.format(
            host=self.host if host is None else host, port=self.port if port is None else port
        )

    def answers(self, timeout: float = PROBE_TIMEOUT) -> bool:
        """True if a real server answers on this server's host and port."""
        return self.probe(self.host, self.port, timeout)


REDIS = Server(
    name="Redis",
    env_var="REDIS_URL",
    host="127.0.0.1",
    port=6379,
    scheme="redis",
    probe=redis_answers,
    url_template="redis://{host}:{port}/0",
    compose_service="redis",
    start_command="redis-server --port 6379 --daemonize yes",
    image="redis:7",
)

RABBITMQ = Server(
    name="RabbitMQ",
    env_var="AMQP_URL",
    host="127.0.0.1",
    port=5672,
    scheme="amqp",
    probe=amqp_answers,
    url_template="amqp://guest:guest@{host}:{port}/",
    compose_service="rabbitmq",
    start_command="rabbitmq-server -detached",
    image="rabbitmq:3-management",
    # The image lets guest log in from outside the container (loopback_users off).
    container_env={"RABBITMQ_DEFAULT_USER": "guest", "RABBITMQ_DEFAULT_PASS": "guest"},
)


def find_url(
    server: Server, environ: Mapping[str, str] | None = None, timeout: float = PROBE_TIMEOUT
) -> str | None:
    """The server's URL from its environment variable or its local port, else None.

    A non-empty environment variable wins and is not probed: it says where the
    server is, and a wrong one should fail loudly in the tests that use it.
    """
    env = os.environ if environ is None else environ
    url = env.get(server.env_var, "").strip()
    if url:
        return url
    if server.answers(timeout):
        return server.url()
    return None


def find_redis_url(environ: Mapping[str, str] | None = None) -> str | None:
    """REDIS_URL, else redis://127.0.0.1:6379/0 if a Redis answers there, else None."""
    return find_url(REDIS, environ)


def find_amqp_url(environ: Mapping[str, str] | None = None) -> str | None:
    """AMQP_URL, else amqp://guest:guest@127.0.0.1:5672/ if a broker answers, else None."""
    return find_url(RABBITMQ, environ)


def docker_available(environ: Mapping[str, str] | None = None) -> bool:
    """True if a Docker engine answers a ping (DOCKER_HOST etc. read from environ)."""
    try:
        import docker  # type: ignore[import-untyped,unused-ignore]
    except ImportError:
        return False
    # docker-py leaves its unix socket unclosed when the connect fails (seen with
    # docker 7.2), which surfaces as a ResourceWarning once the socket is
    # collected. Collect it here, where that warning is expected, rather than at
    # some random later point where filterwarnings=error would fail a test.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        try:
            client = docker.from_env(
                environment=dict(os.environ if environ is None else environ), timeout=5
            )
            try:
                return bool(client.ping())
            finally:
                client.close()
        except Exception:  # no engine, no permission, bad DOCKER_HOST: all "no Docker"
            return False
        finally:
            gc.collect()


CONTAINER_START_TIMEOUT = 120.0
"""Seconds a container's server gets to answer (a cold RabbitMQ takes tens of seconds)."""


def _container(server: Server) -> Any:
    """A not yet started testcontainers container for server (needs a Docker engine).

    A plain DockerContainer and our own probe: testcontainers' RabbitMQ module waits
    through pika, which is not a dependency of this project.
    """
    from testcontainers.core.container import DockerContainer

    container = DockerContainer(server.image).with_exposed_ports(server.port)
    for key, value in server.container_env.items():
        container = container.with_env(key, value)
    return container


def wait_answering(
    server: Server, host: str, port: int, timeout: float = CONTAINER_START_TIMEOUT
) -> None:
    """Return once server's probe succeeds at host:port; TimeoutError after timeout."""
    deadline = time.monotonic() + timeout
    while not server.probe(host, port, PROBE_TIMEOUT):
        if time.monotonic() >= deadline:
            raise TimeoutError(
                f"{server.name} ({server.image}) did not answer on {host}:{port} "
                f"within {timeout:g} s"
            )
        time.sleep(0.5)


@contextlib.contextmanager
def start_container(server: Server) -> Iterator[str]:
    """Run server in a testcontainers container; yield its URL; stop it on exit."""
    # The container's own context manager also removes it if start() fails half way.
    with _container(server) as container:
        host = container.get_container_host_ip()
        port = int(container.get_exposed_port(server.port))
        wait_answering(server, host, port)
        yield server.url(host, port)


def not_found_message(server: Server, docker_note: str) -> str:
    """What to tell the developer when no server was found: how to start one."""
    return (
        f"No {server.name} server for the tests.\n"
        f"Looked at: ${server.env_var} (not set); {server.host}:{server.port} "
        f"(no {server.name} answered); Docker ({docker_note}).\n"
        f"Start one, any of:\n"
        f"  - point the tests at a running server: export {server.env_var}={server.url()}\n"
        f"  - docker compose up -d redis rabbitmq   (docker-compose.yml at the repo root)\n"
        f"  - {server.start_command}\n"
        f"A backend test is never skipped: it fails until a server is reachable."
    )


def fail_not_found(server: Server, docker_note: str) -> NoReturn:
    """Fail the test (or the session fixture) with not_found_message."""
    pytest.fail(not_found_message(server, docker_note), pytrace=False)


def require(server: Server, url: str | None, docker_note: str = "no engine answered") -> str:
    """url if one was found, else fail with not_found_message."""
    if url is None:
        fail_not_found(server, docker_note)
    return url


@contextlib.contextmanager
def provide(
    server: Server,
    environ: Mapping[str, str] | None = None,
    *,
    use_docker: bool | None = None,
    timeout: float = PROBE_TIMEOUT,
) -> Iterator[str]:
    """Yield the server's URL: env var, local port, a container (stopped on exit), or fail.

    use_docker=None asks the Docker engine first; True goes straight to a container;
    False never tries one.
    """
    url = find_url(server, environ, timeout)
    if url is not None:
        yield url
        return
    if use_docker is False:
        fail_not_found(server, "not tried")
    if use_docker is None and not docker_available(environ):
        fail_not_found(server, "no engine answered")
    with contextlib.ExitStack() as stack:
        try:
            url = stack.enter_context(start_container(server))
        except Exception as exc:
            fail_not_found(
                server, f"an engine answered, but starting {server.image} failed: {exc!r}"
            )
        yield url

"""The testcontainers path and docker-compose.yml agree with what the fixtures look for.

Starting a container needs a Docker engine, which CI may not have; what can be checked
without one is checked here: the readiness wait, and that the compose file publishes
each server where ``tests/servers.py`` looks for it.
"""

from __future__ import annotations

import re
import socket
import time
from pathlib import Path

import pytest

from tests.servers import RABBITMQ, REDIS, Server, wait_answering

COMPOSE = Path(__file__).resolve().parents[2] / "docker-compose.yml"


def test_wait_answering_returns_once_the_server_answers(redis_url: str) -> None:
    started = time.monotonic()
    wait_answering(REDIS, REDIS.host, REDIS.port, timeout=5)
    assert time.monotonic() - started < 5


def test_wait_answering_times_out_naming_the_server() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(TimeoutError, match=rf"RabbitMQ \(rabbitmq:3-management\).*:{port}"):
        wait_answering(RABBITMQ, "127.0.0.1", port, timeout=0.3)


def _service_block(text: str, name: str) -> str:
    match = re.search(rf"^  {re.escape(name)}:\n((?:    .*\n|\n)*)", text, re.MULTILINE)
    assert match, f"docker-compose.yml has no service {name!r}"
    return match.group(1)


@pytest.mark.parametrize("server", [REDIS, RABBITMQ], ids=["redis", "rabbitmq"])
def test_compose_publishes_each_server_where_the_tests_look(server: Server) -> None:
    block = _service_block(COMPOSE.read_text(), server.compose_service)
    assert f'"{server.host}:{server.port}:{server.port}"' in block
    assert f"image: {server.image}" in block


def test_compose_has_the_sharded_sentinel_and_cluster_set_ups() -> None:
    text = COMPOSE.read_text()
    for name in ("redis-shard-2", "redis-shard-3", "redis-sentinel", "redis-cluster"):
        _service_block(text, name)
    for port in ("6380", "6381", "26379", "7000", "7001", "7002"):
        assert port in text

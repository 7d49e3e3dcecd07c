"""Shared fixtures: where the servers for the backend tests are (see tests/servers.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

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

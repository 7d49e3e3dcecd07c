"""The soak run's accounting: every message delivered once, rule drops counted, RSS read."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from functools import partial

import pytest

from bench.soak import HEADER, Pair, _factories, soak
from layers.base import ChannelLayer
from layers.inmemory import InMemoryChannelLayer
from layers.ipc import IPCChannelLayer
from layers.rabbitmq import RabbitMQChannelLayer
from layers.redis import RedisChannelLayer


def _small(backend: str, request: pytest.FixtureRequest) -> Pair:
    """(receiver, sender) of backend, with a small capacity (20)."""
    prefix = f"soak{secrets.token_hex(4)}"
    make: Callable[[], ChannelLayer]
    if backend == "redis":
        url = request.getfixturevalue("redis_url")
        make = partial(RedisChannelLayer, hosts=[url], prefix=prefix, capacity=20)
    elif backend == "rabbitmq":
        amqp = request.getfixturevalue("amqp_url")
        make = partial(RabbitMQChannelLayer, url=amqp, prefix=prefix, capacity=20)
    elif backend == "ipc":
        make = partial(IPCChannelLayer, name=prefix, prefix=prefix, capacity=20)
    else:
        layer = InMemoryChannelLayer(capacity=20)
        return lambda: (layer, layer)
    return lambda: (make(), make())


@pytest.mark.parametrize("backend", ["inmemory", "ipc", "redis", "rabbitmq"])
async def test_a_short_soak_accounts_for_every_message(
    backend: str, request: pytest.FixtureRequest
) -> None:
    # A small capacity, so the laggard group member fills up and drops by rule.
    report = await soak(backend, _small(backend, request), 1.0)
    assert report.sent > 100
    assert report.lost == 0
    assert report.duplicated == 0
    assert report.delivered_total == report.sent
    assert report.dropped_by_rule > 0, "the laggard never filled up"
    assert report.rss_start > 0
    assert report.rss_end > 0
    assert len(report.row().split()) == len(HEADER.split())


def test_the_soak_command_knows_every_backend() -> None:
    assert set(_factories("redis://x", "amqp://x")) == {"inmemory", "ipc", "redis", "rabbitmq"}

"""Fixtures for the RabbitMQ backend's own tests: layers on the shared broker, random prefixes."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from layers.rabbitmq import RabbitMQChannelLayer

MakeLayer = Callable[..., RabbitMQChannelLayer]


@pytest.fixture
async def rabbit(amqp_url: str) -> AsyncIterator[MakeLayer]:
    """Makes RabbitMQ layers (a random prefix unless given); flushed and closed at teardown."""
    made: list[RabbitMQChannelLayer] = []

    def make(**options: Any) -> RabbitMQChannelLayer:
        options.setdefault("url", amqp_url)
        options.setdefault("prefix", f"t{secrets.token_hex(4)}")
        layer = RabbitMQChannelLayer(**options)
        made.append(layer)
        return layer

    yield make
    for layer in made:
        if not layer.closed:
            await layer.flush()
            await layer.close()

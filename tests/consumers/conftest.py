"""A fresh in-memory 'default' layer per consumer test, chosen through the environment."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

import layers.config
from layers import ChannelLayer, get_channel_layer


@pytest.fixture(autouse=True)
async def layer(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[ChannelLayer]:
    """The layer consumers with alias 'default' get: memory://, new for this test."""
    monkeypatch.delenv("CHANNEL_LAYERS", raising=False)
    monkeypatch.setenv("CHANNEL_LAYER_URL", "memory://")
    layers.config.reset_channel_layers()
    the_layer = get_channel_layer()
    try:
        yield the_layer
    finally:
        await the_layer.close()
        layers.config.reset_channel_layers()

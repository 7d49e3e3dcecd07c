"""Our in-memory layer inside real Django Channels: settings, consumers, communicators.

Django is configured from tests/django/settings.py by the autouse fixture in
tests/django/conftest.py, and unconfigured after this module.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import channels.exceptions
import channels.layers
import pytest
from asgiref.sync import async_to_sync
from channels.generic.websocket import AsyncWebsocketConsumer, JsonWebsocketConsumer
from channels.layers import channel_layers
from channels.testing import WebsocketCommunicator
from django.test import override_settings

import layers
import layers.config
from layers.inmemory import InMemoryChannelLayer

GROUP = "room"


class AsyncRoomConsumer(AsyncWebsocketConsumer):
    groups = [GROUP]

    async def chat_message(self, event: dict[str, Any]) -> None:
        await self.send(text_data=event["text"])


class SyncRoomConsumer(JsonWebsocketConsumer):
    """Channels runs this in a thread; it joins and leaves groups through async_to_sync."""

    groups = [GROUP]

    def chat_message(self, event: dict[str, Any]) -> None:
        self.send_json({"text": event["text"]})


@pytest.fixture
async def channel_layer() -> AsyncIterator[InMemoryChannelLayer]:
    """channels' layer for "default", closed and forgotten afterwards."""
    layer = channels.layers.get_channel_layer()
    assert isinstance(layer, InMemoryChannelLayer)
    try:
        yield layer
    finally:
        await layer.close()
        channel_layers.backends = {}


@pytest.fixture
def our_layers() -> Iterator[None]:
    """An empty layers.config cache before and after the test."""
    layers.config.reset_channel_layers()
    yield
    layers.config.reset_channel_layers()


def test_channels_builds_our_layer_from_config() -> None:
    # Synchronous on purpose: no event loop; nothing to close for in-memory until used.
    layer = channels.layers.get_channel_layer()
    try:
        assert type(layer) is InMemoryChannelLayer
        assert layer.capacity == 50
        assert layer.get_capacity("any.channel") == 50
        assert channels.layers.get_channel_layer() is layer  # cached by channels
        assert channels.layers.get_channel_layer("not-configured") is None
        assert {"groups", "flush"} <= set(layer.extensions)
    finally:
        async_to_sync(layer.close)()
        channel_layers.backends = {}


async def test_async_consumer_joins_receives_group_send_and_leaves(
    channel_layer: InMemoryChannelLayer,
) -> None:
    communicator = WebsocketCommunicator(AsyncRoomConsumer.as_asgi(), "/ws/room/")
    connected, _ = await communicator.connect()
    assert connected
    try:
        [member] = await channel_layer.group_channels(GROUP)
        # The consumer's channel came from our new_channel("specific."), undoubled.
        assert member.startswith("specific.")
        assert ".." not in member
        assert "!" in member

        await channel_layer.group_send(GROUP, {"type": "chat.message", "text": "hi"})
        assert await communicator.receive_from() == "hi"

        # Point to point to the consumer's own channel works too.
        await channel_layer.send(member, {"type": "chat.message", "text": "direct"})
        assert await communicator.receive_from() == "direct"
        assert await communicator.receive_nothing()
    finally:
        await communicator.disconnect()
    assert await channel_layer.group_channels(GROUP) == []
    stats = channel_layer.stats()
    assert stats["group_sends"] == 1
    assert stats["received"] == 2


async def test_sync_consumer_with_async_to_sync_from_another_thread(
    channel_layer: InMemoryChannelLayer,
) -> None:
    communicator = WebsocketCommunicator(SyncRoomConsumer.as_asgi(), "/ws/room/")
    connected, _ = await communicator.connect()
    assert connected
    try:
        assert len(await channel_layer.group_channels(GROUP)) == 1

        def notify_from_sync_code(text: str) -> None:
            # What a Django view does. This thread has no event loop, so async_to_sync
            # runs group_send in a loop of its own: the layer wakes the consumer's
            # receive in the test's loop from there.
            layer = channels.layers.get_channel_layer()
            async_to_sync(layer.group_send)(GROUP, {"type": "chat.message", "text": text})

        await asyncio.to_thread(notify_from_sync_code, "hi")
        assert await communicator.receive_json_from() == {"text": "hi"}
    finally:
        await communicator.disconnect()
    assert await channel_layer.group_channels(GROUP) == []


async def test_channels_channel_full_catches_ours() -> None:
    assert issubclass(layers.ChannelFull, channels.exceptions.ChannelFull)
    async with InMemoryChannelLayer(capacity=1) as layer:
        await layer.send("full", {"type": "one"})
        with pytest.raises(channels.exceptions.ChannelFull):
            await layer.send("full", {"type": "two"})
        # Code written for channels_redis also catches it through the layer.
        with pytest.raises(layer.ChannelFull):
            await layer.send("full", {"type": "three"})
        assert await layer.receive("full") == {"type": "one"}


async def test_make_test_backend_uses_test_config(channel_layer: InMemoryChannelLayer) -> None:
    test_layer = channel_layers.make_test_backend("default")
    try:
        assert type(test_layer) is InMemoryChannelLayer
        assert test_layer.capacity == 7
        assert test_layer.expiry == 5
        assert test_layer is not channel_layer
        assert channel_layer.capacity == 50  # the regular CONFIG is untouched
    finally:
        await test_layer.close()


async def test_override_settings_gives_channels_a_fresh_layer(
    channel_layer: InMemoryChannelLayer,
) -> None:
    override = {
        "default": {
            "BACKEND": "layers.inmemory.InMemoryChannelLayer",
            "CONFIG": {"capacity": 3, "channel_capacity": {"http.*": 9}},
        }
    }
    with override_settings(CHANNEL_LAYERS=override):
        layer = channels.layers.get_channel_layer()
        try:
            assert layer is not channel_layer
            assert isinstance(layer, InMemoryChannelLayer)
            assert layer.get_capacity("websocket.x") == 3
            assert layer.get_capacity("http.request") == 9
        finally:
            await layer.close()
    # channels dropped its cache on each setting_changed: the next lookup builds a new
    # layer from the restored settings.
    restored = channels.layers.get_channel_layer()
    try:
        assert restored is not layer
        assert restored is not channel_layer
        assert restored.capacity == 50
    finally:
        await restored.close()


@pytest.mark.usefixtures("our_layers")
async def test_our_get_channel_layer_reads_django_settings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Django settings win over the environment when Django is configured.
    monkeypatch.setenv("CHANNEL_LAYER_URL", "memory://?capacity=3")
    monkeypatch.setenv("CHANNEL_LAYERS", '{"default": "memory://?capacity=4"}')
    layer = layers.get_channel_layer()
    try:
        assert type(layer) is InMemoryChannelLayer
        assert layer.capacity == 50  # CONFIG, not TEST_CONFIG
        assert layers.get_channel_layer() is layer
        assert layers.get_channel_layer("default") is layer
        with pytest.raises(layers.ConfigError, match="no channel layer 'other'"):
            layers.get_channel_layer("other")
    finally:
        await layer.close()
    # A closed layer is replaced on the next lookup.
    again = layers.get_channel_layer()
    try:
        assert again is not layer
        assert again.capacity == 50
    finally:
        await again.close()


@pytest.mark.usefixtures("our_layers")
async def test_both_apis_share_one_layer_per_alias() -> None:
    ours = layers.get_channel_layer()
    try:
        assert channels.layers.get_channel_layer() is ours
        channel = await ours.new_channel()
        await channels.layers.get_channel_layer().send(channel, {"type": "t"})
        async with asyncio.timeout(5):
            assert await ours.receive(channel) == {"type": "t"}
        override = {"default": {"BACKEND": "layers.inmemory.InMemoryChannelLayer"}}
        with override_settings(CHANNEL_LAYERS=override):
            inner = layers.get_channel_layer()
            assert inner is channels.layers.get_channel_layer()
            assert inner is not ours
            await inner.close()
    finally:
        await ours.close()
    replaced = layers.get_channel_layer()
    assert replaced is channels.layers.get_channel_layer()
    assert not replaced.closed
    await replaced.close()

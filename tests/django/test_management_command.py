"""manage.py chanlayers_send, run through Django's call_command."""

from __future__ import annotations

import asyncio
from typing import Any

import channels.layers
import pytest
from channels.generic.websocket import AsyncWebsocketConsumer
from channels.layers import channel_layers
from channels.testing import WebsocketCommunicator
from django.core.management import CommandError, call_command


class RoomConsumer(AsyncWebsocketConsumer):
    groups = ["room"]

    async def chat_message(self, event: dict[str, Any]) -> None:
        await self.send(text_data=event["text"])


async def test_command_reaches_a_consumer_by_group_and_by_channel() -> None:
    communicator = WebsocketCommunicator(RoomConsumer.as_asgi(), "/ws/")
    connected, _ = await communicator.connect()
    assert connected
    layer = channels.layers.get_channel_layer()
    try:
        await asyncio.to_thread(
            call_command,
            "chanlayers_send",
            "--group",
            "room",
            '{"type": "chat.message", "text": "by group"}',
        )
        assert await communicator.receive_from(timeout=5) == "by group"
        [channel] = await layer.group_channels("room")
        await asyncio.to_thread(
            call_command,
            "chanlayers_send",
            "--channel",
            channel,
            '{"type": "chat.message", "text": "direct"}',
        )
        assert await communicator.receive_from(timeout=5) == "direct"
    finally:
        await communicator.disconnect()
        await layer.close()
        channel_layers.backends = {}


@pytest.mark.parametrize(
    ("args", "text"),
    [
        (["--group", "room", "{not json"], "message is not JSON"),
        (["--group", "room", '{"no": "type"}'], 'InvalidMessage: message must have a "type"'),
        (["--channel", "bad name", '{"type": "t"}'], "InvalidChannelName"),
    ],
)
def test_bad_input_is_a_command_error(args: list[str], text: str) -> None:
    with pytest.raises(CommandError, match=text):
        call_command("chanlayers_send", *args)
    channel_layers.backends = {}

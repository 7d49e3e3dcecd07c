"""A channels consumer on our layers gets group_sends made by other OS processes."""

from __future__ import annotations

import asyncio
import json
import secrets
import subprocess
import sys
from typing import Any

import channels.layers
import pytest
from channels.generic.websocket import AsyncWebsocketConsumer
from channels.layers import channel_layers
from channels.testing import WebsocketCommunicator
from django.test import override_settings

from tests.helpers import CROSS_PROCESS_BACKENDS, cross_process_config

PUSH = (
    "import sys, json\n"
    "from layers import SyncChannelLayer\n"
    "with SyncChannelLayer(sys.argv[1]) as layer:\n"
    "    layer.group_send('room', json.loads(sys.argv[2]))\n"
)


class RoomConsumer(AsyncWebsocketConsumer):
    groups = ["room"]

    async def chat_message(self, event: dict[str, Any]) -> None:
        await self.send(text_data=event["text"])


def run(*args: str) -> None:
    result = subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


@pytest.fixture(params=CROSS_PROCESS_BACKENDS)
def shared_layer(request: pytest.FixtureRequest) -> tuple[dict[str, Any], str]:
    """(a CHANNEL_LAYERS entry, the URL of the same layer) for a cross-process backend."""
    return cross_process_config(request, request.param, f"dj{secrets.token_hex(4)}")


async def test_script_and_cli_reach_a_channels_consumer(
    shared_layer: tuple[dict[str, Any], str],
) -> None:
    entry, url = shared_layer
    config = {"default": entry}
    with override_settings(CHANNEL_LAYERS=config):
        communicator = WebsocketCommunicator(RoomConsumer.as_asgi(), "/ws/room/")
        connected, _ = await communicator.connect()
        assert connected
        try:
            event = {"type": "chat.message", "text": "from a script"}
            await asyncio.to_thread(run, "-c", PUSH, url, json.dumps(event))
            assert await communicator.receive_from(timeout=10) == "from a script"
            event = {"type": "chat.message", "text": "from the CLI"}
            await asyncio.to_thread(
                run, "-m", "layers", "group-send", "--layer", url, "room", json.dumps(event)
            )
            assert await communicator.receive_from(timeout=10) == "from the CLI"
        finally:
            await communicator.disconnect()
            layer = channels.layers.get_channel_layer()
            await layer.flush()
            await layer.close()
            channel_layers.backends = {}

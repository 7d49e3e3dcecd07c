"""WebSocket consumers under ApplicationCommunicator (raw ASGI messages) and memory://."""

from __future__ import annotations

import logging
import threading
from typing import Any

import pytest
from asgiref.testing import ApplicationCommunicator

from consumers import (
    AsyncJsonWebsocketConsumer,
    AsyncWebsocketConsumer,
    JsonWebsocketConsumer,
    WebsocketConsumer,
)
from consumers.testing import WebsocketCommunicator
from layers import ChannelLayer

SCOPE = {"type": "websocket", "path": "/ws/", "subprotocols": ["chat.v1"]}


class Echo(AsyncWebsocketConsumer):
    """Echoes frames; 'bye' echoes then closes, 'close' closes with a code and reason."""

    groups = ["room"]
    events: list[Any] = []

    async def connect(self) -> None:
        await self.accept(subprotocol="chat.v1", headers=[(b"x-hello", b"1")])

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        self.events.append(("receive", threading.get_ident()))
        if text_data == "close":
            await self.close(code=4000, reason="asked")
        else:
            await self.send(text_data=text_data, bytes_data=bytes_data, close=text_data == "bye")

    async def disconnect(self, code: int) -> None:
        self.events.append(("disconnect", code))

    async def room_message(self, event: dict[str, Any]) -> None:
        await self.send(text_data=event["text"])


class SyncEcho(WebsocketConsumer):
    """The same, as plain functions in a worker thread."""

    groups = ["room"]
    events: list[Any] = []

    def connect(self) -> None:
        self.accept(subprotocol="chat.v1", headers=[(b"x-hello", b"1")])

    def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        self.events.append(("receive", threading.get_ident()))
        if text_data == "close":
            self.close(code=4000, reason="asked")
        else:
            self.send(text_data=text_data, bytes_data=bytes_data, close=text_data == "bye")

    def disconnect(self, code: int) -> None:
        self.events.append(("disconnect", code))

    def room_message(self, event: dict[str, Any]) -> None:
        self.send(text_data=event["text"])


class JsonEcho(AsyncJsonWebsocketConsumer):
    async def receive_json(self, content: Any) -> None:
        await self.send_json({"echo": content})


class SyncJsonEcho(JsonWebsocketConsumer):
    def receive_json(self, content: Any) -> None:
        self.send_json({"echo": content})


ECHOES = [Echo, SyncEcho]
JSON_ECHOES = [JsonEcho, SyncJsonEcho]
AnyEcho = type[Echo] | type[SyncEcho]


async def connected(consumer: Any, **initkwargs: Any) -> ApplicationCommunicator:
    comm = ApplicationCommunicator(consumer.as_asgi(**initkwargs), SCOPE)
    await comm.send_input({"type": "websocket.connect"})
    accept = await comm.receive_output(timeout=1)
    assert accept["type"] == "websocket.accept"
    return comm


async def disconnect(comm: ApplicationCommunicator, code: int = 1000) -> None:
    """Tell the consumer the socket closed and check it ended cleanly."""
    await comm.send_input({"type": "websocket.disconnect", "code": code})
    await comm.wait(timeout=1)
    assert comm.future.exception() is None


@pytest.mark.parametrize("consumer", ECHOES)
async def test_accept_with_subprotocol_and_headers(consumer: AnyEcho) -> None:
    comm = ApplicationCommunicator(consumer.as_asgi(), SCOPE)
    await comm.send_input({"type": "websocket.connect"})
    assert await comm.receive_output(timeout=1) == {
        "type": "websocket.accept",
        "subprotocol": "chat.v1",
        "headers": [(b"x-hello", b"1")],
    }
    await disconnect(comm)


@pytest.mark.parametrize("consumer", [AsyncWebsocketConsumer, WebsocketConsumer])
async def test_default_connect_accepts(consumer: type[AsyncWebsocketConsumer]) -> None:
    comm = ApplicationCommunicator(consumer.as_asgi(), SCOPE)
    await comm.send_input({"type": "websocket.connect"})
    assert await comm.receive_output(timeout=1) == {"type": "websocket.accept", "subprotocol": None}
    await comm.send_input({"type": "websocket.receive", "text": "ignored"})
    await disconnect(comm)


@pytest.mark.parametrize("consumer", ECHOES)
async def test_text_and_bytes_frames(consumer: AnyEcho) -> None:
    comm = await connected(consumer, events=[])
    await comm.send_input({"type": "websocket.receive", "text": "hi"})
    assert await comm.receive_output(timeout=1) == {"type": "websocket.send", "text": "hi"}
    await comm.send_input({"type": "websocket.receive", "bytes": b"\x00\x01"})
    assert await comm.receive_output(timeout=1) == {"type": "websocket.send", "bytes": b"\x00\x01"}
    await disconnect(comm)


@pytest.mark.parametrize("consumer", ECHOES)
async def test_send_with_close_and_close_with_code(consumer: AnyEcho) -> None:
    comm = await connected(consumer, events=[])
    await comm.send_input({"type": "websocket.receive", "text": "bye"})
    assert await comm.receive_output(timeout=1) == {"type": "websocket.send", "text": "bye"}
    assert await comm.receive_output(timeout=1) == {"type": "websocket.close"}
    await comm.send_input({"type": "websocket.receive", "text": "close"})
    assert await comm.receive_output(timeout=1) == {
        "type": "websocket.close",
        "code": 4000,
        "reason": "asked",
    }
    await disconnect(comm)


@pytest.mark.parametrize("consumer", ECHOES)
async def test_groups_joined_reached_and_left(consumer: AnyEcho, layer: ChannelLayer) -> None:
    events: list[Any] = []
    comm = await connected(consumer, events=events)
    [channel] = await layer.group_channels("room")
    await layer.group_send("room", {"type": "room.message", "text": "to all"})
    assert await comm.receive_output(timeout=1) == {"type": "websocket.send", "text": "to all"}
    await disconnect(comm, code=1001)
    assert await layer.group_channels("room") == []
    assert events == [("disconnect", 1001)]
    assert channel.startswith("specific.")


async def test_groups_are_joined_before_connect_runs(layer: ChannelLayer) -> None:
    seen: list[list[str]] = []

    class Peek(AsyncWebsocketConsumer):
        groups = ["a", "b"]

        async def connect(self) -> None:
            assert self.channel_layer is not None
            seen.append(await self.channel_layer.group_channels("b"))
            await self.close()

    comm = ApplicationCommunicator(Peek.as_asgi(), SCOPE)
    await comm.send_input({"type": "websocket.connect"})
    # Closing before accept rejects the handshake.
    assert await comm.receive_output(timeout=1) == {"type": "websocket.close"}
    await disconnect(comm, code=1006)
    assert len(seen[0]) == 1
    assert await layer.group_channels("a") == []


@pytest.mark.parametrize("consumer", ECHOES)
async def test_disconnect_without_code_is_1005(consumer: AnyEcho) -> None:
    events: list[Any] = []
    comm = await connected(consumer, events=events)
    await comm.send_input({"type": "websocket.disconnect"})
    await comm.wait(timeout=1)
    assert events == [("disconnect", 1005)]


async def test_sync_hooks_run_in_a_worker_thread() -> None:
    events: list[Any] = []
    comm = await connected(SyncEcho, events=events)
    await comm.send_input({"type": "websocket.receive", "text": "hi"})
    await comm.receive_output(timeout=1)
    await disconnect(comm)
    assert events[0][0] == "receive"
    assert events[0][1] != threading.get_ident()


@pytest.mark.parametrize("consumer", ECHOES)
async def test_send_needs_exactly_one_payload(consumer: AnyEcho) -> None:
    comm = await connected(consumer, events=[])
    # A frame with neither text nor bytes: the echo passes both on as None, a bug in the app.
    await comm.send_input({"type": "websocket.receive"})
    with pytest.raises(ValueError, match="exactly one"):
        await comm.wait(timeout=1)


@pytest.mark.parametrize("consumer", ECHOES)
async def test_layer_messages_cannot_call_the_websocket_api(
    consumer: AnyEcho, layer: ChannelLayer
) -> None:
    comm = await connected(consumer, events=[])
    await layer.group_send("room", {"type": "close", "code": 1000})
    with pytest.raises(ValueError, match="'close'"):
        await comm.wait(timeout=1)


@pytest.mark.parametrize("consumer", JSON_ECHOES)
async def test_json_round_trip(consumer: type[JsonEcho] | type[SyncJsonEcho]) -> None:
    comm = await connected(consumer)
    await comm.send_input({"type": "websocket.receive", "text": '{"n": [1, 2]}'})
    assert await comm.receive_output(timeout=1) == {
        "type": "websocket.send",
        "text": '{"echo": {"n": [1, 2]}}',
    }
    await disconnect(comm)


@pytest.mark.parametrize("consumer", JSON_ECHOES)
async def test_a_binary_frame_to_a_json_consumer_raises_value_error(
    consumer: type[JsonEcho] | type[SyncJsonEcho],
) -> None:
    comm = await connected(consumer)
    await comm.send_input({"type": "websocket.receive", "bytes": b'{"a": 1}'})
    with pytest.raises(ValueError, match="binary WebSocket frame"):
        await comm.wait(timeout=1)


@pytest.mark.parametrize("consumer", JSON_ECHOES)
@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ({"text": "{not json"}, 1007),
        ({"text": "[" * 100_000}, 1007),
    ],
)
async def test_bad_json_closes_and_logs_without_raising(
    consumer: type[JsonEcho] | type[SyncJsonEcho],
    frame: dict[str, Any],
    code: int,
    caplog: pytest.LogCaptureFixture,
) -> None:
    comm = await connected(consumer)
    with caplog.at_level(logging.WARNING, logger="consumers"):
        await comm.send_input({"type": "websocket.receive", **frame})
        assert await comm.receive_output(timeout=1) == {"type": "websocket.close", "code": code}
    assert any(f"closing with {code}" in r.getMessage() for r in caplog.records)
    await disconnect(comm, code=code)


@pytest.mark.parametrize(
    "headers",
    [[[b"x-list", b"1"]], [(b"x-tuple", b"2")]],
)
async def test_accept_passes_headers_on_as_given(headers: list[Any]) -> None:
    class Headed(AsyncWebsocketConsumer):
        async def connect(self) -> None:
            await self.accept(headers=headers)

    comm = WebsocketCommunicator(Headed.as_asgi(), "/ws/")
    assert (await comm.connect())[0] is True
    assert comm.response_headers == headers
    await comm.disconnect()


async def test_accept_refuses_headers_that_are_not_byte_pairs() -> None:
    class Bad(AsyncWebsocketConsumer):
        async def connect(self) -> None:
            await self.accept(headers=[("x-str", "1")])  # type: ignore[list-item]

    comm = WebsocketCommunicator(Bad.as_asgi(), "/ws/")
    await comm.send_input({"type": "websocket.connect"})
    with pytest.raises(TypeError, match="pairs of bytes"):
        await comm.wait(timeout=1)

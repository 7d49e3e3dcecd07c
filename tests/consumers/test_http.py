"""AsyncHttpConsumer: responses, streaming, long-poll on a group, timeout, disconnect."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from consumers import AsyncHttpConsumer
from consumers.testing import HttpCommunicator
from layers import ChannelLayer


class LongPoll(AsyncHttpConsumer):
    """Waits for one 'news' group message; 204 after the timeout given to as_asgi."""

    groups = ["news"]
    events: list[str] = []

    async def handle(self, body: bytes) -> None:
        self.events.append(f"handle {body.decode()}")

    async def news_item(self, event: dict[str, Any]) -> None:
        payload = json.dumps({"headline": event["headline"]}).encode()
        await self.send_response(200, payload, headers={"Content-Type": "application/json"})

    async def disconnect(self) -> None:
        self.events.append("disconnect")


class Stream(AsyncHttpConsumer):
    """Starts a stream at once; each 'tick' message adds a line, 'done' ends it."""

    groups = ["ticks"]

    async def handle(self, body: bytes) -> None:
        await self.send_headers(headers=[("content-type", "text/plain")])
        await self.send_body(b"start\n", more_body=True)

    async def tick(self, event: dict[str, Any]) -> None:
        await self.send_body(f"{event['n']}\n".encode(), more_body=not event.get("last"))


async def wait_for_members(layer: ChannelLayer, group: str, count: int) -> list[str]:
    async with asyncio.timeout(2):
        while len(members := await layer.group_channels(group)) != count:
            await asyncio.sleep(0.005)
    return members


async def test_long_poll_answers_when_the_group_message_arrives(layer: ChannelLayer) -> None:
    events: list[str] = []
    comm = HttpCommunicator(LongPoll.as_asgi(events=events), "POST", "/poll", body=b"since=3")
    await comm.send_request()
    await wait_for_members(layer, "news", 1)
    assert await comm.receive_nothing() is True
    await layer.group_send("news", {"type": "news.item", "headline": "it works"})
    response = await comm.get_response()
    assert response["status"] == 200
    assert response["headers"] == [(b"Content-Type", b"application/json")]
    assert json.loads(response["body"]) == {"headline": "it works"}
    await comm.wait()
    assert events == ["handle since=3", "disconnect"]
    assert await layer.group_channels("news") == []


async def test_long_poll_times_out_with_204(layer: ChannelLayer) -> None:
    comm = HttpCommunicator(LongPoll.as_asgi(timeout=0.05, events=[]), "GET", "/poll")
    response = await comm.get_response(timeout=2)
    assert response == {"status": 204, "headers": [], "body": b""}
    await comm.wait()
    assert await layer.group_channels("news") == []


async def test_client_gone_before_the_answer_leaves_the_group(layer: ChannelLayer) -> None:
    events: list[str] = []
    comm = HttpCommunicator(LongPoll.as_asgi(events=events), "GET", "/poll")
    await comm.send_request()
    await wait_for_members(layer, "news", 1)
    await comm.send_input({"type": "http.disconnect"})
    await comm.wait()
    assert events == ["handle ", "disconnect"]
    assert await layer.group_channels("news") == []


async def test_cancelled_long_poll_leaves_the_group(layer: ChannelLayer) -> None:
    comm = HttpCommunicator(LongPoll.as_asgi(events=[]), "GET", "/poll")
    await comm.send_request()
    await wait_for_members(layer, "news", 1)
    comm.future.cancel()
    with pytest.raises(asyncio.CancelledError):
        await comm.future
    assert await layer.group_channels("news") == []


async def test_streamed_body_from_group_messages_and_timeout_ends_a_stream(
    layer: ChannelLayer,
) -> None:
    comm = HttpCommunicator(Stream.as_asgi(), "GET", "/stream")
    await comm.send_request()
    start = await comm.receive_output()
    assert start["status"] == 200
    assert (await comm.receive_output())["body"] == b"start\n"
    await layer.group_send("ticks", {"type": "tick", "n": 1})
    await layer.group_send("ticks", {"type": "tick", "n": 2, "last": True})
    assert [(await comm.receive_output())["body"] for _ in range(2)] == [b"1\n", b"2\n"]
    await comm.wait()

    timed = HttpCommunicator(Stream.as_asgi(timeout=0.05), "GET", "/stream")
    response = await timed.get_response(timeout=2)
    assert response["body"] == b"start\n"


async def test_request_body_in_parts() -> None:
    class Length(AsyncHttpConsumer):
        async def handle(self, body: bytes) -> None:
            await self.send_response(200, str(len(body)).encode())

    comm = HttpCommunicator(Length.as_asgi(), "POST", "/")
    comm.sent_request = True
    await comm.send_input({"type": "http.request", "body": b"abc", "more_body": True})
    await comm.send_input({"type": "http.request", "body": b"de"})
    assert (await comm.get_response())["body"] == b"5"


async def crash(consumer: type[AsyncHttpConsumer]) -> None:
    """Run one GET through consumer and re-raise what ended it."""
    comm = HttpCommunicator(consumer.as_asgi(), "GET", "/")
    await comm.send_request()
    await comm.wait()


async def test_misuse_is_refused_clearly() -> None:
    class Wrong(AsyncHttpConsumer):
        async def handle(self, body: bytes) -> None:
            await self.send_body(b"no headers yet")

    with pytest.raises(RuntimeError, match="send_headers\\(\\) must come before"):
        await crash(Wrong)

    class Twice(AsyncHttpConsumer):
        async def handle(self, body: bytes) -> None:
            await self.send_headers(status=200)
            await self.send_headers(status=500)

    with pytest.raises(RuntimeError, match="already started"):
        await crash(Twice)

    class BadStatus(AsyncHttpConsumer):
        async def handle(self, body: bytes) -> None:
            await self.send_response(42, b"")

    with pytest.raises(ValueError, match="status must be an int from 100 to 599, got 42"):
        await crash(BadStatus)

    with pytest.raises(NotImplementedError, match="must define handle"):
        await crash(AsyncHttpConsumer)


async def test_layer_messages_cannot_call_the_http_api(layer: ChannelLayer) -> None:
    comm = HttpCommunicator(LongPoll.as_asgi(events=[]), "GET", "/poll")
    await comm.send_request()
    [channel] = await wait_for_members(layer, "news", 1)
    await layer.send(channel, {"type": "send.response", "status": 200, "body": b"forged"})
    with pytest.raises(ValueError, match="'send.response': it names consumer API"):
        await comm.wait()
    assert await layer.group_channels("news") == []

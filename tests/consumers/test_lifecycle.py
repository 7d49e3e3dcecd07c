"""Lifecycle: DenyConnection/AcceptConnection, groups left on cancel or crash, no read-ahead."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from consumers import (
    AcceptConnection,
    AsyncConsumer,
    AsyncWebsocketConsumer,
    DenyConnection,
    StopConsumer,
    WebsocketConsumer,
)
from consumers.testing import WebsocketCommunicator
from layers import ChannelLayer, ChannelLayerClosed


class Deny(AsyncWebsocketConsumer):
    groups = ["guarded"]

    async def connect(self) -> None:
        raise DenyConnection


class SyncDeny(WebsocketConsumer):
    groups = ["guarded"]

    def connect(self) -> None:
        raise DenyConnection


class Accept(WebsocketConsumer):
    def connect(self) -> None:
        raise AcceptConnection


class Member(AsyncWebsocketConsumer):
    groups = ["lobby", "all"]


@pytest.mark.parametrize("consumer", [Deny, SyncDeny])
async def test_deny_connection_closes_and_leaves_groups(
    consumer: type[Deny] | type[SyncDeny], layer: ChannelLayer
) -> None:
    comm = WebsocketCommunicator(consumer.as_asgi(), "/ws/")
    assert await comm.connect() == (False, 1000)
    assert await layer.group_channels("guarded") == []
    await comm.disconnect(code=1006)
    assert comm.future.exception() is None


async def test_accept_connection_accepts() -> None:
    comm = WebsocketCommunicator(Accept.as_asgi(), "/ws/")
    assert await comm.connect() == (True, None)
    await comm.disconnect()


async def test_cancelled_without_disconnect_leaves_its_groups(layer: ChannelLayer) -> None:
    comm = WebsocketCommunicator(Member.as_asgi(), "/ws/")
    assert (await comm.connect())[0] is True
    other = WebsocketCommunicator(Member.as_asgi(), "/ws/")
    await other.connect()
    assert len(await layer.group_channels("lobby")) == 2
    # What a server does at shutdown to a connection it never saw close.
    comm.future.cancel()
    with pytest.raises(asyncio.CancelledError):
        await comm.future
    assert len(await layer.group_channels("lobby")) == 1
    assert len(await layer.group_channels("all")) == 1
    await other.disconnect()
    assert await layer.group_channels("lobby") == []


async def test_a_crashing_consumer_leaves_its_groups(layer: ChannelLayer) -> None:
    class Crash(AsyncWebsocketConsumer):
        groups = ["lobby"]

        async def receive(self, text_data: str | None = None, bytes_data: Any = None) -> None:
            raise RuntimeError("boom")

    comm = WebsocketCommunicator(Crash.as_asgi(), "/ws/")
    await comm.connect()
    await comm.send_to(text_data="x")
    with pytest.raises(RuntimeError, match="boom"):
        await comm.wait()
    assert await layer.group_channels("lobby") == []


async def test_the_client_source_is_read_again_only_after_the_handler() -> None:
    """No read-ahead: the worker relies on it to know a job is done and to lose none."""
    release, busy = asyncio.Event(), asyncio.Event()
    inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    calls = 0

    async def receive() -> dict[str, Any]:
        nonlocal calls
        calls += 1
        return await inbox.get()

    class Slow(AsyncConsumer):
        async def work(self, message: dict[str, Any]) -> None:
            busy.set()
            await release.wait()

        async def stop(self, message: dict[str, Any]) -> None:
            raise StopConsumer

    async def send(message: dict[str, Any]) -> None:
        raise AssertionError(message)

    task = asyncio.create_task(Slow.as_asgi()({"type": "test"}, receive, send))
    await inbox.put({"type": "work"})
    await busy.wait()
    await inbox.put({"type": "stop"})
    await asyncio.sleep(0.01)  # time for a read-ahead, were there one
    assert calls == 1
    assert inbox.qsize() == 1
    release.set()
    await asyncio.wait_for(task, timeout=1)
    assert calls == 2


async def test_leaving_with_a_closed_layer_logs_instead_of_hiding_the_cause(
    layer: ChannelLayer, caplog: pytest.LogCaptureFixture
) -> None:
    comm = WebsocketCommunicator(Member.as_asgi(), "/ws/")
    await comm.connect()
    await layer.close()
    # The consumer's own receive ends with the layer's error, which is what surfaces.
    with pytest.raises(ChannelLayerClosed):
        await asyncio.wait_for(comm.future, timeout=1)
    assert "Member could not leave group 'lobby' on exit" in caplog.text

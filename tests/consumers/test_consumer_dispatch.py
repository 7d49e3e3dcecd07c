"""AsyncConsumer and SyncConsumer under asgiref's ApplicationCommunicator and memory://."""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any

import pytest
from asgiref.testing import ApplicationCommunicator

from consumers import AsyncConsumer, StopConsumer, SyncConsumer
from layers import ChannelLayer

SCOPE = {"type": "test"}


class Echo(AsyncConsumer):
    """Echoes chat messages, tells its channel name, stops on request."""

    greeting = "hello"

    async def chat_message(self, message: dict[str, Any]) -> None:
        await self.send({"type": "echo", "text": message["text"], "greeting": self.greeting})

    async def whoami(self, message: dict[str, Any]) -> None:
        await self.send({"type": "me", "channel": self.channel_name, "id": id(self)})

    async def stop(self, message: dict[str, Any]) -> None:
        raise StopConsumer


class SyncEcho(SyncConsumer):
    """The same, as plain functions in a thread."""

    def chat_message(self, message: dict[str, Any]) -> None:
        self.send({"type": "echo", "text": message["text"], "thread": threading.get_ident()})

    def stop(self, message: dict[str, Any]) -> None:
        raise StopConsumer


async def finish(comm: ApplicationCommunicator) -> None:
    """Stop the consumer through its handler and check it ended cleanly."""
    await comm.send_input({"type": "stop"})
    await comm.wait(timeout=1)
    assert comm.future.done()


@pytest.mark.parametrize("consumer", [Echo, SyncEcho])
async def test_dispatch_by_type(consumer: type[AsyncConsumer | SyncConsumer]) -> None:
    comm = ApplicationCommunicator(consumer.as_asgi(), SCOPE)
    await comm.send_input({"type": "chat.message", "text": "hi"})
    reply = await comm.receive_output(timeout=1)
    assert reply["type"] == "echo"
    assert reply["text"] == "hi"
    await finish(comm)


@pytest.mark.parametrize("consumer", [Echo, SyncEcho])
@pytest.mark.parametrize(
    ("message", "text"),
    [
        ({"type": "_private"}, r"Malformed type in message \(leading underscore\): '_private'"),
        ({"type": ".chat"}, "'.chat'"),
        ({"type": "chat__message"}, "'chat__message'"),
        ({"type": 5}, "got 5"),
        ({"text": "no type"}, "got None"),
        ({"type": "send"}, "'send'"),
        ({"type": "dispatch"}, "'dispatch'"),
        ({"type": "channel.name"}, "'channel.name'"),
    ],
)
async def test_malformed_type_is_refused(
    consumer: type[AsyncConsumer | SyncConsumer], message: dict[str, Any], text: str
) -> None:
    comm = ApplicationCommunicator(consumer.as_asgi(), SCOPE)
    await comm.send_input(message)
    with pytest.raises(ValueError, match=text):
        await comm.wait(timeout=1)


@pytest.mark.parametrize("consumer", [Echo, SyncEcho])
async def test_unknown_type_is_logged_and_ignored(
    consumer: type[AsyncConsumer | SyncConsumer], caplog: pytest.LogCaptureFixture
) -> None:
    comm = ApplicationCommunicator(consumer.as_asgi(), SCOPE)
    with caplog.at_level(logging.WARNING, logger="consumers"):
        await comm.send_input({"type": "no.such.thing"})
        await comm.send_input({"type": "chat.message", "text": "still here"})
        reply = await comm.receive_output(timeout=1)
    assert reply["text"] == "still here"
    assert any(
        r.levelno == logging.WARNING and "'no.such.thing'" in r.getMessage() for r in caplog.records
    )
    await finish(comm)


async def test_layer_and_client_messages_both_flow(layer: ChannelLayer) -> None:
    comm = ApplicationCommunicator(Echo.as_asgi(), SCOPE)
    await comm.send_input({"type": "whoami"})
    channel = (await comm.receive_output(timeout=1))["channel"]
    assert channel.startswith("specific.")

    await layer.send(channel, {"type": "chat.message", "text": "via layer"})
    assert (await comm.receive_output(timeout=1))["text"] == "via layer"
    await comm.send_input({"type": "chat.message", "text": "via client"})
    assert (await comm.receive_output(timeout=1))["text"] == "via client"
    await layer.send(channel, {"type": "chat.message", "text": "layer again"})
    assert (await comm.receive_output(timeout=1))["text"] == "layer again"
    await finish(comm)


async def test_no_layer_alias_means_no_layer() -> None:
    class Alone(Echo):
        channel_layer_alias = None

    comm = ApplicationCommunicator(Alone.as_asgi(), SCOPE)
    await comm.send_input({"type": "whoami"})
    assert (await comm.receive_output(timeout=1))["channel"] is None
    await finish(comm)


async def test_sync_handler_runs_in_another_thread() -> None:
    comm = ApplicationCommunicator(SyncEcho.as_asgi(), SCOPE)
    await comm.send_input({"type": "chat.message", "text": "hi"})
    reply = await comm.receive_output(timeout=1)
    assert reply["thread"] != threading.get_ident()
    await finish(comm)


async def test_stop_consumer_ends_the_app() -> None:
    comm = ApplicationCommunicator(Echo.as_asgi(), SCOPE)
    await comm.send_input({"type": "stop"})
    await comm.wait(timeout=1)
    assert comm.future.done()
    assert not comm.future.cancelled()
    assert comm.future.exception() is None


async def test_as_asgi_builds_a_new_instance_per_connection() -> None:
    app = Echo.as_asgi(greeting="hi there")
    first = ApplicationCommunicator(app, SCOPE)
    second = ApplicationCommunicator(app, SCOPE)
    ids = []
    for comm in (first, second):
        await comm.send_input({"type": "whoami"})
        ids.append((await comm.receive_output(timeout=1))["id"])
        await comm.send_input({"type": "chat.message", "text": "x"})
        assert (await comm.receive_output(timeout=1))["greeting"] == "hi there"
    assert ids[0] != ids[1]
    for comm in (first, second):
        await finish(comm)
    assert Echo.greeting == "hello"


async def test_as_asgi_refuses_unknown_initkwargs() -> None:
    with pytest.raises(TypeError, match="'greting'"):
        Echo.as_asgi(greting="typo")


async def test_cancelled_consumer_leaves_no_listener_tasks() -> None:
    comm = ApplicationCommunicator(Echo.as_asgi(), SCOPE)
    await comm.send_input({"type": "whoami"})
    await comm.receive_output(timeout=1)
    # The consumer plus its two receives (client and layer) are running now.
    assert len(asyncio.all_tasks() - {asyncio.current_task()}) == 3
    comm.stop()
    with pytest.raises(asyncio.CancelledError):
        await comm.future
    assert asyncio.all_tasks() == {asyncio.current_task()}

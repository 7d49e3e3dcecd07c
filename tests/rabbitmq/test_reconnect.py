"""A cut link: the layer reconnects, re-declares and re-binds, and loses nothing confirmed.

A TcpProxy (tests/faults/proxy.py) sits between the layer and the shared broker, so
cutting it never touches the broker or other clients.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest

from layers.exceptions import ChannelLayerConnectionError
from layers.rabbitmq.connections import Link, Links
from tests.faults.proxy import TcpProxy
from tests.helpers import msg, nothing, recv
from tests.rabbitmq.broker import delete_queue, queue_exists
from tests.rabbitmq.conftest import MakeLayer


@pytest.fixture
def proxy(amqp_url: str) -> Iterator[TcpProxy]:
    """A proxy to the broker of amqp_url (asked for before `rabbit`, so it outlives its layers)."""
    parts = urlsplit(amqp_url)
    with TcpProxy(parts.hostname or "127.0.0.1", parts.port or 5672) as running:
        yield running


def via(proxy: TcpProxy, amqp_url: str) -> str:
    """amqp_url, pointed at the proxy."""
    parts = urlsplit(amqp_url)
    host, port = proxy.address
    netloc = f"{parts.username}:{parts.password}@{host}:{port}"
    return parts._replace(netloc=netloc).geturl()


async def _until_async(condition: Callable[[], Awaitable[bool]], timeout: float = 10) -> None:
    async with asyncio.timeout(timeout):
        while not await condition():
            await asyncio.sleep(0.05)


async def _until(condition: object, timeout: float = 10) -> None:
    async with asyncio.timeout(timeout):
        while not condition():  # type: ignore[operator]
            await asyncio.sleep(0.05)


async def test_reconnects_and_restores_groups_and_consumers(
    proxy: TcpProxy, rabbit: MakeLayer, amqp_url: str
) -> None:
    cut_off = rabbit(url=via(proxy, amqp_url))
    peer = rabbit(prefix=cut_off.prefix)
    channel = await cut_off.new_channel()
    await cut_off.group_add("room", channel)
    waiting = asyncio.ensure_future(recv(cut_off, "work", timeout=20))
    await asyncio.sleep(0.2)
    accepted = proxy.stats.accepted
    proxy.refuse()
    assert proxy.cut() >= 1
    # While it is away, its inbox goes too (a broker restart, or x-expires).
    inbox = cut_off.stats()["inbox"]
    await delete_queue(amqp_url, inbox)
    proxy.accept()
    await _until(lambda: proxy.stats.accepted > accepted)  # aio-pika reconnected
    await _until_async(lambda: queue_exists(amqp_url, inbox))  # declared again
    await asyncio.sleep(0.3)  # the reconnect callback re-binds its groups
    await peer.send("work", msg(1))
    assert (await waiting)["seq"] == 1
    await peer.group_send("room", msg(2))
    assert (await recv(cut_off, channel, timeout=10))["seq"] == 2
    await cut_off.send("back", msg(3))  # and it publishes again
    assert (await recv(peer, "back"))["seq"] == 3


async def test_a_send_during_an_outage_waits_then_raises(
    proxy: TcpProxy, rabbit: MakeLayer, amqp_url: str
) -> None:
    layer = rabbit(url=via(proxy, amqp_url), connect_timeout=0.5)
    await layer.send("out", msg(0))
    proxy.refuse()
    proxy.cut()
    started = time.monotonic()
    with pytest.raises(ChannelLayerConnectionError, match="did not answer within 0.5s"):
        await layer.send("out", msg(1))
    assert time.monotonic() - started < 5
    proxy.accept()
    async with asyncio.timeout(15):
        while True:  # the robust connection comes back on its own
            try:
                await layer.send("out", msg(2))
                break
            except ChannelLayerConnectionError:
                await asyncio.sleep(0.2)
    assert [(await recv(layer, "out"))["seq"] for _ in range(2)] == [0, 2]


async def test_a_cut_while_the_layer_rebinds_does_not_hold_up_the_next_reconnect(
    proxy: TcpProxy, rabbit: MakeLayer, amqp_url: str
) -> None:
    # aio-pika awaits its reconnect callbacks inside the reconnect. The layer's re-binds
    # its inbox there; cut again meanwhile, a re-bind that waited for the link would hold
    # up the next reconnect for connect_timeout (8 s), and a send waiting for it fail.
    layer = rabbit(url=via(proxy, amqp_url), connect_timeout=8)
    channel = await layer.new_channel()
    await layer.group_add("room", channel)  # the inbox has something to re-bind
    link = await layer.links.here()
    cuts: list[int] = []

    def cut_once(*_: Any) -> None:
        # Runs in the same reconnect as the layer's callback, whose re-bind then waits.
        if not cuts:
            cuts.append(proxy.cut())

    link.connection.reconnect_callbacks.add(cut_once)
    proxy.cut()
    await _until(lambda: bool(cuts))
    started = time.monotonic()
    await layer.send("after.cuts", msg(1))  # waits for the second reconnect
    assert time.monotonic() - started < 5
    await layer.group_send("room", msg(2))  # and the re-bind was done after it
    assert (await recv(layer, channel, timeout=10))["seq"] == 2
    assert (await recv(layer, "after.cuts"))["seq"] == 1


@pytest.mark.parametrize("in_flight", [1, 20])
async def test_nothing_confirmed_is_lost_when_the_link_drops(
    proxy: TcpProxy, rabbit: MakeLayer, amqp_url: str, in_flight: int
) -> None:
    # in_flight: sends awaited together, their publishes and confirms in flight at once.
    sender = rabbit(url=via(proxy, amqp_url), capacity=1000)
    receiver = rabbit(prefix=sender.prefix, capacity=1000)
    confirmed: list[int] = []

    async def send_one(i: int) -> None:
        try:
            await sender.send("keep", msg(i))
        except ChannelLayerConnectionError:
            return
        confirmed.append(i)

    async def send_all() -> None:
        for start in range(0, 200, in_flight):
            await asyncio.gather(*(send_one(i) for i in range(start, start + in_flight)))

    sending = asyncio.ensure_future(send_all())
    while len(confirmed) < 50:
        await asyncio.sleep(0.005)
    proxy.cut()
    await asyncio.wait_for(sending, 30)
    got = set()
    while len(got) < len(set(confirmed)):
        got.add((await recv(receiver, "keep", timeout=10))["seq"])
    assert set(confirmed) <= got


async def test_prefetched_messages_are_not_received_twice_after_a_cut(
    proxy: TcpProxy, rabbit: MakeLayer, amqp_url: str
) -> None:
    # Deliveries buffered when the link dropped were requeued by the broker and come
    # again on the new channel: the buffered copies must be skipped, not received too.
    receiver = rabbit(url=via(proxy, amqp_url), prefetch_count=10)
    sender = rabbit(prefix=receiver.prefix)
    for i in range(5):
        await sender.send("prefetched", msg(i))
    assert (await recv(receiver, "prefetched"))["seq"] == 0  # 1-4 now sit in its buffer
    await asyncio.sleep(0.02)  # the ack of 0 reaches the broker; the consumer lingers
    accepted = proxy.stats.accepted
    link = receiver.links.all()[0]
    proxy.cut()
    # Once the client has seen the link drop (before that, an ack written into the dead
    # socket is simply lost, and the broker redelivers: at least once, as AMQP is)...
    await _until(lambda: not link.connection.connected.is_set())
    # ...copies taken from the buffer whose channel died must be skipped, and the
    # broker's redeliveries received instead.
    got = [(await recv(receiver, "prefetched", timeout=10))["seq"] for _ in range(4)]
    assert got == [1, 2, 3, 4]
    await _until(lambda: proxy.stats.accepted > accepted)
    await asyncio.sleep(0.5)
    await nothing(receiver, "prefetched", 0.5)


async def test_a_redelivery_after_a_lost_ack_is_not_delivered_twice(
    proxy: TcpProxy, rabbit: MakeLayer, amqp_url: str
) -> None:
    receiver = rabbit(url=via(proxy, amqp_url))
    sender = rabbit(prefix=receiver.prefix)
    channel = await receiver.new_channel()
    await sender.send(channel, msg(0))
    assert (await recv(receiver, channel))["seq"] == 0  # connected, consuming
    proxy.pause("up")  # the receiver's acks from now on never reach the broker
    await sender.send(channel, msg(1))
    assert (await recv(receiver, channel))["seq"] == 1
    await asyncio.sleep(0.2)  # its ack is written, and held by the proxy
    proxy.cut()  # the broker requeues the unacked message and redelivers it
    proxy.resume()
    await sender.send(channel, msg(2))
    assert (await recv(receiver, channel, 20))["seq"] == 2  # not 1 again
    await nothing(receiver, channel, 0.5)


async def test_a_normal_channel_redelivery_after_a_lost_ack_is_not_received_twice(
    proxy: TcpProxy, rabbit: MakeLayer, amqp_url: str
) -> None:
    receiver = rabbit(url=via(proxy, amqp_url))
    sender = rabbit(prefix=receiver.prefix)
    await sender.send("work", msg(0))
    assert (await recv(receiver, "work"))["seq"] == 0  # connected, consuming
    proxy.pause("up")  # the receiver's acks from now on never reach the broker
    await sender.send("work", msg(1))
    assert (await recv(receiver, "work"))["seq"] == 1
    waiting = asyncio.ensure_future(recv(receiver, "work", 20))  # keeps the consumer
    await asyncio.sleep(0.2)  # the ack of 1 is written, and held by the proxy
    proxy.cut()  # the broker requeues 1 and redelivers it to this same process
    proxy.resume()
    await sender.send("work", msg(2))
    assert (await waiting)["seq"] == 2  # not 1 again
    await nothing(receiver, "work", 0.5)


async def test_a_link_whose_setup_fails_is_closed_not_kept(amqp_url: str) -> None:
    made: list[Link] = []

    async def fail(link: Link) -> None:
        made.append(link)
        raise RuntimeError("setup failed")

    async def ignore(link: Link) -> None:
        pass

    links = Links(amqp_url, None, 5, fail, ignore, ignore)
    with pytest.raises(RuntimeError, match="setup failed"):
        await links.here()
    assert made[0].connection.is_closed
    assert links.current() is None


async def test_a_link_whose_channel_stalls_is_closed_not_leaked(
    proxy: TcpProxy, amqp_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The link stalls between the connection's handshake and the channel's opening,
    # as a slow link can: the connection made must be closed, or its robust reconnects
    # keep a socket open forever.
    import layers.rabbitmq.connections as connections

    made: list[Any] = []
    connect = connections.aio_pika.connect_robust

    async def connect_then_stall(*args: Any, **kwargs: Any) -> Any:
        connection = await connect(*args, **kwargs)
        made.append(connection)
        proxy.pause()
        return connection

    async def ignore(link: Link) -> None:
        pass

    monkeypatch.setattr(connections.aio_pika, "connect_robust", connect_then_stall)
    links = Links(via(proxy, amqp_url), None, 5, ignore, ignore, ignore)
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(1):
            await links.here()
    assert made[0].is_closed
    assert links.current() is None

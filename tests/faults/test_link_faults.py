"""The link to the server cut, refused, stalled and slowed mid-traffic; the server restarted.

Each test runs on every networked backend (tests/faults/backends.py). The rule under
test: a ``send`` that returned without error is delivered exactly once after the layer
reconnects by itself; a ``send`` that raised ChannelLayerConnectionError may arrive at
most once (the server may have queued it before the link broke).
"""

from __future__ import annotations

import asyncio
import gc
import time

import pytest

from layers.exceptions import ChannelLayerConnectionError
from tests.faults.conftest import Rig
from tests.faults.stream import Ledger, stream
from tests.helpers import msg, nothing, recv

COUNT = 400


@pytest.mark.parametrize("batch", [1, 20])
@pytest.mark.parametrize("kind", ["local", "normal"])
async def test_link_cut_mid_stream_loses_and_duplicates_nothing(
    rig: Rig, kind: str, batch: int
) -> None:
    sender = rig.layer(capacity=10_000)
    receiver = rig.layer(prefix=sender.prefix, capacity=10_000)
    channel = await receiver.new_channel() if kind == "local" else "stream.normal"

    async def cut() -> None:
        await asyncio.to_thread(rig.proxy.cut)

    async def outage() -> None:
        # Down for a while: new connections fail too, then the link comes back.
        rig.proxy.refuse()
        await asyncio.to_thread(rig.proxy.cut)
        await asyncio.sleep(0.4)
        rig.proxy.accept()

    faults = {100: cut, 150: cut, 200: outage, 300: cut}
    # batch: sent with send_many, so the receiver also fetches many at a time.
    ledger = await stream(sender, receiver, channel, COUNT, faults, batch=batch)
    ledger.check_exactly_once()
    assert rig.proxy.stats.cut >= 4, "the faults never reached a live link"
    # How many sends fail around a fault depends on the host's load (one batch of 20
    # more or less); that the layer reconnects by itself, and soon, does not.
    assert ledger.longest_outage() < 5, f"sends failed for {ledger.longest_outage():.1f} s"
    assert len(ledger.sent) >= COUNT // 2, f"only {len(ledger.sent)} sends succeeded"


async def test_server_restart_mid_stream_loses_only_what_it_held(rig: Rig) -> None:
    """A crash of a server without persistence loses what it held, and nothing more."""
    sender = rig.direct(capacity=10_000)
    receiver = rig.layer(prefix=sender.prefix, capacity=10_000)
    channel = await receiver.new_channel()
    held: list[int] = []
    ledger = Ledger()

    async def hold_back() -> None:
        # The receiver's link stalls so that the crash finds messages queued.
        rig.proxy.pause()

    async def crash() -> None:
        await asyncio.to_thread(rig.server.kill)
        # Sent OK and not yet received: only these may be lost with the server's memory.
        held.extend(ledger.missing())
        await asyncio.to_thread(rig.server.restart)
        await asyncio.to_thread(rig.proxy.cut)
        rig.proxy.resume()

    await stream(
        sender, receiver, channel, 200, {100: hold_back, 130: crash}, ledger=ledger, settle=2
    )
    lost = ledger.missing()
    after_crash = sorted(set(lost) - set(held))
    # On RabbitMQ, sends to the receiver's queue between the restart and the receiver's
    # reconnect find no queue: dropped and counted by the sender (see counted_drops).
    counted = rig.backend.counted_drops(sender) if rig.backend.counted_drops else 0
    assert len(after_crash) <= counted, (
        f"lost {after_crash} sent after the crash, {counted} counted"
    )
    assert not ledger.duplicated(), ledger.duplicated()
    assert not ledger.unexplained(), ledger.unexplained()
    assert held, "the crash found nothing queued"
    assert len([s for s in ledger.sent if s > 130]) >= 50, "the layer never recovered"
    print(
        f"server restart: {len(lost)} message(s) lost, {len(held)} held by the server, "
        f"{len(after_crash)} sent after the crash and counted as dropped"
    )


async def test_stalled_link_times_out_as_configured_and_recovers(rig: Rig) -> None:
    # Two layers: a send to a channel of the sender's own process may never touch the
    # link (RabbitMQ puts it straight into the local buffers).
    layer = rig.layer()
    receiver = rig.layer(prefix=layer.prefix)
    channel = await receiver.new_channel()
    await layer.send(channel, msg(0))
    assert (await recv(receiver, channel))["seq"] == 0
    waiting = asyncio.ensure_future(recv(receiver, channel, 30))
    rig.proxy.pause()
    started = time.monotonic()
    # The fast timeouts are 0.5 s: the send fails with the layer's error, not a hang.
    async with asyncio.timeout(5):
        with pytest.raises(ChannelLayerConnectionError, match="did not answer"):
            await layer.send(channel, msg(1))
    assert time.monotonic() - started < 5
    assert not waiting.done(), "a receiver must keep waiting through a stall"
    rig.proxy.resume()
    rig.proxy.cut()  # the stalled connections are useless now; the layer must reconnect
    async with asyncio.timeout(10):
        while True:
            try:
                await layer.send(channel, msg(2))
                break
            except ChannelLayerConnectionError:
                await asyncio.sleep(0.1)
    # The failed send was held by the stalled link and may reach the server after all
    # (at most once); the next one does.
    first = (await waiting)["seq"]
    assert first in (1, 2)
    if first == 1:
        assert (await recv(receiver, channel, 10))["seq"] == 2


async def test_slow_link_delivers_everything_without_hanging(rig: Rig) -> None:
    layer = rig.layer()
    receiver = rig.layer(prefix=layer.prefix)  # so that every send crosses the link
    channel = await receiver.new_channel()
    rig.proxy.delay = 0.05  # well under the fast timeouts: slow, not broken
    async with asyncio.timeout(20):
        for seq in range(10):
            await layer.send(channel, msg(seq))
        assert [(await recv(receiver, channel, 10))["seq"] for _ in range(10)] == list(range(10))


async def test_link_slower_than_the_timeout_fails_sends_clearly(rig: Rig) -> None:
    layer = rig.layer()
    receiver = rig.layer(prefix=layer.prefix)  # so that every send crosses the link
    channel = await receiver.new_channel()
    await layer.send(channel, msg(0))  # connected before the link slows down
    assert (await recv(receiver, channel))["seq"] == 0
    waiting = asyncio.ensure_future(recv(receiver, channel, 30))
    await asyncio.sleep(0.1)
    rig.proxy.delay = 0.6  # each chunk takes longer than the fast timeouts (0.5 s)
    async with asyncio.timeout(5):
        with pytest.raises(ChannelLayerConnectionError, match="did not answer"):
            await layer.send(channel, msg(1))
    rig.proxy.delay = 0
    rig.proxy.cut()
    async with asyncio.timeout(10):
        while True:
            try:
                await layer.send(channel, msg(2))
                break
            except ChannelLayerConnectionError:
                await asyncio.sleep(0.1)
    # The timed-out send may or may not have reached the server; the next one does.
    first = (await waiting)["seq"]
    assert first in (1, 2)
    if first == 1:
        assert (await recv(receiver, channel, 10))["seq"] == 2


@pytest.mark.parametrize("count", [1, 50])
@pytest.mark.parametrize("kind", ["local", "normal"])
async def test_reply_lost_after_the_server_popped_loses_nothing(
    rig: Rig, kind: str, count: int
) -> None:
    # The receiver's requests reach the server but its replies are held past every
    # timeout: the server pops the message, the reader gives up on the reply.
    sender = rig.direct()
    receiver = rig.layer(prefix=sender.prefix)
    channel = await receiver.new_channel() if kind == "local" else "lost.reply"
    waiting = asyncio.ensure_future(recv(receiver, channel, 6))
    await asyncio.sleep(0.3)  # the reader is blocked waiting for a message
    rig.proxy.pause("down")
    # count > 1: the server hands over a whole prefetched batch that the reply loses.
    assert await sender.send_many([(channel, msg(i)) for i in range(count)]) == [None] * count
    await asyncio.sleep(2.5)  # past socket_timeout + blocking_timeout, and a retry
    rig.proxy.resume()
    assert (await waiting)["seq"] == 0
    assert [(await recv(receiver, channel))["seq"] for _ in range(1, count)] == list(
        range(1, count)
    )
    await nothing(receiver, channel)
    gc.collect()


async def test_receiver_link_stalled_mid_stream_loses_nothing(rig: Rig) -> None:
    # The sender is fine; the receiver's link stalls past every timeout while traffic
    # goes on, then cuts: its abandoned requests reach the server late, or never.
    sender = rig.direct(capacity=10_000)
    receiver = rig.layer(prefix=sender.prefix, capacity=10_000)
    channel = await receiver.new_channel()
    background: list[asyncio.Future[None]] = []

    async def stalled() -> None:
        rig.proxy.pause()
        await asyncio.sleep(1.5)  # past socket_timeout + blocking_timeout (1 s)
        await asyncio.to_thread(rig.proxy.cut)
        rig.proxy.resume()

    async def stall() -> None:
        background.append(asyncio.ensure_future(stalled()))

    ledger = await stream(sender, receiver, channel, 600, {100: stall})
    await asyncio.gather(*background)
    ledger.check_exactly_once()

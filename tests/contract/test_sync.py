"""SyncChannelLayer: the blocking API for scripts, on every backend."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator

import pytest

from layers import SyncChannelLayer
from layers.base import ChannelLayer
from layers.exceptions import ChannelFull, ChannelLayerClosed, ChannelLayerError, InvalidChannelName
from tests.helpers import msg, recv
from tests.variants import Variant


@pytest.fixture
def sync(variant: Variant) -> Iterator[SyncChannelLayer]:
    """A SyncChannelLayer over a fresh layer of the variant."""
    facade = SyncChannelLayer(variant.make(capacity=500))
    yield facade
    facade.flush()
    facade.close()
    asyncio.run(facade.layer.close())


def test_round_trip_and_groups(sync: SyncChannelLayer) -> None:
    channel = sync.new_channel()
    sync.send(channel, msg(1, raw=b"\x00"))
    assert sync.receive(channel, timeout=5) == msg(1, raw=b"\x00")
    sync.group_add("room", channel)
    assert sync.group_channels("room") == [channel]
    sync.group_send("room", msg(2))
    assert sync.receive(channel, timeout=5)["seq"] == 2
    sync.group_discard("room", channel)
    assert sync.group_channels("room") == []
    assert sync.stats()["received"] == 2


def test_many_threads_share_one_facade(sync: SyncChannelLayer) -> None:
    channel = sync.new_channel()
    sync.group_add("threads", channel)

    def push(start: int) -> None:
        for i in range(start, start + 20):
            sync.group_send("threads", msg(i))

    threads = [threading.Thread(target=push, args=(n * 20,)) for n in range(8)]
    for thread in threads:
        thread.start()
    got = sorted(sync.receive(channel, timeout=5)["seq"] for _ in range(160))
    for thread in threads:
        thread.join()
    assert got == list(range(160))


def test_receive_timeout_loses_nothing(sync: SyncChannelLayer) -> None:
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        sync.receive("quiet", timeout=0.2)
    assert time.monotonic() - started < 3
    sync.send("quiet", msg(5))
    assert sync.receive("quiet", timeout=5)["seq"] == 5
    with pytest.raises(ValueError, match="positive"):
        sync.receive("quiet", timeout=0)


def test_layer_errors_reach_the_caller(variant: Variant) -> None:
    with SyncChannelLayer(variant.make(capacity=1)) as sync:
        sync.send("one", msg())
        with pytest.raises(ChannelFull):
            sync.send("one", msg())
        with pytest.raises(InvalidChannelName, match="' ' at position"):
            sync.send("bad name", msg())
        sync.flush()
        asyncio.run(sync.layer.close())  # the facade never closes a layer it was given


async def test_refuses_to_block_a_running_loop(sync: SyncChannelLayer) -> None:
    with pytest.raises(ChannelLayerError, match="await the layer's own methods"):
        sync.send("c", msg())


def test_closed_facade_refuses_and_close_is_idempotent(variant: Variant) -> None:
    layer = variant.make()
    sync = SyncChannelLayer(layer)
    sync.send("c", msg())
    sync.close()
    sync.close()
    with pytest.raises(ChannelLayerClosed):
        sync.send("c", msg())
    assert not layer.closed  # given, so not ours to close
    assert asyncio.run(recv(layer, "c"))["seq"] == 0
    asyncio.run(layer.flush())
    asyncio.run(layer.close())


async def test_a_script_thread_reaches_an_async_consumer(make_layer: object) -> None:
    layer: ChannelLayer = make_layer()  # type: ignore[operator]
    channel = await layer.new_channel()
    await layer.group_add("live", channel)

    def script() -> None:
        with SyncChannelLayer(layer) as sync:
            sync.group_send("live", msg(7))

    waiting = asyncio.ensure_future(recv(layer, channel))
    await asyncio.to_thread(script)
    assert (await waiting)["seq"] == 7


def test_batches_through_the_facade(sync: SyncChannelLayer) -> None:
    channel = sync.new_channel()
    sync.group_add("batch", channel)
    assert sync.send_many((channel, msg(i)) for i in range(3)) == [None] * 3
    assert sync.group_send_many([("batch", msg(3)), ("batch", msg(4))]) == [None] * 2
    assert [sync.receive(channel, timeout=5)["seq"] for _ in range(5)] == [0, 1, 2, 3, 4]
    with pytest.raises(InvalidChannelName, match="send_many item 1"):
        sync.send_many([(channel, msg()), ("bad name", msg())])

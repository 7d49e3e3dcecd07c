"""Normal channels are real queues; flush() and close() remove what the layer declared."""

from __future__ import annotations

import asyncio
import threading

import pytest

from layers.rabbitmq.inbox import State
from tests.helpers import msg, recv
from tests.rabbitmq.broker import exchange_exists, queue_exists
from tests.rabbitmq.conftest import MakeLayer


async def test_any_process_can_receive_a_normal_channel(rabbit: MakeLayer) -> None:
    # channels_rabbitmq raises RuntimeError for a channel without '!' (its #11, #16).
    sender = rabbit()
    worker = rabbit(prefix=sender.prefix)
    for i in range(3):
        await sender.send("thumbnails", msg(i))
    assert [(await recv(worker, "thumbnails"))["seq"] for _ in range(3)] == [0, 1, 2]


async def test_a_cancelled_receive_leaves_the_message_for_another_process(
    rabbit: MakeLayer,
) -> None:
    first = rabbit()
    second = rabbit(prefix=first.prefix)
    waiting = asyncio.ensure_future(first.receive("jobs"))
    await asyncio.sleep(0.1)  # first's consumer is attached
    waiting.cancel()
    await asyncio.gather(waiting, return_exceptions=True)
    await asyncio.sleep(0.05)
    await first.send("jobs", msg(1))
    assert (await recv(second, "jobs"))["seq"] == 1


async def test_messages_buffered_but_not_taken_go_back_in_order(rabbit: MakeLayer) -> None:
    first = rabbit(prefetch_count=10)
    second = rabbit(prefix=first.prefix)
    for i in range(5):
        await first.send("ordered", msg(i))
    assert (await recv(first, "ordered"))["seq"] == 0  # first's consumer prefetched the rest
    await asyncio.sleep(0.1)  # no receiver left: it gives them back
    assert [(await recv(second, "ordered"))["seq"] for _ in range(4)] == [1, 2, 3, 4]


async def test_flush_deletes_what_the_layer_declared(rabbit: MakeLayer, amqp_url: str) -> None:
    layer = rabbit()
    topo = layer.topology
    local = await layer.new_channel()
    await layer.send("queued", msg())
    await layer.group_add("g", local)
    await layer.group_add("g", "named")
    for name in ("queued", "named"):
        assert await queue_exists(amqp_url, topo.channel_queue(name))
    assert await queue_exists(amqp_url, topo.registry_queue("g"))
    assert await exchange_exists(amqp_url, topo.groups)
    await layer.flush()
    for name in ("queued", "named"):
        assert not await queue_exists(amqp_url, topo.channel_queue(name))
    assert not await queue_exists(amqp_url, topo.registry_queue("g"))
    # The layer's own inbox stays (emptied) while the layer lives, and goes with close();
    # the exchanges are anchored to it, and go with it.
    inbox = layer.stats()["inbox"]
    assert await queue_exists(amqp_url, inbox)
    await layer.send(local, msg(1))
    assert (await recv(layer, local))["seq"] == 1
    await layer.close()
    assert not await queue_exists(amqp_url, inbox)
    assert not await exchange_exists(amqp_url, topo.dead_letters)  # auto-deleted with it
    assert not await exchange_exists(amqp_url, topo.groups)


async def test_close_keeps_a_queue_that_holds_messages(rabbit: MakeLayer, amqp_url: str) -> None:
    sender = rabbit()
    await sender.send("mailbox", msg(1))
    await sender.close()  # the message is for whoever receives "mailbox" next
    queue = sender.topology.channel_queue("mailbox")
    assert await queue_exists(amqp_url, queue)
    later = rabbit(prefix=sender.prefix)
    assert (await recv(later, "mailbox"))["seq"] == 1
    await later.close()
    assert await queue_exists(amqp_url, queue)  # x-expires or flush() removes it
    flusher = rabbit(prefix=sender.prefix)  # a fresh process: it never declared "mailbox"
    await flusher.flush()
    assert not await queue_exists(amqp_url, queue)


async def test_close_keeps_group_memberships_another_process_gave_a_queue(
    rabbit: MakeLayer,
) -> None:
    admin = rabbit()
    await admin.group_add("room", "inbox-a")
    await admin.close()
    worker = rabbit(prefix=admin.prefix)
    await worker.send("inbox-a", msg(1))
    assert (await recv(worker, "inbox-a"))["seq"] == 1
    await worker.close()  # it never joined "inbox-a" to "room": that was admin
    later = rabbit(prefix=admin.prefix)
    await later.group_send("room", msg(2))
    assert (await recv(later, "inbox-a"))["seq"] == 2


async def test_group_channels_lists_members_of_every_process(rabbit: MakeLayer) -> None:
    first = rabbit()
    second = rabbit(prefix=first.prefix)
    a, b = await first.new_channel(), await second.new_channel()
    await first.group_add("room", a)
    await second.group_add("room", b)
    await second.group_add("room", "worker")
    assert sorted(await first.group_channels("room")) == sorted([a, b, "worker"])
    await first.group_discard("room", b)  # a peer's member: its owner is told
    assert sorted(await second.group_channels("room")) == sorted([a, "worker"])


async def test_membership_of_a_normal_channel_lapses(rabbit: MakeLayer) -> None:
    layer = rabbit(group_expiry=0.2)
    await layer.group_add("lapsing", "worker")
    await layer.group_send("lapsing", msg(1))
    assert (await recv(layer, "worker"))["seq"] == 1
    await asyncio.sleep(0.3)
    assert await layer.group_channels("lapsing") == []  # and its binding is gone
    await layer.group_send("lapsing", msg(2))
    await layer.send("worker", msg(3))
    assert (await recv(layer, "worker"))["seq"] == 3


async def test_competing_processes_each_receive_in_order(rabbit: MakeLayer) -> None:
    # A receiver that comes straight back for the next message keeps its consumer, so
    # its prefetched messages never go to the other process out of order.
    sender = rabbit(capacity=1000)
    receivers = [rabbit(prefix=sender.prefix, capacity=1000) for _ in range(2)]
    got: list[list[int]] = [[], []]

    async def drain(index: int) -> None:
        while True:
            got[index].append((await receivers[index].receive("jobs"))["seq"])

    tasks = [asyncio.ensure_future(drain(i)) for i in range(2)]
    await asyncio.sleep(0.1)
    for i in range(300):
        await sender.send("jobs", msg(i))
    async with asyncio.timeout(10):
        while len(got[0]) + len(got[1]) < 300:
            await asyncio.sleep(0.01)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    assert sorted(got[0] + got[1]) == list(range(300))
    for seqs in got:
        assert seqs == sorted(seqs)


async def test_the_inbox_consumer_moves_when_its_loop_ends(rabbit: MakeLayer) -> None:
    # A thread's loop uses the layer first (so it hosts the inbox consumer), then ends
    # while this loop waits on a process-local channel.
    layer = rabbit()
    peer = rabbit(prefix=layer.prefix)
    made: list[str] = []
    release = threading.Event()

    def other_loop() -> None:
        async def main() -> None:
            made.append(await layer.new_channel())
            await asyncio.to_thread(release.wait, 10)

        asyncio.run(main())

    thread = threading.Thread(target=other_loop)
    thread.start()
    async with asyncio.timeout(10):
        while not made:
            await asyncio.sleep(0.01)
    await layer.send("here", msg(0))  # this loop has its own connection now
    waiting = asyncio.ensure_future(recv(layer, made[0], timeout=10))
    await asyncio.sleep(0.05)
    release.set()
    await asyncio.to_thread(thread.join, 10)
    await peer.send(made[0], msg(1))
    assert (await waiting)["seq"] == 1


async def test_recent_ids_are_kept_for_a_bounded_number_of_channels(
    rabbit: MakeLayer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An app that makes up normal channel names as it goes must not grow them for ever.
    monkeypatch.setattr("layers.rabbitmq.normal._TAKEN_CHANNELS", 2)
    layer = rabbit()
    for i in range(4):
        await layer.send(f"made.up.{i}", msg(i))
        assert (await recv(layer, f"made.up.{i}"))["seq"] == i
    assert list(layer.normal._taken) == ["made.up.2", "made.up.3"]


async def test_no_two_prefixes_share_a_queue(rabbit: MakeLayer, amqp_url: str) -> None:
    # With '.' joining the parts, both were the queue "<base>.c.b.c.x".
    first = rabbit(capacity=5)
    second = rabbit(prefix=f"{first.prefix}.c.b", capacity=7)
    await first.send("b.c.x", msg(1))
    await second.send("x", msg(2))  # another queue: no clash of its arguments either
    assert (await recv(first, "b.c.x"))["seq"] == 1
    assert (await recv(second, "x"))["seq"] == 2
    assert first.topology.channel_queue("b.c.x") != second.topology.channel_queue("x")
    assert await queue_exists(amqp_url, second.topology.channel_queue("x"))


async def test_the_inbox_consumer_goes_through_its_states(rabbit: MakeLayer) -> None:
    layer = rabbit()
    inbox = layer.inbox
    assert inbox.state is State.IDLE
    channel = await layer.new_channel()
    assert inbox.state is State.RUNNING
    assert inbox.running()
    await inbox.stop()
    assert inbox.state is State.IDLE
    assert not inbox.running()
    receiving = asyncio.ensure_future(layer.receive(channel))
    await asyncio.sleep(0)
    assert inbox.state is State.STARTING  # a receiver waits: a consumer is on its way
    async with asyncio.timeout(5):
        while not inbox.running():
            await asyncio.sleep(0.01)
    assert inbox.state is State.RUNNING
    await layer.send(channel, msg(1))
    assert (await receiving)["seq"] == 1

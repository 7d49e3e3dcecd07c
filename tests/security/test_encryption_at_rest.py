"""Encrypted layers: no plaintext on the wire or at rest; rotation; wrong keys dropped.

Redis and RabbitMQ, each on a server the test owns behind a recording proxy: what is
stored is read back from the server itself (Redis keys; the messages waiting in the
broker's queues) before anything is received. Rotation and wrong keys run on Redis; the
codec-level rules are in tests/core/test_codec.py and tests/contract/test_encryption.py.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import aio_pika
import pytest
from aio_pika.abc import AbstractIncomingMessage

from layers.rabbitmq import RabbitMQChannelLayer
from layers.redis import RedisChannelLayer
from tests.faults.proxy import TcpProxy
from tests.helpers import msg, nothing, recv
from tests.rabbit_procs import RabbitProcess
from tests.redis_procs import RedisProcess
from tests.security.plaintext import MESSAGE, NEEDLES, SECRET, SECRET_KEY_NAME, plaintext_in


@pytest.fixture
def sniffed(own_redis: RedisProcess) -> Iterator[TcpProxy]:
    """A recording proxy in front of an owned Redis server."""
    with TcpProxy(*own_redis.address, record=True) as proxy:
        yield proxy


@pytest.fixture
def sniffed_rabbit(own_rabbit: RabbitProcess) -> Iterator[TcpProxy]:
    """A recording proxy in front of the owned RabbitMQ node's AMQP port."""
    with TcpProxy(*own_rabbit.address, record=True) as proxy:
        yield proxy


def layer_at(address: tuple[str, int], keys: list[str] | None, prefix: str) -> RedisChannelLayer:
    host, port = address
    return RedisChannelLayer(
        hosts=[f"redis://{host}:{port}/0"], prefix=prefix, symmetric_encryption_keys=keys
    )


def stored_bytes(server: RedisProcess, prefix: str) -> bytes:
    """Every value stored under prefix, whatever its type, as one blob."""
    blob = b""
    cursor = "0"
    while True:
        reply = server.command("SCAN", cursor, "MATCH", f"{prefix}:*", "COUNT", 1000)
        assert isinstance(reply, list)
        cursor, keys = reply
        for key in keys:  # type: ignore[union-attr]
            kind = server.command("TYPE", key)
            if kind == "list":
                items = server.command("LRANGE", key, 0, -1)
            elif kind == "hash":
                items = server.command("HGETALL", key)
            elif kind == "zset":
                items = server.command("ZRANGE", key, 0, -1)
            else:
                items = [server.command("GET", key)]
            blob += repr(items).encode()
        if cursor == "0":
            return blob


async def test_plaintext_is_absent_on_the_wire_and_at_rest(
    own_redis: RedisProcess, sniffed: TcpProxy
) -> None:
    prefix = f"s{secrets.token_hex(4)}"
    layer = layer_at(sniffed.address, ["k1-sixteen-bytes-at-least"], prefix)
    # Another process sends: a layer's messages to its own channels never reach Redis.
    sender = layer_at(sniffed.address, ["k1-sixteen-bytes-at-least"], prefix)
    local = await layer.new_channel()
    await layer.group_add("team-a", local)
    await layer.group_add("team-a", "audit.log")
    await sender.send("billing", MESSAGE)
    await sender.send(local, MESSAGE)
    await sender.group_send("team-a", MESSAGE)
    # Stored now (nothing received yet): read it back from the server itself.
    at_rest = stored_bytes(own_redis, prefix)
    assert at_rest, "nothing stored: the check below would prove nothing"
    assert plaintext_in(at_rest) == []
    assert await recv(layer, "billing") == MESSAGE
    assert await recv(layer, local) == MESSAGE
    assert await recv(layer, local) == MESSAGE
    assert await recv(layer, "audit.log") == MESSAGE
    wire = bytes(sniffed.recorded)
    assert plaintext_in(wire) == []
    assert b"billing" in wire  # the proxy did see the traffic (channel names are keys)
    await layer.flush()
    await layer.close()
    await sender.close()


async def test_unencrypted_layer_does_show_the_plaintext(sniffed: TcpProxy) -> None:
    """The check above can fail: without keys the secret is on the wire."""
    layer = layer_at(sniffed.address, None, f"s{secrets.token_hex(4)}")
    await layer.send("billing", {"type": "payment", SECRET_KEY_NAME: SECRET})
    assert SECRET.encode() in bytes(sniffed.recorded)
    await layer.flush()
    await layer.close()


async def queued_bodies(url: str, queues: list[str]) -> list[list[bytes]]:
    """Per queue, each waiting message (body and headers), read unacked and put back."""
    connection = await aio_pika.connect(url)
    try:
        channel = await connection.channel()
        found: list[list[bytes]] = []
        for name in queues:
            queue = await channel.declare_queue(name, passive=True)
            taken: list[AbstractIncomingMessage] = []
            while (message := await queue.get(no_ack=False, fail=False)) is not None:
                taken.append(message)
            found.append([m.body + repr(m.headers).encode() for m in taken])
            for message in taken:
                await message.nack(requeue=True)
    finally:
        await connection.close()
    return found


def rabbit_at(
    address: tuple[str, int], keys: list[str] | None, prefix: str
) -> RabbitMQChannelLayer:
    host, port = address
    return RabbitMQChannelLayer(
        url=f"amqp://guest:guest@{host}:{port}/", prefix=prefix, symmetric_encryption_keys=keys
    )


@pytest.mark.parametrize("keys", [["k1-sixteen-bytes-at-least"], None], ids=["encrypted", "plain"])
async def test_rabbitmq_queues_and_wire_hold_no_plaintext(
    own_rabbit: RabbitProcess, sniffed_rabbit: TcpProxy, keys: list[str] | None
) -> None:
    """Encrypted, no queued body and no byte on the wire shows the secret; plain, all do."""
    prefix = f"s{secrets.token_hex(4)}"
    sender = rabbit_at(sniffed_rabbit.address, keys, prefix)
    receiver = rabbit_at(sniffed_rabbit.address, keys, prefix)
    local = await receiver.new_channel()
    await receiver.group_add("team-a", local)
    await receiver.group_add("team-a", "audit.log")
    # With the receiver's inbox consumer stopped, its messages wait in the broker.
    await receiver.inbox.stop()
    await sender.send("billing", MESSAGE)
    await sender.send(local, MESSAGE)  # another layer's process-local channel: its inbox
    await sender.group_send("team-a", MESSAGE)  # to the inbox and to audit.log's queue
    queues = [receiver.topology.channel_queue(c) for c in ("billing", "audit.log")]
    queued = await queued_bodies(own_rabbit.url, [*queues, receiver.inbox.queue_name])
    assert [len(bodies) for bodies in queued] == [1, 1, 2]
    expected = [] if keys else list(NEEDLES)
    for bodies in queued:
        for body in bodies:
            assert plaintext_in(body) == expected
    # They were the real messages: the layer receives every one.
    assert await recv(receiver, "billing") == MESSAGE
    assert await recv(receiver, local) == MESSAGE
    assert await recv(receiver, local) == MESSAGE
    assert await recv(receiver, "audit.log") == MESSAGE
    wire = bytes(sniffed_rabbit.recorded)
    assert queues[0].encode() in wire  # the proxy did see the traffic
    assert plaintext_in(wire) == expected
    for layer in (sender, receiver):
        await layer.flush()
        await layer.close()


async def test_key_rotation_across_processes(own_redis: RedisProcess) -> None:
    prefix = f"s{secrets.token_hex(4)}"
    old = layer_at(own_redis.address, ["old-sixteen-bytes-at-least"], prefix)
    rotating = layer_at(
        own_redis.address, ["new-sixteen-bytes-at-least", "old-sixteen-bytes-at-least"], prefix
    )
    new_only = layer_at(own_redis.address, ["new-sixteen-bytes-at-least"], prefix)
    # A message written before the rotation is still read by the rotated layer.
    await old.send("rot", msg(1))
    assert (await recv(rotating, "rot"))["seq"] == 1
    # The rotated layer writes with the new key: new-only readers read it ...
    await rotating.send("rot", msg(2))
    assert (await recv(new_only, "rot"))["seq"] == 2
    # ... and readers that only know the old key drop it and count it.
    await rotating.send("rot", msg(3))
    await nothing(old, "rot", 0.5)
    assert old.stats()["dropped_undecodable"] == 1
    for layer in (old, rotating, new_only):
        await layer.flush()
        await layer.close()


async def test_wrong_key_is_dropped_counted_and_others_still_arrive(
    own_redis: RedisProcess,
) -> None:
    prefix = f"s{secrets.token_hex(4)}"
    sender = layer_at(own_redis.address, ["right-sixteen-bytes-at-least"], prefix)
    stranger = layer_at(own_redis.address, ["wrong-sixteen-bytes-at-least"], prefix)
    plain = layer_at(own_redis.address, None, prefix)
    await stranger.send("box", msg(1))
    await plain.send("box", msg(2))
    await sender.send("box", msg(3))
    assert (await recv(sender, "box"))["seq"] == 3
    assert sender.stats()["dropped_undecodable"] == 2
    assert sender.stats()["received"] == 1
    for layer in (sender, stranger, plain):
        await layer.flush()
        await layer.close()

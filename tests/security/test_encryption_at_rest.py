"""Encrypted layers: no plaintext on the wire or in Redis; rotation; wrong keys dropped.

These run on Redis (the networked backend whose storage a test can read back); the
codec-level rules are in tests/core/test_codec.py and tests/contract/test_encryption.py.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest

from layers.redis import RedisChannelLayer
from tests.faults.proxy import TcpProxy
from tests.helpers import msg, nothing, recv
from tests.redis_procs import RedisProcess

SECRET = "4111-1111-1111-1111"
SECRET_KEY_NAME = "card_number"


@pytest.fixture
def sniffed(own_redis: RedisProcess) -> Iterator[TcpProxy]:
    """A recording proxy in front of an owned server."""
    with TcpProxy(*own_redis.address, record=True) as proxy:
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
    layer = layer_at(sniffed.address, ["k1"], prefix)
    local = await layer.new_channel()
    await layer.group_add("team-a", local)
    await layer.group_add("team-a", "audit.log")
    message = {"type": "payment", SECRET_KEY_NAME: SECRET, "raw": SECRET.encode()}
    await layer.send("billing", message)
    await layer.send(local, message)
    await layer.group_send("team-a", message)
    # Stored now (nothing received yet): read it back from the server itself.
    at_rest = stored_bytes(own_redis, prefix)
    assert at_rest, "nothing stored: the check below would prove nothing"
    for needle in (SECRET.encode(), SECRET_KEY_NAME.encode()):
        assert needle not in at_rest
    assert await recv(layer, "billing") == message
    assert await recv(layer, local) == message
    assert await recv(layer, local) == message
    assert await recv(layer, "audit.log") == message
    wire = bytes(sniffed.recorded)
    assert b"payment" not in wire, "the message type travelled in the clear"
    for needle in (SECRET.encode(), SECRET_KEY_NAME.encode()):
        assert needle not in wire
    assert b"billing" in wire  # the proxy did see the traffic (channel names are keys)
    await layer.flush()
    await layer.close()


async def test_unencrypted_layer_does_show_the_plaintext(sniffed: TcpProxy) -> None:
    """The check above can fail: without keys the secret is on the wire."""
    layer = layer_at(sniffed.address, None, f"s{secrets.token_hex(4)}")
    await layer.send("billing", {"type": "payment", SECRET_KEY_NAME: SECRET})
    assert SECRET.encode() in bytes(sniffed.recorded)
    await layer.flush()
    await layer.close()


async def test_key_rotation_across_processes(own_redis: RedisProcess) -> None:
    prefix = f"s{secrets.token_hex(4)}"
    old = layer_at(own_redis.address, ["old"], prefix)
    rotating = layer_at(own_redis.address, ["new", "old"], prefix)
    new_only = layer_at(own_redis.address, ["new"], prefix)
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
    sender = layer_at(own_redis.address, ["right"], prefix)
    stranger = layer_at(own_redis.address, ["wrong"], prefix)
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

"""Encryption round trip and rotation; undecodable payloads are dropped and counted."""

from __future__ import annotations

import pytest

from layers.base import ChannelLayer
from layers.codec import Codec
from tests.contract.conftest import Layers
from tests.helpers import msg, nothing, recv


async def test_encrypted_round_trip(make_layer: Layers) -> None:
    layer = make_layer(symmetric_encryption_keys=["k1-sixteen-bytes-at-least"])
    assert layer.codec.encrypted
    message = {"type": "secret", "card": "4111 1111 1111 1111", "raw": b"\x01"}
    await layer.send("s", message)
    assert await recv(layer, "s") == message


async def test_garbage_payload_is_dropped_and_counted(layer: ChannelLayer) -> None:
    # _send is the transport hook: it puts raw bytes where a foreign writer would.
    await layer._send("poison", b"\xc1 not msgpack, not a token")
    await layer._send("poison", b"")
    await layer.send("poison", msg(1))
    assert (await recv(layer, "poison"))["seq"] == 1
    assert layer.stats()["dropped_undecodable"] == 2


async def test_tampered_payload_is_dropped_and_counted(make_layer: Layers) -> None:
    layer = make_layer(symmetric_encryption_keys=["k1-sixteen-bytes-at-least"])
    good = layer.codec.encode(msg(1))
    tampered = good[:-5] + bytes([good[-5] ^ 1]) + good[-4:]
    await layer._send("t", tampered)
    await layer._send(
        "t", Codec(symmetric_encryption_keys=["other-sixteen-bytes-at-least"]).encode(msg(2))
    )
    await layer._send("t", Codec().encode(msg(3)))  # plaintext to an encrypting layer
    await layer.send("t", msg(4))
    assert (await recv(layer, "t"))["seq"] == 4
    assert layer.stats()["dropped_undecodable"] == 3


async def test_key_rotation_reads_old_and_writes_new(make_layer: Layers) -> None:
    layer = make_layer(
        symmetric_encryption_keys=["new-sixteen-bytes-at-least", "old-sixteen-bytes-at-least"]
    )
    await layer._send(
        "r", Codec(symmetric_encryption_keys=["old-sixteen-bytes-at-least"]).encode(msg(1), "r")
    )
    assert (await recv(layer, "r"))["seq"] == 1
    written = layer.codec.encode(msg(2))
    assert (
        Codec(symmetric_encryption_keys=["new-sixteen-bytes-at-least"]).decode(written)["seq"] == 2
    )
    with pytest.raises(Exception, match="decryption"):
        Codec(symmetric_encryption_keys=["old-sixteen-bytes-at-least"]).decode(written)


async def test_encrypted_group_send(make_layer: Layers) -> None:
    layer = make_layer(symmetric_encryption_keys=["k-sixteen-bytes-at-least"])
    a, b = await layer.new_channel(), await layer.new_channel()
    await layer.group_add("enc", a)
    await layer.group_add("enc", b)
    await layer.group_send("enc", msg(5))
    assert (await recv(layer, a))["seq"] == (await recv(layer, b))["seq"] == 5


async def test_ciphertext_is_delivered_only_where_it_was_sent(make_layer: Layers) -> None:
    layer = make_layer(symmetric_encryption_keys=["k-sixteen-bytes-at-least"])
    local, outsider = await layer.new_channel(), await layer.new_channel()
    await layer.group_add("room", local)
    # _send puts the ciphertexts where a replaying writer would.
    await layer._send("audit", layer.codec.encode(msg(1), "payments"))
    await layer._send("audit", layer.codec.encode(msg(2)))  # sealed for nowhere
    await layer._send("audit", layer.codec.encode_for_group(msg(3), "room"))
    await layer._send(outsider, layer.codec.encode(msg(4), local))
    await layer._send(outsider, layer.codec.encode_for_group(msg(5), "room"))
    await layer._send(local, layer.codec.encode_for_group(msg(6), "room"))
    await layer._send(local, layer.codec.encode(msg(7), local))
    await layer.send("audit", msg(8))
    assert (await recv(layer, "audit"))["seq"] == 8
    assert [(await recv(layer, local))["seq"] for _ in range(2)] == [6, 7]
    await nothing(layer, outsider)
    assert layer.stats()["dropped_undecodable"] == 5

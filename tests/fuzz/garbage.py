"""What the decoding fuzz tests write straight into a transport: broken payloads."""

from __future__ import annotations

import asyncio

from hypothesis import strategies as st

from layers.base import ChannelLayer
from layers.codec import Codec
from tests.helpers import msg, recv

__all__ = ["deliveries_go_on", "foreign", "tampered", "until"]


def tampered(payload: bytes, data: st.DataObject, encrypted: bool) -> bytes:
    """payload truncated, or (encrypted) with one byte flipped.

    Plaintext has no integrity check: a flipped byte can make another valid message
    (seq 0 flipped is seq -1), so plaintext is only truncated, which never decodes.
    """
    if not encrypted or data.draw(st.booleans(), label="truncate"):
        return payload[: data.draw(st.integers(0, max(len(payload) - 1, 0)), label="cut at")]
    index = data.draw(st.integers(0, len(payload) - 1), label="flip at")
    return payload[:index] + bytes([payload[index] ^ 0xFF]) + payload[index + 1 :]


def foreign(seq: int = 0) -> bytes:
    """A valid message encrypted under a key no test layer has."""
    return Codec(symmetric_encryption_keys=["not the layer's key"]).encode(msg(seq))


async def until(layer: ChannelLayer, channel: str, seq: int) -> int:
    """Receive on channel until the message numbered seq; how many others came first."""
    others = 0
    while (await recv(layer, channel))["seq"] != seq:
        others += 1
    return others


async def deliveries_go_on(
    layer: ChannelLayer, sender: ChannelLayer, local: str, other: str, member: str
) -> int:
    """After garbage: each kind of channel of layer still delivers (a process-local one
    sent to by sender, another local one, "normal", group "g" with member); returns how
    many garbage messages came through first (only unencrypted garbage can decode)."""
    await sender.send(local, msg(1))
    await layer.send(other, msg(2))
    await layer.send("normal", msg(3))
    await sender.group_send("g", msg(4))
    async with asyncio.timeout(10):
        survived = await until(layer, local, 1)
        assert (await recv(layer, other))["seq"] == 2
        survived += await until(layer, "normal", 3)
        survived += await until(layer, "normal", 4)
        survived += await until(layer, member, 4)
    return survived

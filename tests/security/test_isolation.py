"""Names cannot reach another prefix's keys; decoding never executes anything."""

from __future__ import annotations

import fnmatch
import os
import pickle
import secrets
from pathlib import Path

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from layers.codec import Codec
from layers.exceptions import InvalidChannelName, UndecodableMessage
from layers.redis import RedisChannelLayer
from layers.redis.keys import Keys
from tests.helpers import msg, recv
from tests.redis_procs import RedisProcess

BODY = "abcXYZ019-_."
bodies = st.text(BODY, min_size=1, max_size=20)
channels = st.one_of(bodies, st.builds(lambda a, b: f"{a}!{b}", bodies, st.text(BODY, max_size=8)))


def all_keys(keys: Keys, channel: str, group: str) -> list[str]:
    inbox = channel[: channel.index("!") + 1] if "!" in channel else channel
    return [keys.channel(channel), keys.inbox(inbox), keys.depth(inbox), keys.group(group)]


@settings(max_examples=200, deadline=None, derandomize=True, database=None)
@given(mine=bodies, other=bodies, channel=channels, group=bodies)
def test_no_name_reaches_another_prefix(mine: str, other: str, channel: str, group: str) -> None:
    # Any valid channel or group of prefix `other` maps to keys that prefix `mine`'s
    # SCAN pattern (hence its flush) never matches, and that hold one hash tag only.
    ours, theirs = Keys(mine), Keys(other)
    for key in all_keys(theirs, channel, group):
        assert key.startswith(f"{other}:")
        assert key.count("{") == key.count("}") == 1
        if mine != other:
            assert not fnmatch.fnmatchcase(key, ours.pattern), (key, ours.pattern)


@pytest.mark.parametrize(
    "name", ["a:*", "x}:c:{y", "*", "prefix:c:{x}", "a b", "[a-z]", "a\\*", "a\nb"]
)
async def test_key_syntax_in_names_is_refused(name: str) -> None:
    layer = RedisChannelLayer(hosts=["redis://127.0.0.1:1/0"], prefix="p")
    with pytest.raises(InvalidChannelName):
        await layer.send(name, msg())
    with pytest.raises(InvalidChannelName):
        await layer.group_add(name, "c")
    with pytest.raises(InvalidChannelName):
        RedisChannelLayer(hosts=["redis://127.0.0.1:1/0"], prefix=name)
    await layer.close()


async def test_flush_of_one_prefix_spares_lookalike_prefixes(own_redis: RedisProcess) -> None:
    base = f"p{secrets.token_hex(3)}"
    prefixes = [base, f"{base}x", f"{base}.c", f"{base}-"]
    layers = [RedisChannelLayer(hosts=[own_redis.url], prefix=p) for p in prefixes]
    for layer in layers:
        await layer.send("c", msg(1))
        await layer.group_add("g", "c")
    await layers[0].flush()
    for layer in layers[1:]:
        assert (await recv(layer, "c"))["seq"] == 1
        assert await layer.group_channels("g") == ["c"]
    assert await layers[0].group_channels("g") == []
    for layer in layers:
        await layer.flush()
        await layer.close()


class _Canary:
    """Unpickling this would create a file: proof that something executed."""

    path = ""

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (os.mkdir, (self.path, ""))  # type: ignore[return-value]


@settings(max_examples=100, deadline=None, derandomize=True, database=None)
@given(code=st.integers(-128, 127), data=st.binary(max_size=32), nest=st.booleans())
def test_msgpack_ext_types_never_decode(code: int, data: bytes, nest: bool) -> None:
    # ext 8 by hand: msgpack.ExtType cannot make the reserved negative codes (-1 is
    # Timestamp), which a foreign writer can still put on the wire.
    ext = b"\xc7" + bytes([len(data)]) + code.to_bytes(1, "big", signed=True) + data
    payload = b"\x82\xa4type\xa1t\xa1x\x91" + ext if nest else ext
    with pytest.raises(UndecodableMessage):
        Codec().decode(payload)


async def test_pickled_payloads_are_data_not_code(tmp_path: Path, redis_url: str) -> None:
    canary = tmp_path / "executed"
    _Canary.path = str(canary)
    evil = pickle.dumps(_Canary())
    layer = RedisChannelLayer(hosts=[redis_url], prefix=f"s{secrets.token_hex(4)}")
    await layer._send("evil", evil)
    await layer._send("evil", msgpack.packb({"type": "t", "x": msgpack.ExtType(1, evil)}))
    await layer.send("evil", msg(1))
    assert (await recv(layer, "evil"))["seq"] == 1
    assert layer.stats()["dropped_undecodable"] == 2
    assert not canary.exists()
    await layer.flush()
    await layer.close()

"""Property tests over the public API: bad input gets the documented exception, never a crash.

Names, messages and configs are drawn by Hypothesis. Each call either works (and the
message comes back equal) or raises the documented ChannelLayerError subclass with a
message that says what was wrong. The layer is shared by every example of a test and
must still work at the end (see conftest.still_works).
"""

from __future__ import annotations

import math
import re
from typing import Any

import msgpack
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from layers.base import ChannelLayer
from layers.codec import MAX_DEPTH
from layers.exceptions import InvalidChannelName, InvalidMessage, MessageTooLarge
from tests.helpers import msg, recv

NAME_RE = re.compile(r"[A-Za-z0-9\-_.]+(?:![A-Za-z0-9\-_.]*)?")
GROUP_RE = re.compile(r"[A-Za-z0-9\-_.]+")
NAME_CHARS = st.sampled_from("abcXYZ019-_.!:{}*?[] \x00é/\\")

names = st.one_of(
    st.text(NAME_CHARS, max_size=12),
    st.text(max_size=120),
    st.text(NAME_CHARS, min_size=95, max_size=105),
    st.none(),
    st.integers(),
    st.binary(max_size=8),
    st.lists(st.text(max_size=3), max_size=2),
)


def is_valid(name: object, pattern: re.Pattern[str]) -> bool:
    return isinstance(name, str) and 0 < len(name) < 100 and bool(pattern.fullmatch(name))


@given(name=names)
@example(name="x" * 99)
@example(name="a!")
@example(name="{b}")
async def test_channel_names(fuzzed: ChannelLayer, name: Any) -> None:
    if not is_valid(name, NAME_RE):
        with pytest.raises(InvalidChannelName, match="channel name") as info:
            await fuzzed.send(name, msg())
        assert isinstance(info.value, TypeError)
        with pytest.raises(InvalidChannelName, match="channel name"):
            await fuzzed.receive(name)
        with pytest.raises(InvalidChannelName, match="channel name"):
            await fuzzed.group_add("fuzz", name)
        return
    await fuzzed.send(name, msg(1))
    await fuzzed.group_add("fuzz", name)
    await fuzzed.group_discard("fuzz", name)
    if "!" not in name:
        assert (await recv(fuzzed, name))["seq"] == 1
    else:
        await fuzzed.flush()  # another process's inbox: nobody here reads it


@given(name=names)
async def test_group_names(fuzzed: ChannelLayer, name: Any) -> None:
    if not is_valid(name, GROUP_RE):
        for call in (
            fuzzed.group_add(name, "c"),
            fuzzed.group_discard(name, "c"),
            fuzzed.group_send(name, msg()),
            fuzzed.group_channels(name),
        ):
            with pytest.raises(InvalidChannelName, match="group name"):
                await call
        return
    await fuzzed.group_add(name, "fuzz.member")
    assert await fuzzed.group_channels(name) == ["fuzz.member"]
    await fuzzed.group_send(name, msg(2))
    assert (await recv(fuzzed, "fuzz.member"))["seq"] == 2
    await fuzzed.group_discard(name, "fuzz.member")
    assert await fuzzed.group_channels(name) == []


scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(1 << 63), (1 << 64) - 1),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.binary(max_size=20),
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.tuples(inner, inner)
        | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)
bad_leaves = st.one_of(
    st.integers(min_value=1 << 64),
    st.integers(max_value=-(1 << 63) - 1),
    st.sets(st.integers(), max_size=2),
    st.builds(object),
    st.complex_numbers(),
    st.dictionaries(st.integers() | st.binary() | st.none(), scalars, min_size=1, max_size=2),
    st.just(range(3)),
)
bad_trees = st.recursive(
    bad_leaves,
    lambda inner: (
        st.lists(inner, min_size=1, max_size=1)
        | st.dictionaries(st.text(max_size=5), inner, min_size=1, max_size=1)
    ),
    max_leaves=5,
)


def wire(value: object) -> bytes:
    """What equality means for messages: the same msgpack bytes (NaN included)."""
    return bytes(msgpack.packb(value, use_bin_type=True))


@given(body=values)
async def test_valid_messages_come_back_equal(fuzzed: ChannelLayer, body: Any) -> None:
    message = {"type": "fuzz.ok", "body": body}
    await fuzzed.send("fuzz.valid", message)
    got = await recv(fuzzed, "fuzz.valid")
    assert wire(got) == wire(message)
    if isinstance(body, float) and math.isnan(body):
        assert math.isnan(got["body"])


@given(bad=bad_trees, key=st.text(max_size=5))
@example(bad={None: None}, key="k")  # None once slipped through as a dict key
async def test_invalid_messages_are_refused_naming_the_path(
    fuzzed: ChannelLayer, bad: Any, key: str
) -> None:
    with pytest.raises(InvalidMessage, match=r"message\[") as info:
        await fuzzed.send("fuzz.bad", {"type": "fuzz.bad", key: bad})
    assert isinstance(info.value, TypeError)
    with pytest.raises(InvalidMessage, match=r"message\["):
        await fuzzed.group_send("fuzz", {"type": "fuzz.bad", key: bad})


@given(
    message=st.one_of(
        values.filter(lambda v: not isinstance(v, dict)),
        st.dictionaries(st.text(max_size=5).filter(lambda k: k != "type"), scalars, max_size=3),
        st.builds(dict, type=scalars.filter(lambda v: not isinstance(v, str))),
    )
)
async def test_non_messages_are_refused(fuzzed: ChannelLayer, message: Any) -> None:
    with pytest.raises(InvalidMessage, match="message must"):
        await fuzzed.send("fuzz.bad", message)


def nested(depth: int) -> Any:
    value: Any = "leaf"
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize("depth", [MAX_DEPTH, 1000, 100_000])
async def test_deep_recursion_is_refused_not_a_crash(fuzzed: ChannelLayer, depth: int) -> None:
    with pytest.raises(InvalidMessage, match=f"deeper than {MAX_DEPTH}"):
        await fuzzed.send("fuzz.deep", {"type": "t", "x": nested(depth)})
    cyclic: list[Any] = []
    cyclic.append(cyclic)
    with pytest.raises(InvalidMessage, match=f"deeper than {MAX_DEPTH}"):
        await fuzzed.send("fuzz.deep", {"type": "t", "x": cyclic})


@settings(max_examples=3)
@given(size=st.integers((1 << 20) + 1, 2 << 20), kind=st.sampled_from(["str", "bytes", "list"]))
async def test_huge_messages_raise_message_too_large(
    fuzzed: ChannelLayer, size: int, kind: str
) -> None:
    body: Any = {"str": "x" * size, "bytes": b"x" * size, "list": [1] * size}[kind]
    with pytest.raises(MessageTooLarge, match="max_message_size is 1048576"):
        await fuzzed.send("fuzz.huge", {"type": "t", "body": body})
    assert isinstance(MessageTooLarge(), ValueError)

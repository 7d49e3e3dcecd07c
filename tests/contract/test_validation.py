"""Bad names and bad messages get a clear exception naming what was wrong."""

from __future__ import annotations

from typing import Any

import pytest

from layers.base import ChannelLayer
from layers.exceptions import (
    ChannelLayerError,
    InvalidChannelName,
    InvalidMessage,
    MessageTooLarge,
)
from tests.contract.conftest import Layers
from tests.helpers import msg, nothing, recv
from tests.variants import Variant


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("has space", "' ' at position 3"),
        ("ünicode", "'ü' at position 0"),
        ("semi;colon", "';' at position 4"),
        ("two!bangs!", "at most one '!'"),
        ("!leading", "at least one character before '!'"),
        ("", "must not be empty"),
        ("x" * 100, "under 100"),
    ],
)
async def test_invalid_channel_names_say_what_is_wrong(
    layer: ChannelLayer, name: str, text: str
) -> None:
    with pytest.raises(InvalidChannelName, match=text) as info:
        await layer.send(name, msg())
    assert isinstance(info.value, TypeError)
    with pytest.raises(InvalidChannelName, match=text):
        await layer.receive(name)
    with pytest.raises(InvalidChannelName, match=text):
        await layer.group_add("g", name)


@pytest.mark.parametrize("name", [None, 42, b"bytes", ["list"]])
async def test_non_str_names_are_refused(layer: ChannelLayer, name: Any) -> None:
    with pytest.raises(InvalidChannelName, match="must be a str"):
        await layer.send(name, msg())
    with pytest.raises(InvalidChannelName, match="group name must be a str"):
        await layer.group_send(name, msg())


@pytest.mark.parametrize("name", ["a", "A-b_c.d", "x" * 99])
async def test_edge_valid_channel_names_work(layer: ChannelLayer, name: str) -> None:
    await layer.send(name, msg(1))
    assert (await recv(layer, name))["seq"] == 1


@pytest.mark.parametrize("name", ["local!", "proc.1!abc-_.9"])
async def test_local_channels_of_another_process(
    layer: ChannelLayer, variant: Variant, name: str
) -> None:
    await layer.send(name, msg(1))  # sending is always allowed
    if variant.shared:
        # Across processes only the maker of a local channel may receive on it.
        with pytest.raises(InvalidChannelName, match="belongs to another process"):
            await layer.receive(name)
    else:
        assert (await recv(layer, name))["seq"] == 1


@pytest.mark.parametrize(("group", "text"), [("g!x", "must not contain '!'"), ("a b", "' '")])
async def test_invalid_group_names(layer: ChannelLayer, group: str, text: str) -> None:
    for call in (
        lambda: layer.group_add(group, "c"),
        lambda: layer.group_discard(group, "c"),
        lambda: layer.group_send(group, msg()),
        lambda: layer.group_channels(group),
    ):
        with pytest.raises(InvalidChannelName, match=text):
            await call()


async def test_invalid_new_channel_prefix(layer: ChannelLayer) -> None:
    with pytest.raises(InvalidChannelName, match="new_channel prefix"):
        await layer.new_channel("bad prefix")
    with pytest.raises(InvalidChannelName, match="new_channel prefix"):
        await layer.new_channel("has!bang")


@pytest.mark.parametrize(
    ("message", "text"),
    [
        ("not a dict", "message must be a dict, got str"),
        ([("type", "x")], "message must be a dict, got list"),
        ({"text": "no type"}, 'must have a "type" key'),
        ({"type": 5}, 'must have a "type" key whose value is a str'),
        ({"type": "t", 1: "int key"}, "message has a key 1 of type int; keys must be str"),
        ({"type": "t", "a": {"b": [0, {2: 3}]}}, r"message\['a'\]\['b'\]\[1\] has a key 2"),
        ({"type": "t", "when": object()}, r"message\['when'\] is of type object"),
        ({"type": "t", "s": {1, 2}}, r"message\['s'\] is of type set"),
        ({"type": "t", "n": [2**64]}, r"message\['n'\]\[0\] = 18446744073709551616 is outside"),
        ({"type": "t", "n": -(2**63) - 1}, "outside the 64-bit integer range"),
    ],
)
async def test_invalid_messages_name_the_offending_path(
    layer: ChannelLayer, message: Any, text: str
) -> None:
    with pytest.raises(InvalidMessage, match=text) as info:
        await layer.send("valid", message)
    assert isinstance(info.value, TypeError)
    with pytest.raises(InvalidMessage, match=text):
        await layer.group_send("valid", message)
    await nothing(layer, "valid", 0.05)


async def test_too_deep_nesting_is_refused_not_a_crash(layer: ChannelLayer) -> None:
    deep: Any = "leaf"
    for _ in range(5000):
        deep = [deep]
    with pytest.raises(InvalidMessage, match="nests deeper than"):
        await layer.send("deep", {"type": "t", "deep": deep})
    await layer.send("deep", msg(1))
    assert (await recv(layer, "deep"))["seq"] == 1


async def test_message_too_large_sends_nothing(layer: ChannelLayer) -> None:
    with pytest.raises(MessageTooLarge, match=r"bytes encoded; max_message_size is 1048576"):
        await layer.send("big", {"type": "t", "body": "x" * (1 << 20)})
    with pytest.raises(MessageTooLarge):
        await layer.group_send("g", {"type": "t", "body": b"x" * (1 << 20)})
    assert layer.MessageTooLarge is MessageTooLarge
    await nothing(layer, "big", 0.05)


async def test_max_message_size_is_configurable(make_layer: Layers) -> None:
    layer = make_layer(max_message_size=512)
    await layer.send("c", {"type": "t", "body": "x" * 100})
    with pytest.raises(MessageTooLarge, match="max_message_size is 512"):
        await layer.send("c", {"type": "t", "body": "x" * 600})
    assert (await recv(layer, "c"))["body"] == "x" * 100


async def test_every_error_is_a_channel_layer_error(layer: ChannelLayer) -> None:
    for bad in (lambda: layer.send("a b", msg()), lambda: layer.send("a", {"x": 1})):
        with pytest.raises(ChannelLayerError):
            await bad()


async def test_layer_stays_usable_after_bad_input(layer: ChannelLayer) -> None:
    for bad in ("x y", None, "!"):
        with pytest.raises(InvalidChannelName):
            await layer.send(bad, msg())  # type: ignore[arg-type]
    with pytest.raises(InvalidMessage):
        await layer.send("ok", {"type": "t", "v": object()})
    await layer.send("ok", msg(9))
    assert (await recv(layer, "ok"))["seq"] == 9

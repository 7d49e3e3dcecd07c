"""The surface Django Channels code relies on, stats, and option checking."""

from __future__ import annotations

from typing import Any

import pytest

from layers.base import ChannelLayer
from layers.exceptions import ChannelFull, ConfigError, InvalidChannelName, MessageTooLarge
from tests.contract.conftest import Layers
from tests.helpers import msg, recv


async def test_extensions_and_exception_attributes(layer: ChannelLayer) -> None:
    assert {"groups", "flush"} <= set(layer.extensions)
    assert type(layer).ChannelFull is ChannelFull
    assert type(layer).MessageTooLarge is MessageTooLarge


async def test_channels_compatibility_helpers(layer: ChannelLayer) -> None:
    assert layer.require_valid_channel_name("a.b!c")
    assert layer.require_valid_group_name("room-1")
    with pytest.raises(TypeError):
        layer.require_valid_group_name("bad!")
    assert layer.non_local_name("a.b!c") == "a.b!"
    assert layer.non_local_name("plain") == "plain"
    assert layer.MAX_NAME_LENGTH == 100


async def test_stats_count_what_happened(layer: ChannelLayer) -> None:
    channel = await layer.new_channel()
    await layer.group_add("s", channel)
    await layer.send(channel, msg(1))
    await layer.group_send("s", msg(2))
    await recv(layer, channel)
    stats = layer.stats()
    assert stats["backend"] == type(layer).__name__
    assert (stats["sent"], stats["received"], stats["group_sends"]) == (2, 1, 1)
    for key in ("dropped_full", "dropped_expired", "dropped_undecodable"):
        assert stats[key] == 0


async def test_unknown_option_is_named(variant: Any) -> None:
    with pytest.raises(ConfigError, match="unknown option.*capcity.*known options are .*capacity"):
        variant.make(capcity=10)


@pytest.mark.parametrize(
    ("options", "text"),
    [
        ({"capacity": 0}, "capacity must be a whole number of at least 1, got 0"),
        ({"capacity": "10"}, "capacity must be a whole number"),
        ({"expiry": -1}, "expiry must be a positive number of seconds, got -1"),
        ({"group_expiry": float("inf")}, "group_expiry must be finite"),
        ({"channel_capacity": {"x*": 0}}, r"channel_capacity\['x\*'\] must be a whole number"),
        ({"channel_capacity": ["x"]}, "channel_capacity must be a mapping"),
        ({"channel_capacity": {"re:(": 1}}, "channel_capacity regex '\\(' is invalid"),
        ({"symmetric_encryption_keys": "one-key"}, "must be a list of keys, not one key"),
        ({"symmetric_encryption_keys": []}, "symmetric_encryption_keys is empty"),
        ({"max_message_size": 10}, "max_message_size must be at least 64 bytes"),
    ],
)
async def test_bad_option_values_are_named(
    make_layer: Layers, options: dict[str, Any], text: str
) -> None:
    with pytest.raises(ConfigError, match=text):
        make_layer(**options)


async def test_bad_prefix_option(make_layer: Layers) -> None:
    with pytest.raises(InvalidChannelName, match="prefix"):
        make_layer(prefix="no spaces")

"""Option tables: declared once per backend; checks, defaults and the README come from them."""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import pytest

from layers.base import ChannelLayer, sweep_interval
from layers.capacity import channel_full
from layers.config import layer_from_url
from layers.exceptions import ChannelFull, ConfigError
from layers.inmemory import InMemoryChannelLayer
from layers.ipc import IPCChannelLayer
from layers.options import Option, Options, at_least, flag, positive_int, seconds
from layers.rabbitmq import RabbitMQChannelLayer
from layers.redis import RedisChannelLayer

README = Path(__file__).resolve().parents[2] / "README.md"
TABLES = {
    "layers.base.ChannelLayer": ChannelLayer,
    "layers.ipc.IPCChannelLayer": IPCChannelLayer,
    "layers.redis.RedisChannelLayer": RedisChannelLayer,
    "layers.rabbitmq.RabbitMQChannelLayer": RabbitMQChannelLayer,
}
MARKER = re.compile(r"^<!-- options: (\S+) .*-->$")


def readme_tables() -> dict[str, str]:
    """Each `<!-- options: path -->` marker of README.md and the table under it."""
    found: dict[str, str] = {}
    lines = README.read_text(encoding="utf-8").splitlines()
    for number, line in enumerate(lines):
        marker = MARKER.match(line)
        if marker:
            table = []
            for row in lines[number + 1 :]:
                if not row.startswith("|"):
                    break
                table.append(row)
            found[marker.group(1)] = "\n".join(table)
    return found


@pytest.mark.parametrize("path", sorted(TABLES))
def test_the_readme_shows_each_table_as_declared(path: str) -> None:
    expected = TABLES[path].OPTIONS.markdown()
    assert readme_tables().get(path) == expected, (
        f"README.md's options table for {path} is out of step; it should read:\n{expected}"
    )


def test_every_backend_with_options_of_its_own_has_a_readme_table() -> None:
    assert set(readme_tables()) == set(TABLES)
    assert InMemoryChannelLayer.OPTIONS is ChannelLayer.OPTIONS  # nothing of its own
    for backend in TABLES.values():
        assert backend is ChannelLayer or backend.OPTIONS is not ChannelLayer.OPTIONS


def test_known_options_are_the_table() -> None:
    base = {"prefix", "expiry", "group_expiry", "capacity", "channel_capacity"}
    assert base < ChannelLayer.known_options()
    assert InMemoryChannelLayer.known_options() == ChannelLayer.known_options()
    assert {"hosts", "batch_size", "blocking_timeout"} < RedisChannelLayer.known_options()
    assert {"name", "path", "size"} < IPCChannelLayer.known_options()
    assert "prefetch_count" in RabbitMQChannelLayer.known_options()
    assert "batch_size" not in RabbitMQChannelLayer.known_options()


def test_a_table_parses_given_values_and_fills_in_parsed_defaults() -> None:
    table = Options(
        Option("wait", seconds(), 2, "doc"),
        Option("count", positive_int, 1, "doc"),
        extends=Options(Option("on", flag, False, "doc")),
    )
    assert table.parse("Thing", {"count": 3}) == {"on": False, "wait": 2.0, "count": 3}
    assert isinstance(table.parse("Thing", {})["wait"], float)
    assert [option.name for option in table.own] == ["wait", "count"]
    with pytest.raises(ConfigError, match=r"unknown option\(s\) for Thing: cuont; known .* count"):
        table.parse("Thing", {"cuont": 3})


def test_an_extending_table_replaces_an_option_of_the_same_name() -> None:
    assert RedisChannelLayer(expiry=5).expiry == 5.0
    with pytest.raises(ConfigError, match=r"expiry must be at most 3153600000 seconds \(100 y"):
        RedisChannelLayer(expiry=200 * 365 * 86400)


@pytest.mark.parametrize(
    ("parser", "value", "error"),
    [
        (seconds(), 0, "t must be a positive number of seconds, got 0"),
        (seconds(), True, "t must be a positive number of seconds, got True"),
        (seconds(), "5", "t must be a positive number of seconds, got '5'"),
        (seconds(), math.nan, "t must be a positive number of seconds, got nan"),
        (seconds(), math.inf, "t must be finite, got inf"),
        (seconds(10, " (why)"), 11, r"t must be at most 10 seconds \(why\), got 11"),
        (positive_int, 1.5, "t must be a whole number of at least 1, got 1.5"),
        (positive_int, False, "t must be a whole number of at least 1, got False"),
        (at_least(64, "bytes"), 63, "t must be a whole number of at least 64 bytes, got 63"),
        (flag, 1, "t must be true or false, got 1"),
    ],
)
def test_parsers_name_the_option_and_the_value(parser: Any, value: object, error: str) -> None:
    with pytest.raises(ConfigError, match=f"^{error}$"):
        parser("t", value)


@pytest.mark.parametrize(
    ("make", "option", "value"),
    [
        (RedisChannelLayer, "socket_timeout", 0),
        (RedisChannelLayer, "blocking_timeout", math.inf),
        (RedisChannelLayer, "batch_size", 0),
        (RedisChannelLayer, "cluster", "yes"),
        (RabbitMQChannelLayer, "prefetch_count", 1.5),
        (RabbitMQChannelLayer, "connect_timeout", -1),
        (IPCChannelLayer, "size", 1000),
        (IPCChannelLayer, "path", 3),
    ],
)
def test_backends_refuse_bad_values_by_name(make: Any, option: str, value: object) -> None:
    with pytest.raises(ConfigError, match=f"^{option} must be"):
        make(**{option: value})


def test_url_query_values_go_through_the_table() -> None:
    with pytest.raises(ConfigError, match="capacity must be a whole number"):
        layer_from_url("memory://?capacity=0")
    with pytest.raises(ConfigError, match="batch_size must be a whole number"):
        layer_from_url("redis://localhost:6379?batch_size=-2")
    layer = layer_from_url("memory://?capacity=7&expiry=2.5")
    assert (layer.capacity, layer.expiry) == (7, 2.5)


def test_channel_full_says_which_channel_and_its_capacity() -> None:
    error = channel_full("jobs", 3)
    assert isinstance(error, ChannelFull)
    assert str(error) == "channel 'jobs' is at its capacity of 3 messages"


def test_sweep_interval_is_twice_per_shortest_lifetime_at_least_every_30_s() -> None:
    assert sweep_interval(10.0) == 5.0
    assert sweep_interval(100.0, 4.0) == 2.0
    assert sweep_interval(86400.0, 3600.0) == 15.0

"""Per-channel capacity: a default plus channel_capacity globs or regexes, first match wins."""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Mapping

from .exceptions import ChannelFull, ConfigError
from .options import positive_int

__all__ = ["CapacityRules", "Rules", "channel_full", "parse_channel_capacity"]

Pattern = str | re.Pattern[str]
Rules = list[tuple[re.Pattern[str], int]]


def _compile(pattern: object) -> re.Pattern[str]:
    if isinstance(pattern, re.Pattern):
        return pattern
    if not isinstance(pattern, str) or not pattern:
        raise ConfigError(
            f"channel_capacity keys must be glob strings or compiled regexes, got {pattern!r}"
        )
    # JSON configs cannot hold a compiled regex, so "re:<regex>" spells one.
    if pattern.startswith("re:"):
        try:
            return re.compile(pattern[3:])
        except re.error as exc:
            raise ConfigError(f"channel_capacity regex {pattern[3:]!r} is invalid: {exc}") from None
    return re.compile(fnmatch.translate(pattern))


def parse_channel_capacity(name: str, value: object) -> Rules:
    """The channel_capacity option: a mapping of glob or regex to capacity, as rules."""
    if value is None:
        return []
    if not isinstance(value, Mapping):
        raise ConfigError(
            f"{name} must be a mapping of glob or regex to capacity, got {type(value).__name__}"
        )
    return [
        (_compile(pattern), positive_int(f"{name}[{pattern!r}]", capacity))
        for pattern, capacity in value.items()
    ]


def channel_full(channel: str, capacity: int) -> ChannelFull:
    """The error of a send to a channel at its capacity."""
    return ChannelFull(f"channel {channel!r} is at its capacity of {capacity} messages")


class CapacityRules:
    """Maps a channel name to its capacity."""

    def __init__(self, default: int, rules: Rules) -> None:
        self.default = default
        self.rules = rules

    @property
    def shared(self) -> int | CapacityRules:
        """The default when no rule makes capacities differ, else these rules: a fan-out
        with one capacity for every member spares a call per member."""
        return self if self.rules else self.default

    def __call__(self, channel: str) -> int:
        """The capacity of channel."""
        for regex, value in self.rules:
            if regex.match(channel):
                return value
        return self.default

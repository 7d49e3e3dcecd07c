"""Per-channel capacity: a default plus channel_capacity globs or regexes, first match wins."""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Mapping

from .exceptions import ConfigError

__all__ = ["CapacityRules"]

Pattern = str | re.Pattern[str]


def _positive_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{name} must be a whole number of at least 1, got {value!r}")
    return value


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


class CapacityRules:
    """Maps a channel name to its capacity."""

    def __init__(self, capacity: int, channel_capacity: Mapping[Pattern, int] | None) -> None:
        self.default = _positive_int("capacity", capacity)
        if channel_capacity is None:
            channel_capacity = {}
        if not isinstance(channel_capacity, Mapping):
            raise ConfigError(
                "channel_capacity must be a mapping of glob or regex to capacity, "
                f"got {type(channel_capacity).__name__}"
            )
        self.rules = [
            (_compile(pattern), _positive_int(f"channel_capacity[{pattern!r}]", value))
            for pattern, value in channel_capacity.items()
        ]

    def __call__(self, channel: str) -> int:
        """The capacity of channel."""
        for regex, value in self.rules:
            if regex.match(channel):
                return value
        return self.default

"""Layer options declared once: a table per backend of (name, parser, default, doc).

Each backend's table extends the base table (``ChannelLayer.OPTIONS``). The table
checks a CONFIG dict or URL query (unknown names are refused, naming the known ones),
parses every value (a bad one raises ConfigError naming the option), fills in the
defaults, lists ``known_options()``, and renders the README's option tables.
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from .exceptions import ConfigError

__all__ = [
    "Option",
    "Options",
    "as_given",
    "at_least",
    "flag",
    "no_meaning_here",
    "positive_int",
    "seconds",
]

Parser = Callable[[str, Any], Any]
"""(option name, value given) -> the value to use; raises ConfigError naming the option."""


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def seconds(maximum: float = math.inf, why: str = "") -> Parser:
    """A positive, finite number of seconds (at most maximum), as a float."""

    def parse(name: str, value: Any) -> float:
        if not _number(value) or not value > 0:
            raise ConfigError(f"{name} must be a positive number of seconds, got {value!r}")
        if not math.isfinite(value):
            raise ConfigError(f"{name} must be finite, got {value!r}")
        if value > maximum:
            raise ConfigError(
                f"{name} must be at most {maximum:.15g} seconds{why}, got {value:.15g}"
            )
        return float(value)

    return parse


def at_least(minimum: int, unit: str = "") -> Parser:
    """A whole number (not a bool) of at least minimum."""
    unit = f" {unit}" if unit else ""

    def parse(name: str, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise ConfigError(
                f"{name} must be a whole number of at least {minimum}{unit}, got {value!r}"
            )
        return value

    return parse


positive_int = at_least(1)
"""A whole number of at least 1."""


def flag(name: str, value: Any) -> bool:
    """True or False."""
    if not isinstance(value, bool):
        raise ConfigError(f"{name} must be true or false, got {value!r}")
    return value


def as_given(name: str, value: Any) -> Any:
    """Taken as given: the part that uses it checks it (with the other options it needs)."""
    return value


def no_meaning_here(why: str, meaningful: Callable[[Any], bool] = lambda v: False) -> Parser:
    """A peer's option accepted for drop-in configs: a warning says why it does nothing.

    meaningful(value) is True for values that need no warning (the behaviour they ask
    for is what happens here anyway). None, the default, never warns.
    """

    def parse(name: str, value: Any) -> Any:
        if value is not None and not meaningful(value):
            warnings.warn(f"{name}={value!r} has no effect here: {why}", UserWarning, stacklevel=6)
        return value

    return parse


@dataclass(frozen=True)
class Option:
    """One option: its name, how its value is checked, its default and what it does."""

    name: str
    parse: Parser
    default: Any
    doc: str


class Options:
    """A backend's option table: its own options after those of the table it extends."""

    def __init__(self, *options: Option, extends: Options | None = None) -> None:
        inherited = {option.name: option for option in extends} if extends is not None else {}
        self.own = list(options)
        self._options: dict[str, Option] = {**inherited, **{o.name: o for o in options}}

    def __iter__(self) -> Iterator[Option]:
        return iter(self._options.values())

    def names(self) -> set[str]:
        """Every option name of the table."""
        return set(self._options)

    def parse(self, owner: str, given: Mapping[str, Any]) -> dict[str, Any]:
        """Every option's value: given ones parsed, the rest defaults; unknown names refused."""
        unknown = set(given) - set(self._options)
        if unknown:
            raise ConfigError(
                f"unknown option(s) for {owner}: {', '.join(sorted(unknown))}; "
                f"known options are {', '.join(sorted(self._options))}"
            )
        return {
            name: option.parse(name, given.get(name, option.default))
            for name, option in self._options.items()
        }

    def markdown(self) -> str:
        """The table's own options as a Markdown table (README.md shows it)."""
        lines = ["| option | default | what it does |", "| --- | --- | --- |"]
        for option in self.own:
            lines.append(f"| `{option.name}` | `{option.default!r}` | {option.doc} |")
        return "\n".join(lines)


def options_from_query(query: str) -> dict[str, Any]:
    """URL query parameters as options: JSON values where they parse, else strings."""
    options: dict[str, Any] = {}
    for key, raw in parse_qsl(query, keep_blank_values=True, strict_parsing=False):
        try:
            options[key] = json.loads(raw)
        except ValueError:
            options[key] = raw
    return options

"""Groups over Redis: membership bundled per process inbox, and group_send's fan-out.

A group is a hash with one field per process inbox that has members (and one per
normal channel): see scripts/group_add.lua. A group_send reads it (members.lua, which
prunes lapsed members, so what it returns is live), then pushes ONE entry per inbox,
naming the inbox's member channels, and one per normal channel (group_send.lua): the
server's work grows with the inboxes, not the members, and counts nothing per member.
The inbox's owner fans the entry out into its channels' buffers, capping each at the
channel's capacity (layers/inbox.py). The sender's own channels get it without Redis.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..naming import non_local_name
from .keys import Keys

__all__ = ["GroupPlan", "GroupPlans", "channels_of", "target_of"]

_PLAN_CACHE_SIZE = 256
_EXPIRY = re.compile(rb"=\d+")


def target_of(channel: str) -> tuple[str, str]:
    """(hash field, local part or '') of a channel in a group (see group_add.lua)."""
    if "!" in channel:
        inbox = non_local_name(channel)
        return inbox, channel[len(inbox) :]
    return channel, ""


def _parts(value: bytes) -> bytes:
    """'a,b' of an inbox field's value '<13 digits>,a=<13 digits>,b=<13 digits>'."""
    return _EXPIRY.sub(b"", value[14:])


def channels_of(reply: list[bytes]) -> list[str]:
    """The member channels in members.lua's reply."""
    channels: list[str] = []
    for target, value in zip(reply[::2], reply[1::2], strict=True):
        name = target.decode()
        if name.endswith("!"):
            channels += [name + part for part in _parts(value).decode().split(",")]
        else:
            channels.append(name)
    return channels


@dataclass
class _Bundle:
    """One shard's share of a group_send: normal channels, and one entry per inbox."""

    normal: list[tuple[str, int]] = field(default_factory=list)
    inboxes: list[tuple[str, bytes]] = field(default_factory=list)

    def keys_and_args(self, keys: Keys) -> tuple[list[str], list[Any]]:
        names = [key for key, _ in self.normal] + [key for key, _ in self.inboxes]
        names.append(keys.counts(names[0]))  # group_send.lua's counters: its last KEY
        args: list[Any] = [len(self.normal), *(cap for _, cap in self.normal)]
        args += [b"*" + parts for _, parts in self.inboxes]
        return names, args

    def split(self) -> list[_Bundle]:
        """One bundle per cluster slot: each channel, each inbox."""
        return [_Bundle(normal=[item]) for item in self.normal] + [
            _Bundle(inboxes=[item]) for item in self.inboxes
        ]


@dataclass(frozen=True)
class GroupPlan:
    """How a group_send reaches a group's members."""

    # (shard, keys, args after payload and expiry) per group_send.lua call.
    calls: list[tuple[int, list[str], list[Any]]]
    # Members reached through another process's inbox (handed over: their owner may
    # still drop one whose buffer is full, and counts it there).
    handed: int
    # This layer's own member channels, delivered without Redis.
    here: list[str]


class GroupPlans:
    """Plans from members.lua's replies, cached: a membership seldom changes between sends."""

    def __init__(
        self,
        keys: Keys,
        shard_of: Callable[[str], int],
        capacity: Callable[[str], int],
        delivers_here: Callable[[str], bool],
        cluster: bool,
    ) -> None:
        self._keys = keys
        self._shard_of = shard_of
        self._capacity = capacity
        self._delivers_here = delivers_here
        self._cluster = cluster
        self._plans: dict[tuple[bytes, ...], GroupPlan] = {}

    def plan(self, reply: list[bytes]) -> GroupPlan:
        """The plan for a group whose members.lua reply this is."""
        key = tuple(reply)
        plan = self._plans.get(key)
        if plan is None:
            if len(self._plans) >= _PLAN_CACHE_SIZE:
                self._plans.clear()
            plan = self._plans[key] = self._make(reply)
        return plan

    def _make(self, reply: list[bytes]) -> GroupPlan:
        bundles: dict[int, _Bundle] = {}
        here: list[str] = []
        handed = 0
        for target, value in zip(reply[::2], reply[1::2], strict=True):
            name = target.decode()
            bundle = bundles.setdefault(self._shard_of(name), _Bundle())
            if not name.endswith("!"):
                bundle.normal.append((self._keys.channel(name), self._capacity(name)))
                continue
            parts = _parts(value)
            channels = [name + part for part in parts.decode().split(",")]
            if self._delivers_here(channels[0]):
                here += channels
            else:
                handed += len(channels)
                bundle.inboxes.append((self._keys.inbox(name), parts))
        calls = [
            (shard, *piece.keys_and_args(self._keys))
            for shard, bundle in bundles.items()
            for piece in (bundle.split() if self._cluster else [bundle])
            if piece.normal or piece.inboxes
        ]
        return GroupPlan(calls, handed, here)

"""InMemoryChannelLayer: every channel and group lives in this process's memory."""

from __future__ import annotations

import time
from collections.abc import Coroutine, Mapping
from types import MappingProxyType
from typing import Any

from ..base import ChannelLayer, GroupSendResult, sweep_interval
from ..capacity import channel_full
from ..figures import Figures, process_counters, top
from ..groups import GroupRegistry
from ..local import Capacity, LocalChannels

__all__ = ["InMemoryChannelLayer"]


class InMemoryChannelLayer(ChannelLayer):
    """One-process channel layer; a drop-in for channels.layers.InMemoryChannelLayer."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        interval = sweep_interval(self.expiry, self.group_expiry)
        self._local = LocalChannels(self.counters, sweep_interval=interval)
        self._groups = GroupRegistry()
        self._member_capacity: Capacity = self.capacity_rules.shared

    @property
    def channels(self) -> Mapping[str, int]:
        """Read-only: channel -> messages queued, for every channel that holds messages or
        has a receiver waiting (channels' attribute, which user tests read)."""
        return MappingProxyType(self._local.depths(watched=True))

    @property
    def groups(self) -> Mapping[str, Mapping[str, float]]:
        """Read-only: group -> {channel: monotonic membership deadline}, as channels' attribute."""
        return self._groups.view()

    def _maybe_sweep(self, now: float) -> None:
        if self._local.maybe_sweep():
            self._groups.sweep(now)

    async def _send(self, channel: str, payload: bytes) -> None:
        now = time.monotonic()
        self._maybe_sweep(now)
        capacity = self.capacity_rules(channel)
        if not self._local.put(channel, payload, now + self.expiry, capacity):
            raise channel_full(channel, capacity)

    def _receive_now(self, channel: str) -> bytes | None:
        return self._local.take(channel)

    def _receive(self, channel: str) -> Coroutine[Any, Any, bytes]:
        # Not a coroutine itself: an idle receiver then holds one frame less.
        self._maybe_sweep(time.monotonic())
        return self._local.get(channel)

    async def _group_add(self, group: str, channel: str) -> None:
        now = time.monotonic()
        self._maybe_sweep(now)
        self._groups.add(group, channel, now + self.group_expiry)

    async def _group_discard(self, group: str, channel: str) -> None:
        self._groups.discard(group, channel)

    async def _group_send(self, group: str, payload: bytes) -> GroupSendResult:
        now = time.monotonic()
        self._maybe_sweep(now)
        members = self._groups.members(group, now)
        full = self._local.put_many(members, payload, now + self.expiry, self._member_capacity)
        return len(members) - len(full), len(full)

    async def _group_channels(self, group: str) -> list[str]:
        return self._groups.members(group, time.monotonic())

    async def _flush(self) -> None:
        self._local.clear()
        self._groups.clear()

    async def _close(self) -> None:
        self._local.close()
        self._groups.clear()

    async def _figures(self, limit: int) -> Figures:
        # One process is the whole deployment: its counters are the deployment's.
        self._maybe_sweep(time.monotonic())
        depths, sizes = self._local.depths(), self._groups.sizes()
        return Figures(
            backend=type(self).__name__,
            prefix=self.prefix,
            scope="deployment",
            counters=process_counters(self.stats()),
            queued=sum(depths.values()),
            groups=len(sizes),
            members=sum(sizes.values()),
            deepest=top(depths, limit),
            largest_groups=top(sizes, limit),
        )

    def _stats(self) -> dict[str, Any]:
        return {**self._local.snapshot(), "groups": len(self._groups)}

"""InMemoryChannelLayer: every channel and group lives in this process's memory."""

from __future__ import annotations

import time
from typing import Any

from ..base import ChannelLayer, GroupSendResult
from ..exceptions import ChannelFull
from ..local import LocalChannels
from .groups import GroupRegistry

__all__ = ["InMemoryChannelLayer"]

# Expired messages and memberships are swept at most this often, and at least twice
# per expiry period, so that idle state never outlives its expiry by much.
_MAX_SWEEP_INTERVAL = 30.0


class InMemoryChannelLayer(ChannelLayer):
    """One-process channel layer; a drop-in for channels.layers.InMemoryChannelLayer."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        interval = min(self.expiry, self.group_expiry, _MAX_SWEEP_INTERVAL) / 2
        self._local = LocalChannels(self.counters, sweep_interval=interval)
        self._groups = GroupRegistry()

    def _maybe_sweep(self, now: float) -> None:
        if self._local.maybe_sweep():
            self._groups.sweep(now)

    async def _send(self, channel: str, payload: bytes) -> None:
        now = time.monotonic()
        self._maybe_sweep(now)
        capacity = self.capacity_rules(channel)
        if not self._local.put(channel, payload, now + self.expiry, capacity):
            raise ChannelFull(f"channel {channel!r} is at its capacity of {capacity} messages")

    async def _receive(self, channel: str) -> bytes:
        self._maybe_sweep(time.monotonic())
        return await self._local.get(channel)

    async def _group_add(self, group: str, channel: str) -> None:
        now = time.monotonic()
        self._maybe_sweep(now)
        self._groups.add(group, channel, now + self.group_expiry)

    async def _group_discard(self, group: str, channel: str) -> None:
        self._groups.discard(group, channel)

    async def _group_send(self, group: str, payload: bytes) -> GroupSendResult:
        now = time.monotonic()
        self._maybe_sweep(now)
        deadline = now + self.expiry
        delivered = dropped = 0
        put, capacity = self._local.put, self.capacity_rules
        for channel in self._groups.members(group, now):
            if put(channel, payload, deadline, capacity(channel)):
                delivered += 1
            else:
                dropped += 1
        return delivered, dropped

    async def _group_channels(self, group: str) -> list[str]:
        return self._groups.members(group, time.monotonic())

    async def _flush(self) -> None:
        self._local.clear()
        self._groups.clear()

    async def _close(self) -> None:
        self._local.close()
        self._groups.clear()

    def _stats(self) -> dict[str, Any]:
        return {**self._local.snapshot(), "groups": len(self._groups)}

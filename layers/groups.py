"""Group memberships with expiry, for backends that keep groups in process memory.

The in-memory layer keeps every group here (deadlines on the monotonic clock); the
RabbitMQ layer keeps its own process-local members here (deadlines on the wall clock,
since they come from other processes).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from types import MappingProxyType

__all__ = ["GroupRegistry"]


class GroupRegistry:
    """group -> {channel: membership deadline}; empty groups are forgotten at once."""

    def __init__(self) -> None:
        self._groups: dict[str, dict[str, float]] = {}
        self._lock = threading.Lock()

    def add(self, group: str, channel: str, deadline: float, now: float | None = None) -> bool:
        """Add or renew a membership until deadline; True if the group had no member
        before (none live at now, if now is given)."""
        with self._lock:
            members = self._groups.get(group)
            if members is None:
                members = self._groups[group] = {}
                fresh = True
            else:
                fresh = now is not None and not any(d > now for d in members.values())
            members[channel] = deadline
            return fresh

    def discard(self, group: str, channel: str, now: float | None = None) -> bool:
        """Remove a membership if present; True if that leaves the group without members
        (none live at now, if now is given), which forgets it."""
        with self._lock:
            members = self._groups.get(group)
            if members is None:
                return False
            members.pop(channel, None)
            if members and (now is None or any(d > now for d in members.values())):
                return False
            del self._groups[group]
            return True

    def members(self, group: str, now: float) -> list[str]:
        """The members whose membership is live at now; expired ones are removed."""
        with self._lock:
            members = self._groups.get(group)
            if members is None:
                return []
            expired = [c for c, deadline in members.items() if deadline <= now]
            for channel in expired:
                del members[channel]
            if not members:
                del self._groups[group]
                return []
            return list(members)

    def has(self, group: str, channel: str, now: float) -> bool:
        """True if channel's membership of group is live at now (any "x!*" channel's,
        for "x!")."""
        with self._lock:
            members = self._groups.get(group)
            if members is None:
                return False
            if channel.endswith("!"):
                return any(c.startswith(channel) and d > now for c, d in members.items())
            return members.get(channel, now) > now

    def sweep(self, now: float) -> None:
        """Remove every expired membership and every group left empty."""
        with self._lock:
            for group, members in list(self._groups.items()):
                for channel in [c for c, d in members.items() if d <= now]:
                    del members[channel]
                if not members:
                    del self._groups[group]

    def groups(self) -> list[str]:
        """Every group with memberships, live or not."""
        with self._lock:
            return list(self._groups)

    def sizes(self) -> dict[str, int]:
        """Members per group (lapsed ones not yet swept count)."""
        with self._lock:
            return {group: len(members) for group, members in self._groups.items()}

    def view(self) -> Mapping[str, Mapping[str, float]]:
        """A read-only copy: group -> {channel: membership deadline}."""
        with self._lock:
            return MappingProxyType(
                {group: MappingProxyType(dict(members)) for group, members in self._groups.items()}
            )

    def clear(self) -> list[str]:
        """Forget every group; return the groups there were."""
        with self._lock:
            groups = list(self._groups)
            self._groups.clear()
            return groups

    def __len__(self) -> int:
        return len(self._groups)

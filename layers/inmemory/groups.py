"""Group memberships with expiry, for backends that keep groups in process memory."""

from __future__ import annotations

import threading

__all__ = ["GroupRegistry"]


class GroupRegistry:
    """group -> {channel: membership deadline}; empty groups are forgotten at once."""

    def __init__(self) -> None:
        self._groups: dict[str, dict[str, float]] = {}
        self._lock = threading.Lock()

    def add(self, group: str, channel: str, deadline: float) -> None:
        """Add or renew a membership until deadline."""
        with self._lock:
            self._groups.setdefault(group, {})[channel] = deadline

    def discard(self, group: str, channel: str) -> None:
        """Remove a membership if present."""
        with self._lock:
            members = self._groups.get(group)
            if members is not None:
                members.pop(channel, None)
                if not members:
                    del self._groups[group]

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

    def sweep(self, now: float) -> None:
        """Remove every expired membership and every group left empty."""
        with self._lock:
            for group, members in list(self._groups.items()):
                for channel in [c for c, d in members.items() if d <= now]:
                    del members[channel]
                if not members:
                    del self._groups[group]

    def clear(self) -> None:
        """Forget every group."""
        with self._lock:
            self._groups.clear()

    def __len__(self) -> int:
        return len(self._groups)

"""What happened to messages in a layer's process, as stats() reports it."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Counters"]


@dataclass
class Counters:
    """What happened to messages in this process, for stats()."""

    sent: int = 0
    received: int = 0
    group_sends: int = 0
    dropped_full: int = 0
    dropped_expired: int = 0
    dropped_undecodable: int = 0
    flushed: int = 0
    requeue_failed: int = 0
    # Taken (prefetched) by a process that died holding them; counted by a survivor.
    dropped_crashed: int = 0

    def as_dict(self) -> dict[str, int]:
        """The counters as a plain dict."""
        return dict(self.__dict__)

    def shared(self, dead_owner: int = 0) -> tuple[int, ...]:
        """The counters a shared backend keeps (figures.SHARED_COUNTERS order); dead_owner
        adds drops for dead owners that the backend counts outside these counters."""
        return (
            self.sent,
            self.received,
            self.group_sends,
            self.dropped_full,
            self.dropped_expired,
            self.dropped_undecodable,
            self.dropped_crashed + dead_owner,
        )

"""A consistent-hash ring: adding a shard to N moves only about 1/(N+1) of the keys."""

from __future__ import annotations

import bisect
import hashlib
from collections.abc import Sequence

__all__ = ["HashRing"]


def _point(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big")


class HashRing:
    """Maps keys to shard indexes through virtual nodes placed by each shard's identity."""

    def __init__(self, nodes: Sequence[str], replicas: int = 160) -> None:
        self.nodes = list(nodes)
        ring = sorted(
            (_point(f"{node}#{i}"), index)
            for index, node in enumerate(nodes)
            for i in range(replicas)
        )
        self._points = [p for p, _ in ring]
        self._owners = [i for _, i in ring]
        self._cache: dict[str, int] = {}

    def index(self, key: str) -> int:
        """The shard index that owns key."""
        if len(self.nodes) == 1:
            return 0
        found = self._cache.get(key)
        if found is None:
            slot = bisect.bisect(self._points, _point(key)) % len(self._points)
            found = self._owners[slot]
            if len(self._cache) >= 65536:
                self._cache.clear()
            self._cache[key] = found
        return found

"""The region's index: queues, groups, watchers and the heap's free list, as plain data.

The whole index is one msgpack document (see region.py for how it is committed). It
holds no payloads, only where they are in the heap, so it stays small. Nothing here
does I/O; the region reads and writes payload bytes at the offsets chosen here.
"""

from __future__ import annotations

import bisect
from typing import Any

__all__ = ["Entry", "State"]

# A queued message: [sequence, deadline (time.monotonic, host-wide), offset, size].
Entry = list[Any]
_ALIGN = 8


def _aligned(size: int) -> int:
    return max(_ALIGN, (size + _ALIGN - 1) // _ALIGN * _ALIGN)


def _inbox(channel: str) -> str | None:
    bang = channel.find("!")
    return channel[: bang + 1] if bang >= 0 else None


class State:
    """Operations on the index document; the region commits it after each change."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.d = data
        self.q: dict[str, list[Entry]] = data["q"]
        self.g: dict[str, dict[str, float]] = data["g"]
        self.w: dict[str, list[str]] = data["w"]
        self.p: dict[str, int] = data["p"]
        self.free: list[list[int]] = data["free"]
        self.refs: dict[int, list[int]] = data["refs"]

    @classmethod
    def fresh(cls, heap_start: int, heap_end: int) -> State:
        """An empty index over the heap [heap_start, heap_end)."""
        return cls(
            {
                "seq": 0,
                "q": {},
                "g": {},
                "w": {},
                "p": {},
                "free": [[heap_start, heap_end - heap_start]],
                "refs": {},
                "heap": [heap_start, heap_end],
            }
        )

    # -- the heap ------------------------------------------------------------------

    def alloc(self, size: int, count: int) -> int | None:
        """Reserve size bytes referenced by count entries; None if no extent is big enough."""
        need = _aligned(size)
        for i, (offset, length) in enumerate(self.free):
            if length >= need:
                if length == need:
                    del self.free[i]
                else:
                    self.free[i] = [offset + need, length - need]
                self.refs[offset] = [need, count]
                return offset
        return None

    def release(self, offset: int, count: int = 1) -> None:
        """Drop count references to the extent at offset; free it when none are left."""
        ref = self.refs[offset]
        ref[1] -= count
        if ref[1] > 0:
            return
        del self.refs[offset]
        self._free(offset, ref[0])

    def _free(self, offset: int, size: int) -> None:
        free = self.free
        i = bisect.bisect_left(free, offset, key=lambda extent: extent[0])
        if i > 0 and free[i - 1][0] + free[i - 1][1] == offset:
            i -= 1
            free[i][1] += size
        else:
            free.insert(i, [offset, size])
        if i + 1 < len(free) and free[i][0] + free[i][1] == free[i + 1][0]:
            free[i][1] += free[i + 1][1]
            del free[i + 1]

    def heap_used(self) -> int:
        """Bytes of the heap held by queued payloads."""
        start, end = self.d["heap"]
        return int(end - start - sum(length for _, length in self.free))

    # -- queues ----------------------------------------------------------------------

    def purge(self, channel: str, now: float) -> int:
        """Drop the expired head of channel's queue; return how many were dropped."""
        queue = self.q.get(channel)
        if not queue:
            return 0
        dropped = 0
        while queue and queue[0][1] <= now:
            self.release(queue.pop(0)[2])
            dropped += 1
        if not queue:
            del self.q[channel]
        return dropped

    def depth(self, channel: str) -> int:
        """Messages queued on channel (expired ones included until purged)."""
        return len(self.q.get(channel, ()))

    def push(self, channel: str, deadline: float, offset: int, size: int) -> None:
        """Queue a reference to the payload at offset on channel."""
        seq = self.d["seq"]
        self.d["seq"] = seq + 1
        self.q.setdefault(channel, []).append([seq, deadline, offset, size])

    def pop(self, channel: str, now: float) -> tuple[Entry | None, int]:
        """(the next live entry of channel or of every 'x!*' for 'x!', expired dropped)."""
        if not channel.endswith("!"):
            expired = self.purge(channel, now)
            queue = self.q.get(channel)
            if not queue:
                return None, expired
            entry = queue.pop(0)
            if not queue:
                del self.q[channel]
            return entry, expired
        expired = 0
        best: str | None = None
        for name in [n for n in self.q if n.startswith(channel)]:
            expired += self.purge(name, now)
            queue = self.q.get(name)
            if queue and (best is None or queue[0][0] < self.q[best][0][0]):
                best = name
        if best is None:
            return None, expired
        return self.pop(best, now)[0], expired

    # -- watchers: who to wake when a channel gets a message ---------------------------

    def watch(self, channel: str, waker: str) -> None:
        """Ask to be woken (once) when channel, or 'x!*' for 'x!', gets a message."""
        wakers = self.w.setdefault(channel, [])
        if waker not in wakers:
            wakers.append(waker)

    def watching(self, channel: str, waker: str) -> bool:
        """True while waker's watch on channel has not been used up by a send."""
        return waker in self.w.get(channel, ())

    def take_watchers(self, channel: str, into: set[str]) -> None:
        """Move the watchers of channel (and of its inbox) into the set to wake."""
        into.update(self.w.pop(channel, ()))
        inbox = _inbox(channel)
        if inbox is not None:
            into.update(self.w.pop(inbox, ()))

    # -- groups ----------------------------------------------------------------------

    def group_add(self, group: str, channel: str, deadline: float) -> None:
        """Add or renew a membership until deadline."""
        self.g.setdefault(group, {})[channel] = deadline

    def group_discard(self, group: str, channel: str) -> bool:
        """Remove a membership; True if there was one."""
        members = self.g.get(group)
        if members is None or channel not in members:
            return False
        del members[channel]
        if not members:
            del self.g[group]
        return True

    def members(self, group: str, now: float) -> list[str]:
        """The live members of group."""
        return [c for c, deadline in self.g.get(group, {}).items() if deadline > now]

    # -- housekeeping ----------------------------------------------------------------

    def sweep(self, now: float) -> int:
        """Drop expired messages and memberships everywhere; return messages dropped."""
        dropped = sum(self.purge(channel, now) for channel in list(self.q))
        for group, members in list(self.g.items()):
            for channel in [c for c, deadline in members.items() if deadline <= now]:
                del members[channel]
            if not members:
                del self.g[group]
        return dropped

    def flush(self) -> int:
        """Drop every message and group (watchers stay); return messages dropped."""
        dropped = sum(len(queue) for queue in self.q.values())
        for queue in self.q.values():
            for entry in queue:
                self.release(entry[2])
        self.q.clear()
        self.g.clear()
        return dropped

    def drop_client(self, client_id: str) -> int:
        """Forget a participant: its watchers, its local channels' messages and memberships."""
        self.p.pop(client_id, None)
        mark = f".{client_id}!"
        for channel in list(self.w):
            kept = [w for w in self.w[channel] if not w.startswith(client_id + ".")]
            if kept:
                self.w[channel] = kept
            else:
                del self.w[channel]
        dropped = 0
        for channel in [c for c in self.q if mark in c]:
            for entry in self.q.pop(channel):
                self.release(entry[2])
                dropped += 1
        for group in list(self.g):
            for channel in [c for c in self.g[group] if mark in c]:
                self.group_discard(group, channel)
        return dropped

    def queued(self) -> int:
        """Messages queued in every channel."""
        return sum(len(queue) for queue in self.q.values())

"""The region's index and its queues.

The index is one small msgpack document: per channel or inbox only (head, tail,
count), the depth counts of local channels, the watchers, the participants, the
heap's free list, and where the groups are (groups.py). Messages live in the heap as
linked nodes, each a header and its payload, so a send or a receive costs the same
however long the queues are.

Why this survives a writer killed at any instant (region.py commits the index with
one store): a new node is written into space the committed index calls free; linking
it changes the old tail's `next`, but readers follow at most `count` nodes, so a link
the committed index does not count is never followed. Space freed in a transaction
joins the free list only at its commit, so nothing the committed index still uses is
overwritten before then. Nothing here locks or commits: region.py does.
"""

from __future__ import annotations

import bisect
import mmap
import struct
from collections.abc import Callable
from typing import Any

from ..inbox import pack_entry
from .groups import GroupCache, Groups

__all__ = ["NODE", "State", "owner"]

# next node (0: none), sequence, deadline (time.monotonic: one clock for the whole
# host on Linux), payload size.
NODE = struct.Struct("<QQdI4x")
_ALIGN = 8


def _aligned(size: int) -> int:
    return (size + _ALIGN - 1) // _ALIGN * _ALIGN


def owner(channel: str) -> str:
    """The client id of the layer that receives a process-local channel or inbox."""
    return channel[: channel.index("!")].rpartition(".")[2]


class State:
    """The index of one region, with the heap it describes."""

    def __init__(self, data: dict[str, Any], mm: mmap.mmap, cache: GroupCache) -> None:
        self.d = data
        self.mm = mm
        self.q: dict[str, list[int]] = data["q"]  # channel -> [head, tail, count]
        self.groups = Groups(self, cache)
        self.w: dict[str, list[str]] = data["w"]
        self.p: dict[str, int] = data["p"]
        self.free: list[list[int]] = data["free"]
        # Process-local channel -> messages sent to it and not yet taken by its owner
        # (in its inbox here, or in the owner's local buffers): its capacity count.
        self.dp: dict[str, int] = data["dp"]
        # The deployment's counters (figures.SHARED_COUNTERS), added to by every user.
        self.c: dict[str, int] = data.setdefault("c", {})
        self._freed: list[tuple[int, int]] = []

    @classmethod
    def fresh(cls, mm: mmap.mmap, heap_start: int, heap_end: int, cache: GroupCache) -> State:
        """An empty index over the heap [heap_start, heap_end)."""
        data = {"seq": 0, "q": {}, "gd": None, "w": {}, "p": {}, "dp": {}, "c": {}}
        data["heap"] = [heap_start, heap_end]
        data["free"] = [[heap_start, heap_end - heap_start]]
        return cls(data, mm, cache)

    # -- the heap ------------------------------------------------------------------

    def _alloc(self, size: int) -> int | None:
        need = _aligned(size)
        for i, (offset, length) in enumerate(self.free):
            if length >= need:
                if length == need:
                    del self.free[i]
                else:
                    self.free[i] = [offset + need, length - need]
                return int(offset)
        return None

    def _release(self, offset: int, size: int) -> None:
        self._freed.append((offset, _aligned(NODE.size + size)))

    def alloc_raw(self, size: int) -> int | None:
        """Heap space for size bytes of something other than a message node."""
        return self._alloc(size)

    def release_raw(self, offset: int, size: int) -> None:
        """Free what alloc_raw gave, at commit."""
        self._freed.append((offset, _aligned(size)))

    def next_seq(self) -> int:
        """A number never handed out before in this region."""
        seq: int = self.d["seq"]
        self.d["seq"] = seq + 1
        return seq

    def settle(self) -> bool:
        """Write what waits for the commit, then return this transaction's freed space to
        the free list (just before commit); False if there was no room."""
        if not self.groups.save():
            return False
        free = self.free
        for offset, size in self._freed:
            i = bisect.bisect_left(free, offset, key=lambda extent: extent[0])
            if i > 0 and free[i - 1][0] + free[i - 1][1] == offset:
                i -= 1
                free[i][1] += size
            else:
                free.insert(i, [offset, size])
            if i + 1 < len(free) and free[i][0] + free[i][1] == free[i + 1][0]:
                free[i][1] += free[i + 1][1]
                del free[i + 1]
        self._freed.clear()
        return True

    def heap_used(self) -> int:
        """Bytes of the heap held by queued messages."""
        start, end = self.d["heap"]
        return int(end - start - sum(length for _, length in self.free))

    # -- queues ----------------------------------------------------------------------

    def depth(self, channel: str) -> int:
        """Messages queued on channel (expired ones included until purged)."""
        queue = self.q.get(channel)
        return queue[2] if queue else 0

    def push(self, channel: str, deadline: float, payload: bytes) -> bool:
        """Queue payload on channel; False if the heap has no room for it."""
        offset = self._alloc(NODE.size + len(payload))
        if offset is None:
            return False
        seq = self.next_seq()
        NODE.pack_into(self.mm, offset, 0, seq, deadline, len(payload))
        start = offset + NODE.size
        self.mm[start : start + len(payload)] = payload
        queue = self.q.get(channel)
        if queue is None:
            self.q[channel] = [offset, offset, 1]
        else:
            # Invisible until commit: the committed count stops readers before it.
            struct.pack_into("<Q", self.mm, queue[1], offset)
            queue[1] = offset
            queue[2] += 1
        return True

    def _head(self, channel: str) -> tuple[int, int, float, int]:
        """(next, seq, deadline, size) of channel's first node."""
        result: tuple[int, int, float, int] = NODE.unpack_from(self.mm, self.q[channel][0])
        return result

    def _drop_head(self, channel: str) -> tuple[int, int]:
        """Unlink channel's first node; (its offset, its payload size)."""
        queue = self.q[channel]
        offset = queue[0]
        following, _, _, size = NODE.unpack_from(self.mm, offset)
        self._release(offset, size)
        if queue[2] == 1:
            del self.q[channel]
        else:
            queue[0] = following
            queue[2] -= 1
        return offset, size

    def purge(self, channel: str, now: float) -> int:
        """Drop the expired messages at the head of channel; how many were dropped."""
        dropped = 0
        inbox = channel.endswith("!")
        while channel in self.q and self._head(channel)[2] <= now:
            offset, size = self._drop_head(channel)
            if inbox:
                parts, counted = self._parts(offset, size)
                if counted:
                    self.ack({channel + part: 1 for part in parts})
                dropped += len(parts)
            else:
                dropped += 1
        return dropped

    def pop(self, channel: str, now: float) -> tuple[bytes | None, int]:
        """(next live payload of a normal channel or None, how many had expired)."""
        expired = self.purge(channel, now)
        if channel not in self.q:
            return None, expired
        offset, size = self._drop_head(channel)
        start = offset + NODE.size
        return self.mm[start : start + size], expired

    # -- process inboxes: one queue per layer, entries naming their local channels -------

    def local_depth(self, channel: str) -> int:
        """Messages for a process-local channel not yet taken by its owner."""
        return self.dp.get(channel, 0)

    def push_local(
        self, inbox: str, parts: list[str], deadline: float, payload: bytes, counted: bool = True
    ) -> bool:
        """Queue one entry for the local channels inbox+part; False if no room.
        counted=False (a group message): no depth count, the owner caps its buffers."""
        entry = pack_entry(parts, payload, counted)
        if not self.push(inbox, deadline, entry):
            return False
        if not counted:
            return True
        for part in parts:
            channel = inbox + part
            self.dp[channel] = self.dp.get(channel, 0) + 1
        return True

    def _parts(self, offset: int, size: int) -> tuple[list[str], bool]:
        """The local parts an inbox entry names, and whether their depth was counted."""
        start = offset + NODE.size
        head = self.mm[start : start + min(size, 4096)].partition(b"\n")[0]
        counted = not head.startswith(b"*")
        # A record a foreign writer left without a header still counts as one message.
        return head[not counted :].decode(errors="replace").split(","), counted

    def pop_inbox(
        self, inbox: str, now: float, limit: int
    ) -> tuple[list[tuple[float, bytes]], int]:
        """Up to limit live (deadline, entry) of inbox, and how many messages had expired."""
        expired = self.purge(inbox, now)
        taken: list[tuple[float, bytes]] = []
        while inbox in self.q and len(taken) < limit:
            deadline = self._head(inbox)[2]
            offset, size = self._drop_head(inbox)
            start = offset + NODE.size
            taken.append((deadline, self.mm[start : start + size]))
        return taken, expired

    def ack(self, counts: dict[str, int]) -> None:
        """Release depth counts of local channels whose messages left their owner."""
        dp = self.dp
        for channel, count in counts.items():
            left = dp.get(channel, 0) - count
            if left > 0:
                dp[channel] = left
            else:
                dp.pop(channel, None)

    def _drop_queue(self, channel: str) -> int:
        """Drop every message of channel; how many (an inbox entry counts each channel)."""
        dropped = 0
        inbox = channel.endswith("!")
        while channel in self.q:
            offset, size = self._drop_head(channel)
            dropped += len(self._parts(offset, size)[0]) if inbox else 1
        return dropped

    # -- watchers: who to wake when a channel gets a message ---------------------------

    def watch(self, channel: str, waker: str) -> None:
        """Ask to be woken (once) when channel (a normal channel or an inbox) gets one."""
        wakers = self.w.setdefault(channel, [])
        if waker not in wakers:
            wakers.append(waker)

    def watching(self, channel: str, waker: str) -> bool:
        """True while waker's watch on channel has not been used up by a send."""
        return waker in self.w.get(channel, ())

    def take_watchers(self, channel: str, into: set[str]) -> None:
        """Move the watchers of channel into the set to wake."""
        into.update(self.w.pop(channel, ()))

    # -- housekeeping ----------------------------------------------------------------

    def sweep(self, now: float) -> int:
        """Drop expired messages and memberships everywhere; return messages dropped."""
        dropped = sum(self.purge(channel, now) for channel in list(self.q))
        self.groups.prune(now)
        return dropped

    def flush(self) -> int:
        """Drop every message and group (watchers stay); return messages dropped."""
        dropped = self.queued()
        self.q.clear()
        self.groups.clear()
        self.dp.clear()
        start, end = self.d["heap"]
        self.free[:] = [[start, end - start]]
        self._freed.clear()
        return dropped

    def drop_client(self, client_id: str, now: float) -> int:
        """Forget a participant: its watchers, its local channels' messages and memberships;
        return how many messages that dropped."""
        self.p.pop(client_id, None)
        for channel in list(self.w):
            kept = [w for w in self.w[channel] if not w.startswith(client_id + ".")]
            if kept:
                self.w[channel] = kept
            else:
                del self.w[channel]
        return self._drop_local(now, lambda c: owner(c) == client_id)

    def drop_orphans(self, now: float) -> int:
        """Drop what belongs to local channels of no participant; return messages dropped.

        Only the layer that made a local channel receives on it, so once that layer is
        gone nobody ever will.
        """
        return self._drop_local(now, lambda c: owner(c) not in self.p)

    def _drop_local(self, now: float, gone: Callable[[str], bool]) -> int:
        local = [c for c in self.q if c.endswith("!") and gone(c)]
        dropped = sum(self._drop_queue(c) for c in local)
        for channel in [c for c in self.dp if gone(c)]:
            del self.dp[channel]
        self.groups.prune(now, lambda c: "!" in c and gone(c))
        return dropped

    def holds_messages(self) -> bool:
        """True while a normal channel holds a message or a group has a member."""
        return any(not c.endswith("!") for c in self.q) or bool(self.groups.where)

    def queued(self) -> int:
        """Entries queued in every channel and inbox (an inbox entry may serve several)."""
        return sum(queue[2] for queue in self.q.values())

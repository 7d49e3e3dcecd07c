"""Group memberships, kept out of the index so that its commits stay small.

Each group's members are msgpack blobs in the heap, of at most CHUNK members each, and
the directory that says where each group's blobs are is one more; the index holds
only the directory's place. Blobs are never changed in place: a change writes a new
blob into free space and frees the old one at commit, like every other write
(state.py). An add or a discard rewrites one blob, not the whole group, so filling a
group costs time in proportion to its size, not to its square. Each process keeps
what it decoded by version, so an unchanged blob or directory is decoded once.
"""

from __future__ import annotations

import mmap
from collections.abc import Callable
from typing import Any, Protocol

import msgpack

__all__ = ["CHUNK", "GroupCache", "Groups", "Heap"]

CHUNK = 256
"""Members per blob at most: what one add or discard rewrites."""

_CACHE_SIZE = 4096

Place = list[int]  # [offset, size, version] of one blob in the heap
Members = dict[str, float]  # channel -> membership deadline


class GroupCache:
    """What one process has decoded: blobs and each group's merged members, by version."""

    def __init__(self) -> None:
        self.chunks: dict[int, Members] = {}
        self.merged: dict[str, tuple[tuple[int, ...], Members]] = {}
        self.directory: tuple[int, dict[str, list[Place]]] = (-1, {})


class Heap(Protocol):
    """What Groups needs of the index it is part of (state.State): its dict and heap."""

    d: dict[str, Any]
    mm: mmap.mmap

    def alloc_raw(self, size: int) -> int | None:
        """The offset of size free heap bytes, or None if the heap is full."""

    def release_raw(self, offset: int, size: int) -> None:
        """Free heap bytes at commit."""

    def next_seq(self) -> int:
        """A new version number."""


class Groups:
    """The groups of one index: group -> {channel: membership deadline}."""

    def __init__(self, state: Heap, cache: GroupCache) -> None:
        self._state = state
        self._cache = cache
        self._where: dict[str, list[Place]] | None = None  # group -> its blobs' places
        self._dirty = False

    # -- reading -----------------------------------------------------------------------

    @property
    def where(self) -> dict[str, list[Place]]:
        """The directory: where each group's blobs are (do not change what it returns)."""
        if self._where is None:
            place = self._state.d.get("gd")
            if place is None:
                self._where = {}
            elif self._cache.directory[0] == place[2]:
                self._where = self._cache.directory[1]
            else:
                self._where = self._decode(place)
                self._cache.directory = (place[2], self._where)
        return self._where

    def _decode(self, place: Place) -> Any:
        offset, size, _ = place
        return msgpack.unpackb(self._state.mm[offset : offset + size])

    def _chunk(self, place: Place) -> Members:
        """One blob's members (do not change the dict returned)."""
        cached = self._cache.chunks.get(place[2])
        if cached is None:
            cached = self._decode(place)
            self._remember(place[2], cached)
        return cached

    def _remember(self, version: int, members: Members) -> None:
        if len(self._cache.chunks) >= _CACHE_SIZE:
            self._cache.chunks.clear()
        self._cache.chunks[version] = members

    def get(self, group: str) -> Members:
        """The memberships of group, live or not (do not change the dict returned)."""
        places = self.where.get(group)
        if not places:
            return {}
        if len(places) == 1:
            return self._chunk(places[0])
        versions = tuple(place[2] for place in places)
        merged = self._cache.merged.get(group)
        if merged is not None and merged[0] == versions:
            return merged[1]
        members: Members = {}
        for place in places:
            members.update(self._chunk(place))
        if len(self._cache.merged) >= _CACHE_SIZE:
            self._cache.merged.clear()
        self._cache.merged[group] = (versions, members)
        return members

    def members(self, group: str, now: float) -> list[str]:
        """The live members of group."""
        return [c for c, deadline in self.get(group).items() if deadline > now]

    # -- writing -----------------------------------------------------------------------

    def _write(self, members: Members) -> Place | None:
        state = self._state
        body = msgpack.packb(members)
        offset = state.alloc_raw(len(body))
        if offset is None:
            return None
        state.mm[offset : offset + len(body)] = body
        place = [offset, len(body), state.next_seq()]
        self._remember(place[2], members)
        return place

    def _replace(self, group: str, index: int, members: Members) -> bool:
        """Put members in place of group's blob index (len(places): a new blob; empty:
        the blob goes); False (and nothing changed) if the heap is full."""
        places = list(self.where.get(group, []))
        new = None
        if members:
            new = self._write(members)
            if new is None:
                return False
        old = places[index] if index < len(places) else None
        if new is None:
            del places[index]
        elif old is None:
            places.append(new)
        else:
            places[index] = new
        if not self._dirty:  # copy on write: the cached directory stays as committed
            self._where = dict(self.where)
            self._dirty = True
        where = self.where
        if places:
            where[group] = places
        else:
            del where[group]
        if old is not None:
            self._state.release_raw(old[0], old[1])
        return True

    def save(self) -> bool:
        """Write the directory if it changed (before the commit); False if no room."""
        if not self._dirty:
            return True
        d = self._state.d
        old = d.get("gd")
        where = self.where
        place = None
        if where:
            body = msgpack.packb(where)
            offset = self._state.alloc_raw(len(body))
            if offset is None:
                return False
            self._state.mm[offset : offset + len(body)] = body
            place = [offset, len(body), self._state.next_seq()]
            self._cache.directory = (place[2], where)
        d["gd"] = place
        if old is not None:
            self._state.release_raw(old[0], old[1])
        self._dirty = False
        return True

    def _find(self, group: str, channel: str) -> tuple[int, Members] | None:
        """Which of group's blobs holds channel, and its members."""
        for index, place in enumerate(self.where.get(group, [])):
            chunk = self._chunk(place)
            if channel in chunk:
                return index, chunk
        return None

    def add(self, group: str, channel: str, deadline: float) -> bool:
        """Add or renew a membership; False if the heap has no room for it."""
        found = self._find(group, channel)
        if found is not None:
            index, chunk = found
            return self._replace(group, index, {**chunk, channel: deadline})
        places = self.where.get(group, [])
        if places:
            last = self._chunk(places[-1])
            if len(last) < CHUNK:
                return self._replace(group, len(places) - 1, {**last, channel: deadline})
        return self._replace(group, len(places), {channel: deadline})

    def discard(self, group: str, channel: str) -> bool | None:
        """Remove a membership: True if removed, False if none, None if no room."""
        found = self._find(group, channel)
        if found is None:
            return False
        index, chunk = found
        kept = {c: d for c, d in chunk.items() if c != channel}
        return True if self._replace(group, index, kept) else None

    def prune(self, now: float, gone: Callable[[str], bool] | None = None) -> None:
        """Drop expired memberships everywhere, and those of channels gone(channel) names.

        A blob whose replacement finds no room stays: members() still leaves out the
        expired, and the next prune tries again.
        """
        for group in list(self.where):
            # From the last blob back, so that a blob that goes moves none still to do.
            for index in reversed(range(len(self.where.get(group, [])))):
                chunk = self._chunk(self.where[group][index])
                kept = {c: d for c, d in chunk.items() if d > now and not (gone and gone(c))}
                if len(kept) != len(chunk):
                    self._replace(group, index, kept)

    def clear(self) -> None:
        """Forget every group (their space goes with the flush that calls this)."""
        self._state.d["gd"] = None
        self._where = {}
        self._dirty = False

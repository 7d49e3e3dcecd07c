"""Group memberships, kept out of the index so that its commits stay small.

Each group's members are a msgpack blob in the heap, and so is the directory that
says where each group's blob is; the index holds only the directory's place. Blobs
are never changed in place: a change writes a new blob into free space and frees the
old one at commit, like every other write (state.py). Each process keeps what it
decoded by version, so an unchanged group or directory is decoded once.
"""

from __future__ import annotations

import mmap
from collections.abc import Callable
from typing import Any, Protocol

import msgpack

__all__ = ["GroupCache", "Groups", "Heap"]

_CACHE_SIZE = 4096


class GroupCache:
    """What one process has decoded: blobs by group, and the directory, by version."""

    def __init__(self) -> None:
        self.blobs: dict[str, tuple[int, dict[str, float]]] = {}
        self.directory: tuple[int, dict[str, list[int]]] = (-1, {})


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
        self._where: dict[str, list[int]] | None = None  # group -> [offset, size, version]
        self._dirty = False

    # -- reading -----------------------------------------------------------------------

    @property
    def where(self) -> dict[str, list[int]]:
        """The directory: where each group's blob is (do not change the dict returned)."""
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

    def _decode(self, place: list[int]) -> Any:
        offset, size, _ = place
        return msgpack.unpackb(self._state.mm[offset : offset + size])

    def get(self, group: str) -> dict[str, float]:
        """The memberships of group, live or not (do not change the dict returned)."""
        place = self.where.get(group)
        if place is None:
            return {}
        cached = self._cache.blobs.get(group)
        if cached is not None and cached[0] == place[2]:
            return cached[1]
        members: dict[str, float] = self._decode(place)
        self._remember(group, place[2], members)
        return members

    def _remember(self, group: str, version: int, members: dict[str, float]) -> None:
        if len(self._cache.blobs) >= _CACHE_SIZE:
            self._cache.blobs.clear()
        self._cache.blobs[group] = (version, members)

    def members(self, group: str, now: float) -> list[str]:
        """The live members of group."""
        return [c for c, deadline in self.get(group).items() if deadline > now]

    # -- writing -----------------------------------------------------------------------

    def _write(self, body: bytes) -> list[int] | None:
        state = self._state
        offset = state.alloc_raw(len(body))
        if offset is None:
            return None
        state.mm[offset : offset + len(body)] = body
        return [offset, len(body), state.next_seq()]

    def _put(self, group: str, members: dict[str, float]) -> bool:
        """Write group's new memberships; False (and nothing changed) if the heap is full."""
        old = self.where.get(group)
        place = None
        if members:
            place = self._write(msgpack.packb(members))
            if place is None:
                return False
            self._remember(group, place[2], members)
        if not self._dirty:  # copy on write: the cached directory stays as committed
            self._where = dict(self.where)
            self._dirty = True
        where = self.where
        if place is not None:
            where[group] = place
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
        place = self._write(msgpack.packb(where)) if where else None
        if where and place is None:
            return False
        d["gd"] = place
        if place is not None:
            self._cache.directory = (place[2], where)
        if old is not None:
            self._state.release_raw(old[0], old[1])
        self._dirty = False
        return True

    def add(self, group: str, channel: str, deadline: float) -> bool:
        """Add or renew a membership; False if the heap has no room for it."""
        return self._put(group, {**self.get(group), channel: deadline})

    def discard(self, group: str, channel: str) -> bool | None:
        """Remove a membership: True if removed, False if none, None if no room."""
        members = self.get(group)
        if channel not in members:
            return False
        kept = {c: d for c, d in members.items() if c != channel}
        return True if self._put(group, kept) else None

    def prune(self, now: float, gone: Callable[[str], bool] | None = None) -> None:
        """Drop expired memberships everywhere, and those of channels gone(channel) names.

        A group whose new blob finds no room keeps its old one: members() still
        leaves out the expired, and the next prune tries again.
        """
        for group in list(self.where):
            members = self.get(group)
            kept = {c: d for c, d in members.items() if d > now and not (gone and gone(c))}
            if len(kept) != len(members):
                self._put(group, kept)

    def clear(self) -> None:
        """Forget every group (their space goes with the flush that calls this)."""
        self._state.d["gd"] = None
        self._where = {}
        self._dirty = False

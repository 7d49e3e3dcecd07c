"""The shared region: one file in a RAM-backed directory, mapped by every participant.

A plain file mmap is used rather than multiprocessing.shared_memory on purpose: the
latter registers every segment it attaches with the resource tracker, which on Python
3.11 unlinks it when the attaching process exits (gh-82300), destroying the region
under the processes still using it. A file's lifetime is ours to decide.

Layout: a header page, two index slots, then the heap that holds payloads.

Crash consistency comes from shadow paging. Under the region lock a writer puts new
message nodes in heap space the committed index calls free (state.py explains the
one in-place write, a tail link no committed reader follows), writes the index into
the slot that is not current, and only then flips the one-byte slot selector. A
writer killed before that store leaves the previous index in force, and its half
written payload sits in space that index still calls free. A writer killed after it
has committed completely. The kernel releases the dead writer's flock either way.

Lifetime: the committed index is valid whoever died, so a region whose users all
died is joined as it is; only the dead users' own parts (process-local channels,
watchers) are dropped. The last user to close removes the files only when no normal
channel holds a live message and no group has a member; otherwise they wait, unlocked,
for the next user. Only a region that cannot be read starts afresh.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import mmap
import os
import struct
import threading
import time
import weakref
import zlib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import msgpack

from ..exceptions import ChannelFull, ChannelLayerClosed, ChannelLayerError
from ..figures import add_counts
from .access import Access
from .files import RegionDir
from .groups import GroupCache
from .state import State

__all__ = ["DEFAULT_SIZE", "MIN_SIZE", "Region", "Txn"]

log = logging.getLogger("layers.ipc")

DEFAULT_SIZE = 32 * 1024 * 1024
MIN_SIZE = 256 * 1024
_MAGIC = b"CHLIPC02"
_HEADER = struct.Struct("<8sQQ")  # magic, region size, slot size
_SELECTOR = 64  # one byte: which slot holds the committed index
_PAGE = 4096
_SLOT = struct.Struct("<QII")  # generation, length, crc32 of the index document


def _close_fds(*fds: int) -> None:
    for fd in fds:
        with contextlib.suppress(OSError):
            os.close(fd)


@functools.cache
def _boot_id() -> str:
    """This boot of the host: time.monotonic() deadlines mean nothing across boots."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def _layout(size: int) -> tuple[int, int]:
    """(slot size, heap start) for a region of size bytes."""
    slot = max(64 * 1024, size // 8) // _PAGE * _PAGE
    return slot, _PAGE + 2 * slot


class Txn:
    """One locked transaction: the index to read or change, and whom to wake at commit."""

    def __init__(self, region: Region, state: State) -> None:
        self.region = region
        self.state = state
        self.changed = False
        self.wake: set[str] = set()
        self.counted: dict[str, int] = {}  # this process's counts added to the index

    def full(self, what: str) -> ChannelFull:
        """The error for a region with no room, which says it is the region, not a channel."""
        region = self.region
        return ChannelFull(
            f"the shared IPC region at {region.dir.path} is full ({what}; "
            f"{region.size} bytes in all, {self.state.heap_used()} of its heap in use): "
            "no channel is at its capacity; receive more often or open the region "
            "with a larger size"
        )


class Region:
    """A mapped region and this participant's place in it."""

    def __init__(self, path: Path, size: int, client_id: str, access: Access) -> None:
        self.dir = RegionDir(path, access)
        self.client_id = client_id
        self._lock = threading.Lock()
        self._cache: tuple[int, int, State] | None = None
        self._groups = GroupCache()
        self.recovered = 0  # dead participants reaped when this one joined
        # Messages of process-local channels whose owner died or left, dropped here.
        self.dropped_dead_owner = 0
        self.closed = False
        self.pid = os.getpid()
        self.dir.lock()
        try:
            self.mm, self.size = self._map(size)
            self.slot_size, self.heap_start = _layout(self.size)
            self._member_fd = self.dir.join(client_id)
            self._join()
        except BaseException:
            self.dir.close()
            raise
        self.dir.unlock()
        # A layer dropped without close() must not look alive for ever: closing its
        # liveness file lets the others reap it.
        self._abandon = weakref.finalize(self, _close_fds, self._member_fd, *self.dir.descriptors())
        # Not at exit: atexit runs weakref's finalizers before earlier handlers, so the
        # files would be closed under SyncChannelLayer's close(); the OS closes them.
        self._abandon.atexit = False

    # -- opening and closing -------------------------------------------------------------

    def _map(self, size: int) -> tuple[mmap.mmap, int]:
        fd = self.dir.open_data()
        try:
            existing = os.fstat(fd).st_size
            if existing >= MIN_SIZE:
                if existing != size:
                    log.warning(
                        "IPC region %s already exists with size %d bytes: size=%d is "
                        "ignored (the size given when the region was made wins; flush "
                        "and close every process using it to make it anew)",
                        self.dir.path,
                        existing,
                        size,
                    )
                size = existing
            else:
                os.ftruncate(fd, size)  # sparse: pages cost memory only once written
            mm = mmap.mmap(fd, size)
        finally:
            os.close(fd)
        return mm, size

    def _join(self) -> None:
        """Join the region (lock held), keeping what it holds unless it cannot be read."""
        header = self.mm[: _HEADER.size]
        if header != _HEADER.pack(_MAGIC, self.size, self.slot_size) and any(header):
            log.warning(
                "the IPC region at %s was made by another version or with another layout; "
                "starting it afresh",
                self.dir.path,
            )
        state = self._load_or_none()  # None, and an error logged, if its index is damaged
        if state is not None and state.d.get("boot") != _boot_id():
            # Deadlines are time.monotonic(), which restarts at boot: none can be trusted.
            log.warning(
                "the IPC region at %s is left from an earlier boot; starting it afresh",
                self.dir.path,
            )
            state = None
        alive = False
        if state is not None:
            now = time.monotonic()
            for client in list(state.p):
                if self.dir.alive(client):
                    alive = True
                else:
                    self.dropped_dead_owner += state.drop_client(client, now)
                    self.recovered += 1
            if not alive:
                # Local channels of layers never seen here (a membership added by name)
                # are harmless while users live, as group_send drops and counts them; a
                # region nobody uses sheds them, as the last close does.
                self.dropped_dead_owner += state.drop_orphans(now)
        for stray in self.dir.strays({*(state.p if state else ()), self.client_id}):
            self.dir.alive(stray)  # removes the file of one that died while joining
        if state is None:
            _HEADER.pack_into(self.mm, 0, _MAGIC, self.size, self.slot_size)
            state = self._fresh()
        elif not alive and self.recovered:
            # A user that exited without close() is routine (a script, a cached layer);
            # it is worth a warning only if its local channels lost messages.
            log.log(
                logging.WARNING if self.dropped_dead_owner else logging.INFO,
                "recovered the IPC region at %s: its %d user(s) had died; kept its normal "
                "channels' messages and its groups, dropped %d message(s) of their "
                "process-local channels",
                self.dir.path,
                self.recovered,
                self.dropped_dead_owner,
            )
        if self.dropped_dead_owner:
            add_counts(state.c, {"dropped_dead_owner": self.dropped_dead_owner})
        state.p[self.client_id] = os.getpid()
        self._commit(state)

    def reap(self, txn: Txn) -> None:
        """Forget dead participants (lock held), counting the messages that dropped."""
        for client in list(txn.state.p):
            if client != self.client_id and not self.dir.alive(client):
                self.dropped_dead_owner += txn.state.drop_client(client, time.monotonic())
                txn.changed = True

    def close(self, counted: Mapping[str, int] | None = None) -> int:
        """Leave the region; the last live user removes it if it holds nothing receivable.

        counted: what this user counted and has not yet added to the region's counters.
        Returns how many expired messages the last user swept out.
        """
        with self._lock:
            if self.closed:
                return 0
            self._abandon.detach()
            self.dir.relock()
            try:
                txn = Txn(self, self._load())
                state = txn.state
                now = time.monotonic()
                dead_before = self.dropped_dead_owner
                self.dropped_dead_owner += state.drop_client(self.client_id, now)
                self.reap(txn)
                expired = 0
                if not state.p:
                    # Nobody is left to receive on a local channel; normal channels and
                    # groups wait for the next user, as a server would keep them.
                    self.dropped_dead_owner += state.drop_orphans(now)
                    expired = state.sweep(now)
                add_counts(state.c, counted or {})
                dropped = {"dropped_expired": expired}
                dropped["dropped_dead_owner"] = self.dropped_dead_owner - dead_before
                add_counts(state.c, {name: n for name, n in dropped.items() if n})
                self.closed = True
                empty = not state.p and not state.holds_messages()
                try:
                    if not empty:
                        self._commit(state)
                finally:
                    # Even if that commit found no room: the others then reap this one.
                    self.dir.leave(self.client_id, self._member_fd)
                if empty:
                    self.dir.remove()
            finally:
                self.closed = True
                self._cache = None
                self.mm.close()
                self.dir.close()
            return expired

    # -- the index -------------------------------------------------------------------------

    def _slot(self, which: int) -> int:
        return _PAGE + which * self.slot_size

    def _read_slot(self, which: int) -> tuple[int, State] | None:
        base = self._slot(which)
        gen, length, crc = _SLOT.unpack_from(self.mm, base)
        if not 0 < length <= self.slot_size - _SLOT.size:
            return None
        body = self.mm[base + _SLOT.size : base + _SLOT.size + length]
        if zlib.crc32(body) != crc:
            return None
        data: dict[str, Any] = msgpack.unpackb(body, strict_map_key=False)
        return gen, State(data, self.mm, self._groups)

    def _load_or_none(self) -> State | None:
        """The committed index, or None if the region is new or not ours."""
        magic, size, slot_size = _HEADER.unpack_from(self.mm, 0)
        if magic != _MAGIC or size != self.size or slot_size != self.slot_size:
            return None
        which = self.mm[_SELECTOR]
        if which > 1:
            return None
        cached = self._cache
        gen = _SLOT.unpack_from(self.mm, self._slot(which))[0]
        if cached is not None and cached[0] == which and cached[1] == gen:
            return cached[2]
        got = self._read_slot(which)
        if got is None:
            # Never produced by a crash (the selector moves only to a complete slot),
            # so something else wrote here: say so, and start afresh.
            log.error("the IPC region at %s has a damaged index; resetting it", self.dir.path)
            return None
        self._cache = (which, got[0], got[1])
        return got[1]

    def _fresh(self) -> State:
        state = State.fresh(self.mm, self.heap_start, self.size, self._groups)
        state.d["boot"] = _boot_id()
        return state

    def _load(self) -> State:
        state = self._load_or_none()
        if state is None:
            state = self._fresh()
            state.p[self.client_id] = os.getpid()
        return state

    def _commit(self, state: State) -> None:
        if not state.settle():
            raise Txn(self, state).full("no room for the group directory")
        body = msgpack.packb(state.d, use_bin_type=True)
        if len(body) > self.slot_size - _SLOT.size:
            raise Txn(self, state).full(f"its index needs {len(body)} of {self.slot_size} bytes")
        which = self.mm[_SELECTOR]
        new = 0 if which == 1 else 1
        # Generations only grow, so (slot, generation) names one committed index.
        gen = max(_SLOT.unpack_from(self.mm, self._slot(i))[0] for i in (0, 1)) + 1
        base = self._slot(new)
        self.mm[base + _SLOT.size : base + _SLOT.size + len(body)] = body
        _SLOT.pack_into(self.mm, base, gen, len(body), zlib.crc32(body))
        self.mm[_SELECTOR] = new  # the commit: one single-byte store
        self._cache = (new, gen, state)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Txn]:
        """Hold the region lock around reading and, if txn.changed, committing the index."""
        with self._lock:
            if self.closed:
                raise ChannelLayerClosed("the IPC region was closed")
            if os.getpid() != self.pid:
                # A forked child would share this process's liveness lock and client id.
                raise ChannelLayerError(
                    "an IPCChannelLayer cannot be used across fork(): make one in each process"
                )
            self.dir.relock()
            try:
                txn = Txn(self, self._load())
                try:
                    yield txn
                    if txn.changed:
                        self._commit(txn.state)
                except BaseException:
                    self._cache = None  # our copy may hold uncommitted changes
                    raise
            finally:
                self.dir.unlock()

    def figures(self) -> dict[str, Any]:
        """The region's fill level and contents, for stats()."""
        with self.transaction() as txn:
            state = txn.state
            heap = self.size - self.heap_start
            used = state.heap_used()
            index = _SLOT.unpack_from(self.mm, self._slot(self.mm[_SELECTOR]))[1]
            return {
                "region_path": str(self.dir.path),
                "region_bytes": self.size,
                "region_heap_used": used,
                "region_fill": used / heap,
                "region_index_fill": index / (self.slot_size - _SLOT.size),
                "region_queued": state.queued(),
                "region_channels": len(state.q),
                "region_groups": len(state.groups.where),
                "region_users": len(state.p),
            }

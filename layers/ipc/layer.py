"""IPCChannelLayer: the processes of one host share channels and groups, no server."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
import time
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ..base import ChannelLayer, GroupSendResult, sweep_interval
from ..capacity import channel_full
from ..exceptions import BackendNotAvailable, ChannelFull, ConfigError
from ..figures import Figures, Tally
from ..inbox import ProcessInbox
from ..naming import check_prefix, non_local_name
from ..options import Option, Options, as_given, at_least, options_from_query
from .access import Access, default_directory
from .figures import SYNC_DELAY, fold_counts, region_figures
from .files import WAKE
from .inbox import flush_acks, read_inbox, sync_counts_later
from .region import DEFAULT_SIZE, MIN_SIZE, Region, Txn
from .state import State, owner
from .wakeup import Notifier, Wakers, check_address

__all__ = ["IPCChannelLayer"]

log = logging.getLogger("layers.ipc")


def _directory(name: str, value: object) -> Path | None:
    if value is None:
        return None
    if not isinstance(value, str | os.PathLike) or not str(value):
        raise ConfigError(f"{name} must be a directory path, got {value!r}")
    return Path(value)


class IPCChannelLayer(ChannelLayer):
    """Channel layer in a shared-memory region: every layer opened with one name shares it.

    The region is named by ``name`` (default: the prefix) and lives in
    /dev/shm/chanlayers-<uid>/<name>, or in the directory ``path``. It belongs to the
    user running the layer, with no access for others; ``group`` (a name or gid)
    shares it with that group's members on purpose, in /dev/shm/chanlayers-g<gid>/<name>.
    A directory or file of it that is another user's, open to others, or a symbolic
    link is refused with a ConfigError (access.py). ``size`` (default 32 MiB, used when
    the region is created) bounds what it can hold. Linux only.

    The region outlives its users as a server would: messages on normal channels wait
    for a later process until they expire, and groups keep their members for
    group_expiry. The last user to close removes the region only if it holds neither;
    a region whose users all died (kill -9) keeps both for the next one to open it. It
    starts empty only if it cannot be read (another version, a damaged index, or an
    earlier boot), with a warning in the log. Process-local channels die with the layer
    that made them: what is queued for them, and whatever is sent to them afterwards,
    is dropped and counted in stats()["dropped_dead_owner"]. A layer that died without
    closing is noticed by the next sweep, which any operation of any layer runs when due
    (every min(expiry, group_expiry, 30 s) / 2); until then sends to it are queued.
    """

    OPTIONS = Options(
        Option(
            "name",
            lambda name, value: value if value is None else check_prefix(value, name),
            None,
            "the region: every layer opened with one name on the host shares it "
            "(default: the prefix)",
        ),
        Option("path", _directory, None, "a directory for the region, instead of a `name`"),
        Option(
            "size",
            at_least(MIN_SIZE, "bytes"),
            DEFAULT_SIZE,
            "bytes the region holds; the size given when it is created wins",
        ),
        Option(
            "group",
            as_given,
            None,
            "a group name or gid whose members share the region on purpose (default: "
            "the user's own region, open to nobody else)",
        ),
        extends=ChannelLayer.OPTIONS,
    )
    """The options of IPCChannelLayer."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        if not sys.platform.startswith("linux"):
            # Wake-ups reach sockets through /proc/self/fd; see wakeup.py.
            raise BackendNotAvailable(f"IPCChannelLayer needs Linux, not {sys.platform}")
        name, path = self.options["name"], self.options["path"]
        access = Access.of(self.options["group"])
        if path is not None:
            if name is not None:
                raise ConfigError("give the IPC region a name or a path, not both")
            directory = path
        else:
            region_name = self.prefix if name is None else name
            directory = default_directory(region_name, access)
        check_address(directory / WAKE, self.client_id)
        self.region = Region(directory, self.options["size"], self.client_id, access)
        self.notifier = Notifier(self.region.dir.wake)
        self.wakers = Wakers(
            self.client_id, self._used_watches, self.region.dir.wake, access.file_mode
        )
        self._sweep_interval = sweep_interval(self.expiry, self.group_expiry)
        self.inbox = ProcessInbox(
            self.counters,
            self._sweep_interval,
            self._acks_pending,
            self._start_reader,
            self._check_open,
            self.capacity_rules,
        )
        self.acks, self.local = self.inbox.acks, self.inbox.local
        self._next_sweep = time.monotonic() + self._sweep_interval
        self.tally = Tally(lambda: self.counters.shared(self.region.dropped_dead_owner))
        self._sync_due = 0.0

    @classmethod
    def from_url(cls, url: str, **overrides: Any) -> IPCChannelLayer:
        """A layer from ipc://<name>?option=value, or ipc:///a/directory for a path."""
        parts = urlsplit(url)
        options: dict[str, Any] = {**options_from_query(parts.query), **overrides}
        if parts.netloc:
            options.setdefault("name", parts.netloc)
        elif parts.path:
            options.setdefault("path", parts.path)
        else:
            raise ConfigError(f"an ipc:// URL needs a region name, as in ipc://myapp; got {url!r}")
        return cls(**options)

    # -- helpers -------------------------------------------------------------------------

    @contextlib.contextmanager
    def txn(self) -> Iterator[Txn]:
        """A region transaction that also releases pending depth counts, sweeps now and
        then, and wakes the receivers whose watches it used up."""
        acks = self.acks.take_all()
        txn: Txn | None = None
        try:
            with self.region.transaction() as txn:
                if acks:
                    txn.state.ack(acks)
                    txn.changed = True
                yield txn
                now = time.monotonic()
                if now >= self._next_sweep:
                    self._next_sweep = now + self._sweep_interval
                    self.counters.dropped_expired += txn.state.sweep(now)
                    self.region.reap(txn)
                    txn.changed = True
                if txn.wake:
                    # Before the commit, lock held: the woken wait for the lock, so they
                    # see the commit. After it, a sender killed in between would have
                    # used up their watches unseen, and they would sleep for ever.
                    self.notifier.wake(txn.wake)
        except BaseException:
            if acks:
                self.acks.give_back_all(acks)
            if txn is not None and txn.counted:
                self.tally.give_back(txn.counted)
            raise
        if txn.changed:
            self._sync_soon()

    def _sync_soon(self) -> None:
        # What this process counts reaches the region within SYNC_DELAY, in one commit
        # for all: folding counts into every transaction cost W1 a few per cent.
        if (now := time.monotonic()) < self._sync_due:
            return
        with contextlib.suppress(RuntimeError):  # no loop: the next transaction does
            sync_counts_later(self, SYNC_DELAY)
            self._sync_due = now + SYNC_DELAY

    def _acks_pending(self, inbox: str) -> None:
        # Messages of a local channel left the buffers: release their capacity soon,
        # in one transaction for everything that leaves meanwhile.
        with contextlib.suppress(RuntimeError):  # no loop: the next transaction does
            asyncio.get_running_loop().call_soon(flush_acks, self)

    def _start_reader(
        self, inbox: str, loop: asyncio.AbstractEventLoop
    ) -> tuple[asyncio.Task[None]]:
        return (loop.create_task(read_inbox(self, inbox), name=f"chanlayers ipc inbox {inbox}"),)

    def _purge(self, txn: Txn, channel: str, now: float) -> None:
        expired = txn.state.purge(channel, now)
        if expired:
            self.counters.dropped_expired += expired
            txn.changed = True

    def _sweep_for_room(self) -> bool:
        """Sweep expired messages out now, committed, so their space can be reused."""
        with self.txn() as txn:
            dropped = txn.state.sweep(time.monotonic())
            self.counters.dropped_expired += dropped
            txn.changed = dropped > 0
        return dropped > 0

    def _used_watches(self, ident: str, channels: list[str]) -> list[str]:
        with self.region.transaction() as txn:
            state: State = txn.state
            return [c for c in channels if not state.watching(c, ident)]

    # -- the transport ---------------------------------------------------------------------

    async def _send(self, channel: str, payload: bytes) -> None:
        capacity = self.capacity_rules(channel)
        inbox = non_local_name(channel) if "!" in channel else None
        while True:
            now = time.monotonic()
            # Errors are raised once the transaction is over, so what it purged commits.
            with self.txn() as txn:
                state = txn.state
                region_full = False
                if inbox is None:
                    self._purge(txn, channel, now)
                    depth = state.depth(channel)
                else:
                    if owner(inbox) not in state.p:
                        self._dead_owner(channel, 1)
                        return
                    self._purge(txn, inbox, now)
                    depth = state.local_depth(channel)
                if depth >= capacity:
                    error = channel_full(channel, capacity)
                elif (
                    state.push(channel, now + self.expiry, payload)
                    if inbox is None
                    else state.push_local(
                        inbox, [channel[len(inbox) :]], now + self.expiry, payload
                    )
                ):
                    state.take_watchers(channel if inbox is None else inbox, txn.wake)
                    txn.changed = True
                    return
                else:
                    region_full = True
                    error = txn.full(f"no room for a message of {len(payload)} bytes")
            # Space freed in a transaction is reusable only once committed: sweep, retry.
            if not region_full or not self._sweep_for_room():
                raise error

    def _receive_now(self, channel: str) -> bytes | None:
        return self.local.take(channel) if "!" in channel else None

    def _receive(self, channel: str) -> Coroutine[Any, Any, bytes]:
        # Not a coroutine itself for a local channel: an idle receiver holds one frame less.
        if "!" not in channel:
            return self._receive_normal(channel)
        self.require_own(channel)
        # get() runs the hook (ensure_reader) before it waits: nothing to start here.
        return self.local.get(channel, self.inbox.reader_hook(non_local_name(channel)))

    async def _receive_normal(self, channel: str) -> bytes:
        waker = await self.wakers.here()
        while True:
            self._check_open()
            now = time.monotonic()
            with self.txn() as txn:
                payload, expired = txn.state.pop(channel, now)
                self.counters.dropped_expired += expired
                if payload is not None or expired:
                    txn.changed = True
                if payload is None and not txn.state.watching(channel, waker.ident):
                    txn.state.watch(channel, waker.ident)
                    txn.changed = True
            if payload is not None:
                return payload
            # Nothing is taken while we wait, so a cancellation here loses nothing.
            await waker.wait(channel)

    async def _new_channel(self, name: str) -> None:
        self.inbox.ensure_reader(non_local_name(name))

    async def _group_add(self, group: str, channel: str) -> None:
        with self.txn() as txn:
            deadline = time.monotonic() + self.group_expiry
            added = txn.state.groups.add(group, channel, deadline)
            txn.changed = added
            error = None if added else txn.full(f"no room for group {group!r}'s members")
        if error is not None:
            raise error

    async def _group_discard(self, group: str, channel: str) -> None:
        with self.txn() as txn:
            removed = txn.state.groups.discard(group, channel)
            txn.changed = bool(removed)
            error = None if removed is not None else txn.full(f"no room for group {group!r}")
        if error is not None:
            raise error

    async def _group_send(self, group: str, payload: bytes) -> GroupSendResult:
        try:
            return self._group_send_now(group, payload)
        except ChannelFull as exc:  # the index itself is out of room: nothing was queued
            members = await self._group_channels(group)
            log.warning(
                "group_send to %r dropped for all %d member(s): %s", group, len(members), exc
            )
            return 0, len(members)

    def _group_send_now(self, group: str, payload: bytes) -> GroupSendResult:
        now = time.monotonic()
        deadline = now + self.expiry
        capacity = self.capacity_rules
        delivered = dropped = 0
        with self.txn() as txn:
            state = txn.state
            inboxes: dict[str, list[str]] = {}
            for channel in state.groups.members(group, now):
                if "!" in channel:
                    inbox = non_local_name(channel)
                    inboxes.setdefault(inbox, []).append(channel)
                    continue
                self._purge(txn, channel, now)
                if state.depth(channel) >= capacity(channel):
                    dropped += 1
                elif state.push(channel, deadline, payload):
                    state.take_watchers(channel, txn.wake)
                    delivered += 1
                else:
                    dropped += self._no_room(txn, group, [channel], payload)
            for inbox, channels in inboxes.items():
                if owner(inbox) not in state.p:
                    self._dead_owner(inbox, len(channels))
                    continue
                self._purge(txn, inbox, now)
                # Counted nowhere here: the owner caps each channel's buffer at its
                # capacity, and drops and counts what does not fit (issue 14).
                parts = [c[len(inbox) :] for c in channels]
                if state.push_local(inbox, parts, deadline, payload, counted=False):
                    state.take_watchers(inbox, txn.wake)
                    delivered += len(channels)
                else:
                    dropped += self._no_room(txn, group, channels, payload)
            txn.changed = True
        return delivered, dropped

    def _dead_owner(self, channel: str, count: int) -> None:
        # Only the layer that made a local channel can receive on it, and it is gone.
        self.region.dropped_dead_owner += count
        log.info("dropped %d message(s) for %r: the layer that owned it has closed", count, channel)

    @staticmethod
    def _no_room(txn: Txn, group: str, channels: list[str], payload: bytes) -> int:
        error = txn.full(f"no room for a message of {len(payload)} bytes")
        log.warning("group_send to %r skipped %s: %s", group, ", ".join(channels), error)
        return len(channels)

    async def _group_channels(self, group: str) -> list[str]:
        with self.txn() as txn:
            return txn.state.groups.members(group, time.monotonic())

    async def _flush(self) -> None:
        self.local.clear()
        with self.txn() as txn:
            self.counters.flushed += txn.state.flush()
            txn.changed = True

    async def _close(self) -> None:
        readers = self.inbox.readers.cancel()
        self.local.close()
        await asyncio.gather(*readers, return_exceptions=True)
        self.wakers.close()
        self.notifier.close()
        self.counters.dropped_expired += self.region.close(self.tally.take())

    async def _figures(self, limit: int) -> Figures:
        with self.txn() as txn:
            fold_counts(self.tally, txn)  # this process's latest counts too
            now = time.monotonic()
            return region_figures(type(self).__name__, self.prefix, txn.state, now, limit)

    def _stats(self) -> dict[str, Any]:
        # dropped_dead_owner: messages for process-local channels whose layer had
        # closed or died (at send, group_send, or when this layer found it dead).
        dead = {"dropped_dead_owner": self.region.dropped_dead_owner}
        if self.region.closed:
            return dead
        figures = self.region.figures()
        return {
            **self.local.snapshot(),
            **figures,
            **dead,
            "region_recovered": self.region.recovered,
        }

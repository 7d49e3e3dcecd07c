"""IPCChannelLayer: the processes of one host share channels and groups, no server."""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ..base import ChannelLayer, GroupSendResult
from ..exceptions import ChannelFull, ConfigError, InvalidChannelName
from ..naming import check_prefix, non_local_name
from .files import default_directory
from .region import DEFAULT_SIZE, Region, Txn
from .state import State
from .wakeup import Notifier, Wakers

__all__ = ["IPCChannelLayer"]

log = logging.getLogger("layers.ipc")
_MAX_SWEEP_INTERVAL = 30.0


class IPCChannelLayer(ChannelLayer):
    """Channel layer in a shared-memory region: every layer opened with one name shares it.

    The region is named by ``name`` (default: the prefix) and lives in
    /dev/shm/chanlayers-<name>, or in the directory ``path``. ``size`` (default 32 MiB,
    used when the region is created) bounds what it can hold.
    """

    def __init__(
        self,
        *,
        name: str | None = None,
        path: str | os.PathLike[str] | None = None,
        size: int = DEFAULT_SIZE,
        **options: Any,
    ) -> None:
        super().__init__(**options)
        if path is not None:
            if name is not None:
                raise ConfigError("give the IPC region a name or a path, not both")
            if not isinstance(path, str | os.PathLike) or not str(path):
                raise ConfigError(f"path must be a directory path, got {path!r}")
            directory = Path(path)
        else:
            region_name = self.prefix if name is None else name
            directory = default_directory(check_prefix(region_name, "name"))
        self.region = Region(directory, size, self.client_id)
        self.notifier = Notifier()
        self.wakers = Wakers(self.client_id, self._used_watches)
        self._sweep_interval = min(self.expiry, self.group_expiry, _MAX_SWEEP_INTERVAL) / 2
        self._next_sweep = time.monotonic() + self._sweep_interval

    @classmethod
    def from_url(cls, url: str, **overrides: Any) -> IPCChannelLayer:
        """A layer from ipc://<name>?option=value, or ipc:///a/directory for a path."""
        from ..config import options_from_query

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
    def _txn(self) -> Iterator[Txn]:
        """A region transaction that also sweeps now and then, and wakes receivers after."""
        with self.region.transaction() as txn:
            yield txn
            now = time.monotonic()
            if now >= self._next_sweep:
                self._next_sweep = now + self._sweep_interval
                self.counters.dropped_expired += txn.state.sweep(now)
                self.region.reap(txn)
                txn.changed = True
        if txn.wake:
            self.notifier.wake(txn.wake)

    def _purge(self, txn: Txn, channel: str, now: float) -> None:
        expired = txn.state.purge(channel, now)
        if expired:
            self.counters.dropped_expired += expired
            txn.changed = True

    def _sweep_for_room(self) -> bool:
        """Sweep expired messages out now, committed, so their space can be reused."""
        with self._txn() as txn:
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
        while True:
            now = time.monotonic()
            # Errors are raised once the transaction is over, so what it purged commits.
            with self._txn() as txn:
                self._purge(txn, channel, now)
                region_full = False
                if txn.state.depth(channel) >= capacity:
                    error = ChannelFull(
                        f"channel {channel!r} is at its capacity of {capacity} messages"
                    )
                elif txn.state.push(channel, now + self.expiry, payload):
                    txn.state.take_watchers(channel, txn.wake)
                    txn.changed = True
                    return
                else:
                    region_full = True
                    error = txn.full(f"no room for a message of {len(payload)} bytes")
            # Space freed in a transaction is reusable only once committed: sweep, retry.
            if not region_full or not self._sweep_for_room():
                raise error

    async def _receive(self, channel: str) -> bytes:
        if "!" in channel and not non_local_name(channel)[:-1].endswith("." + self.client_id):
            raise InvalidChannelName(
                f"channel {channel!r} belongs to another process or layer: only the "
                "layer whose new_channel() made it can receive on it"
            )
        waker = await self.wakers.here()
        while True:
            self._check_open()
            now = time.monotonic()
            with self._txn() as txn:
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

    async def _group_add(self, group: str, channel: str) -> None:
        with self._txn() as txn:
            txn.state.group_add(group, channel, time.monotonic() + self.group_expiry)
            txn.changed = True

    async def _group_discard(self, group: str, channel: str) -> None:
        with self._txn() as txn:
            txn.changed = txn.state.group_discard(group, channel)

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
        capacity = self.capacity_rules
        delivered = dropped = 0
        with self._txn() as txn:
            state = txn.state
            deadline = now + self.expiry
            for channel in state.members(group, now):
                self._purge(txn, channel, now)
                if state.depth(channel) >= capacity(channel):
                    dropped += 1
                elif state.push(channel, deadline, payload):
                    state.take_watchers(channel, txn.wake)
                    txn.changed = True
                    delivered += 1
                else:
                    dropped += 1
                    log.warning(
                        "group_send to %r skipped %r: %s",
                        group,
                        channel,
                        txn.full(f"no room for a message of {len(payload)} bytes"),
                    )
        return delivered, dropped

    async def _group_channels(self, group: str) -> list[str]:
        with self._txn() as txn:
            return txn.state.members(group, time.monotonic())

    async def _flush(self) -> None:
        with self._txn() as txn:
            self.counters.flushed += txn.state.flush()
            txn.changed = True

    async def _close(self) -> None:
        self.wakers.close()
        self.notifier.close()
        self.region.close()

    def _stats(self) -> dict[str, Any]:
        if self.region.closed:
            return {}
        return {**self.region.figures(), "region_recovered": self.region.recovered}

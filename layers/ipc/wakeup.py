"""Waking receivers in other processes: one Unix datagram socket per event loop.

Each event loop that receives binds a socket named <client id>.<n> in the region's
wake/ directory, which only the region's users can enter: no other local user can
bind the name first or send to it (abstract socket names have no permissions, and
anyone can list them). A send to a dead loop's socket fails at once; a crashed
process's sockets are removed when it is found dead.

A receiver that finds its channel empty leaves a one-shot watch in the index, in the
same locked transaction. The sender that uses up the watch sends one datagram just
before it commits, lock held, so a sender killed between the two cannot use up a
watch unseen. The datagram only says "look": the woken loop checks in the index
(under the lock, so after that commit) which of its watches were used up and wakes
those channels' waiters. So a datagram lost to a full socket buffer loses nothing,
since a full buffer is itself a wake-up.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import socket
import weakref
from collections.abc import Callable, Iterable
from pathlib import Path

from ..exceptions import ConfigError
from ..loops import PerLoop

__all__ = ["Notifier", "Waker", "Wakers"]

log = logging.getLogger("layers.ipc")

# Given the channels a loop waits on, the ones whose watch was used up.
Check = Callable[[str, list[str]], list[str]]


_MAX_ADDRESS = 107  # sun_path holds 108 bytes with the terminating NUL


def check_address(wake: Path, client_id: str) -> None:
    """Raise a ConfigError if the wake-up sockets of client_id cannot live in wake."""
    longest = len(os.fsencode(wake / f"{client_id}.{10**6}"))
    if longest > _MAX_ADDRESS:
        raise ConfigError(
            f"the IPC region's path {wake.parent} is too long: its wake-up sockets need "
            f"up to {longest} bytes, over the {_MAX_ADDRESS} a Unix socket path may have; "
            "use a shorter name or path"
        )


class Notifier:
    """Sends wake-up datagrams; one per layer, usable from any thread."""

    def __init__(self, wake: Path) -> None:
        self._wake = wake
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sock.setblocking(False)
        self._finalizer = weakref.finalize(self, self._sock.close)

    def wake(self, idents: Iterable[str]) -> None:
        """Nudge each listed loop; a dead or busy one needs nothing more."""
        for ident in idents:
            # ConnectionRefused/FileNotFound: that loop is gone, its watch with it.
            # BlockingIOError: its buffer is full, so it will look anyway.
            with contextlib.suppress(OSError):
                self._sock.sendto(b"w", str(self._wake / ident))

    def close(self) -> None:
        """Close the sending socket."""
        self._finalizer()


class Waker:
    """One event loop's socket and the receivers of that loop waiting on channels."""

    def __init__(self, ident: str, check: Check, wake: Path, mode: int) -> None:
        self.ident = ident
        self.loop = asyncio.get_running_loop()
        self._check = check
        self._waiters: dict[str, list[asyncio.Future[None]]] = {}
        self._path = wake / ident
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            self._sock.setblocking(False)
            self._sock.bind(str(self._path))
            # Senders need write permission: the region's other users, nobody else
            # (the directory already keeps everyone else out).
            os.chmod(self._path, mode)
        except BaseException:
            self._sock.close()
            raise
        self.loop.add_reader(self._sock.fileno(), self._readable)
        self.closed = False

    async def wait(self, channel: str) -> None:
        """Wait until channel's watch (left by the caller just now) is used up."""
        future = self.loop.create_future()
        waiters = self._waiters.setdefault(channel, [])
        waiters.append(future)
        try:
            await future
        finally:
            waiters.remove(future)
            if not waiters:
                del self._waiters[channel]

    def _readable(self) -> None:
        try:
            while True:
                self._sock.recv(64)
        except BlockingIOError:
            pass
        except OSError:
            return
        if not self._waiters:
            return
        try:
            used = self._check(self.ident, list(self._waiters))
        except Exception:  # closed meanwhile: close() wakes everyone anyway
            log.debug("wake-up check failed", exc_info=True)
            return
        for channel in used:
            # Every waiter of the channel retries: one takes the message, the others
            # watch again. A cancelled one can therefore never strand a message.
            for future in self._waiters.get(channel, ()):
                if not future.done():
                    future.set_result(None)

    def close(self) -> None:
        """Stop listening and wake every waiter (they find the layer closed); in-loop."""
        if self.closed:
            return
        self.closed = True
        if not self.loop.is_closed():
            self.loop.remove_reader(self._sock.fileno())
        with contextlib.suppress(OSError):
            os.unlink(self._path)
        self._sock.close()
        for waiters in self._waiters.values():
            for future in waiters:
                if not future.done():
                    future.set_result(None)


async def _close_waker(waker: Waker) -> None:
    waker.close()


class Wakers(PerLoop[Waker]):
    """One Waker per event loop, closed at that loop's shutdown_asyncgens()."""

    def __init__(self, client_id: str, check: Check, wake: Path, mode: int) -> None:
        counter = itertools.count()

        async def make() -> Waker:
            return Waker(f"{client_id}.{next(counter)}", check, wake, mode)

        super().__init__(make, _close_waker)

    def close(self) -> None:
        """Close every loop's Waker: this loop's now, running loops' in their own loop."""
        # Unlike a connection, a Waker closes synchronously from any thread once its
        # loop is closed, so nothing is awaited and even a closed loop's is closed.
        try:
            here: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            here = None
        for loop, waker in self.take_all():
            if loop is here or loop.is_closed():
                waker.close()
            else:
                try:
                    loop.call_soon_threadsafe(waker.close)
                except RuntimeError:  # closed in the meantime
                    waker.close()

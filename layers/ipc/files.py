"""The region's directory: its lock file, one liveness file per participant, and the
wake-up sockets.

Every lock here is an fcntl.flock, which the kernel releases when its holder dies, so
a participant killed at any instant never leaves the region locked. A participant
holds an exclusive flock on its own file in members/ while it lives; anyone can tell
it is dead by taking that lock without blocking (a read-only descriptor suffices,
so in a region shared with a group the liveness files are only group-readable).

Everything is reached through descriptors of directories that were checked once
opened (access.py), so nothing another user renames or links afterwards is followed.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import stat
from pathlib import Path

from ..exceptions import ConfigError
from .access import Access, default_directory

__all__ = ["DATA", "RegionDir", "default_directory"]

log = logging.getLogger("layers.ipc")

_LOCK = "lock"
_MEMBERS = "members"
WAKE = "wake"
DATA = "region"


def _unlink(name: str, dir_fd: int) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(name, dir_fd=dir_fd)


class RegionDir:
    """The region's directory, with its lock held only between lock() and unlock()."""

    def __init__(self, path: Path, access: Access) -> None:
        self.path = path
        self.access = access
        self.members = path / _MEMBERS
        self.wake = path / WAKE
        self.fd = -1  # the lock file
        self.dir_fd = -1
        self.members_fd = -1
        self.wake_fd = -1
        self._left_alone: set[str] = set()  # warned about once

    def lock(self) -> None:
        """Create the directory if needed and take the region lock (blocking).

        A last user removes the directory while holding the lock: whoever waited on
        the old lock file finds it gone, and starts again.
        """
        access = self.access
        while True:
            try:
                self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
                dir_fd = access.open_dir(self.path, create=True)
            except FileNotFoundError:
                continue
            except OSError as exc:
                raise ConfigError(f"cannot open the IPC region at {self.path}: {exc}") from exc
            try:
                fd = access.open_file(self.path / _LOCK, dir_fd, access.file_mode)
            except FileNotFoundError:  # the directory was removed meanwhile
                os.close(dir_fd)
                continue
            except BaseException:
                os.close(dir_fd)
                raise
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                same = os.stat(_LOCK, dir_fd=dir_fd, follow_symlinks=False).st_ino == (
                    os.fstat(fd).st_ino
                )
            except FileNotFoundError:
                same = False
            if same:
                self.fd, self.dir_fd = fd, dir_fd
                return
            os.close(fd)
            os.close(dir_fd)

    def relock(self) -> None:
        """Take the lock again on the file already open (the directory exists while we do)."""
        fcntl.flock(self.fd, fcntl.LOCK_EX)

    def unlock(self) -> None:
        """Release the region lock."""
        fcntl.flock(self.fd, fcntl.LOCK_UN)

    def open_data(self) -> int:
        """The region file, opened read-write (lock held)."""
        return self.access.open_file(self.path / DATA, self.dir_fd, self.access.file_mode)

    def join(self, client_id: str) -> int:
        """Create and hold this participant's liveness file (lock held); return its fd."""
        access = self.access
        self.members_fd = access.open_dir(self.members, self.dir_fd, create=True)
        self.wake_fd = access.open_dir(self.wake, self.dir_fd, create=True)
        fd = access.open_file(self.members / client_id, self.members_fd, access.live_mode)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return fd

    def leave(self, client_id: str, fd: int) -> None:
        """Remove this participant's liveness file (lock held) and let go of it."""
        self._forget(client_id)
        os.close(fd)

    def _forget(self, client_id: str) -> None:
        """Remove a participant's liveness file and whatever wake-up sockets it left."""
        _unlink(client_id, self.members_fd)
        with contextlib.suppress(FileNotFoundError):
            for name in os.listdir(self.wake_fd):
                if name.startswith(f"{client_id}."):
                    _unlink(name, self.wake_fd)

    def alive(self, client_id: str) -> bool:
        """True if that participant still holds its liveness file; a dead one's is removed.

        A file this layer may not open or should not trust (another user's, a link) is
        left alone and counted alive, with a warning: it is not ours to judge.
        """
        path = self.members / client_id
        try:
            fd = os.open(
                client_id,
                os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC,
                dir_fd=self.members_fd,
            )
        except FileNotFoundError:
            return False
        except OSError as exc:
            self._leave_alone(path, f"cannot open it ({exc.strerror})")
            return True
        try:
            problem = self.access.problem(os.fstat(fd), stat.S_IFREG)
            if problem is not None:
                self._leave_alone(path, problem)
                return True
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)
        self._forget(client_id)
        return False

    def _leave_alone(self, path: Path, why: str) -> None:
        if path.name not in self._left_alone:
            self._left_alone.add(path.name)
            log.warning("left %s alone: %s", path, why)

    def strays(self, known: set[str]) -> list[str]:
        """Liveness files of participants the index does not list (died while joining)."""
        return [name for name in os.listdir(self.members_fd) if name not in known]

    def remove(self) -> None:
        """Delete the whole directory (lock held; the last user leaves nothing in it)."""
        for fd in (self.members_fd, self.wake_fd):
            for name in os.listdir(fd):
                _unlink(name, fd)
        for name in (_MEMBERS, WAKE):
            with contextlib.suppress(OSError):
                os.rmdir(name, dir_fd=self.dir_fd)
        for name in (DATA, _LOCK):
            _unlink(name, self.dir_fd)
        with contextlib.suppress(OSError):
            os.rmdir(self.path)

    def descriptors(self) -> tuple[int, ...]:
        """Every descriptor this holds, for a finalizer."""
        return self.members_fd, self.wake_fd, self.dir_fd, self.fd

    def close(self) -> None:
        """Close the lock file (releasing the lock if held) and the directories."""
        for fd in self.descriptors():
            if fd >= 0:
                os.close(fd)
        self.fd = self.dir_fd = self.members_fd = self.wake_fd = -1

"""The region's directory: its lock file, and one liveness file per participant.

Every lock here is an fcntl.flock, which the kernel releases when its holder dies, so
a participant killed at any instant never leaves the region locked. A participant
holds an exclusive flock on its own file in members/ while it lives; anyone can tell
it is dead by taking that lock without blocking.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
from pathlib import Path

from ..exceptions import ConfigError

__all__ = ["RegionDir", "default_directory"]

_LOCK = "lock"
_MEMBERS = "members"
DATA = "region"


def default_directory(name: str) -> Path:
    """Where the region called name lives: /dev/shm when the host has it (RAM-backed)."""
    shm = Path("/dev/shm")
    base = shm if shm.is_dir() and os.access(shm, os.W_OK) else Path(tempfile.gettempdir())
    return base / f"chanlayers-{name}"


class RegionDir:
    """The region's directory, with its lock held only between lock() and unlock()."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.members = path / _MEMBERS
        self.fd = -1

    def lock(self) -> None:
        """Create the directory if needed and take the region lock (blocking).

        A last user removes the directory while holding the lock: whoever waited on
        the old lock file finds it replaced or gone, and starts again.
        """
        while True:
            try:
                self.path.mkdir(mode=0o700, parents=True, exist_ok=True)
                fd = os.open(self.path / _LOCK, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            except FileNotFoundError:
                continue
            except OSError as exc:
                raise ConfigError(f"cannot open the IPC region at {self.path}: {exc}") from exc
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                same = os.stat(self.path / _LOCK).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                self.fd = fd
                return
            os.close(fd)

    def relock(self) -> None:
        """Take the lock again on the file already open (the directory exists while we do)."""
        fcntl.flock(self.fd, fcntl.LOCK_EX)

    def unlock(self) -> None:
        """Release the region lock."""
        fcntl.flock(self.fd, fcntl.LOCK_UN)

    def join(self, client_id: str) -> int:
        """Create and hold this participant's liveness file (lock held); return its fd."""
        self.members.mkdir(mode=0o700, exist_ok=True)
        fd = os.open(self.members / client_id, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return fd

    def leave(self, client_id: str, fd: int) -> None:
        """Remove this participant's liveness file (lock held) and let go of it."""
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.members / client_id)
        os.close(fd)

    def alive(self, client_id: str) -> bool:
        """True if that participant still holds its liveness file; a dead one's is removed."""
        path = self.members / client_id
        try:
            fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
        except FileNotFoundError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        return False

    def strays(self, known: set[str]) -> list[str]:
        """Liveness files of participants the index does not list (died while joining)."""
        try:
            names = os.listdir(self.members)
        except FileNotFoundError:
            return []
        return [name for name in names if name not in known]

    def remove(self) -> None:
        """Delete the whole directory (lock held; the last user leaves nothing in it)."""
        for name in self.strays(set()):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.members / name)
        with contextlib.suppress(FileNotFoundError):
            os.rmdir(self.members)
        for name in (DATA, _LOCK):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path / name)
        with contextlib.suppress(OSError):
            os.rmdir(self.path)

    def close(self) -> None:
        """Close the lock file (releasing the lock if held)."""
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

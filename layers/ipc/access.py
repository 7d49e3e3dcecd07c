"""Who may use a region, and opening its files so that another local user cannot.

A region is private to the user that runs the layer, or shared on purpose with one
group. /dev/shm and /tmp are writable by everyone, so nothing found there is trusted
by its name: every directory and file is opened without following a symbolic link,
checked with fstat() on the open descriptor, and refused with a ConfigError that
names it and what is wrong if it belongs to someone else or is open to others.

The default region directory sits in a per-user (or per-group) base directory,
/dev/shm/chanlayers-<uid> (chanlayers-g<gid> for a group). Another user may make that
name first; it is then skipped, not used and not fatal: the base is the first of
chanlayers-<uid>, chanlayers-<uid>.1, ... that this user's access accepts. A base is
never removed, so every process of the user settles on the same one.
"""

from __future__ import annotations

import contextlib
import errno
import grp
import itertools
import logging
import os
import stat
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from ..exceptions import ConfigError

__all__ = ["Access", "default_directory"]

log = logging.getLogger("layers.ipc")

_NO_FOLLOW = os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK  # O_NONBLOCK: a planted FIFO
_SETTLE = 1.0  # how long a base another process of ours is still making may look wrong


@dataclass(frozen=True)
class Access:
    """The region's owner: this user alone (gid None), or the members of group gid."""

    uid: int
    gid: int | None = None

    @classmethod
    def of(cls, group: str | int | None) -> Access:
        """This user's access, shared with group (a name or a gid) if one is given."""
        uid = os.geteuid()
        if group is None:
            return cls(uid)
        if isinstance(group, bool) or not isinstance(group, str | int) or group == "":
            raise ConfigError(f"group must be a group name or id, got {group!r}")
        gid = group if isinstance(group, int) else _gid(group)
        if uid != 0 and gid != os.getegid() and gid not in os.getgroups():
            raise ConfigError(
                f"group {group!r} (gid {gid}): this user (uid {uid}) is not a member, so it "
                "cannot share a region with it"
            )
        return cls(uid, gid)

    @property
    def dir_mode(self) -> int:
        """Mode of the directories this layer makes."""
        return 0o700 if self.gid is None else 0o2770

    @property
    def file_mode(self) -> int:
        """Mode of the lock and region files."""
        return 0o600 if self.gid is None else 0o660

    @property
    def live_mode(self) -> int:
        """Mode of a liveness file: others of a group only test its lock, reading."""
        return 0o600 if self.gid is None else 0o640

    def problem(self, st: os.stat_result, kind: int) -> str | None:
        """What makes a file with this status unfit for the region, or None."""
        if stat.S_IFMT(st.st_mode) != kind:
            return f"it is not a {_KINDS.get(kind, 'file')}"
        mode = stat.S_IMODE(st.st_mode)
        if self.gid is None:
            if st.st_uid != self.uid:
                return f"it is owned by uid {st.st_uid}, not by uid {self.uid} that runs the layer"
            if mode & 0o077:
                return f"its mode {mode:04o} lets other users in (the region needs 0700/0600)"
        else:
            if st.st_gid != self.gid:
                return f"its group is gid {st.st_gid}, not the region's group gid {self.gid}"
            if mode & 0o007:
                return f"its mode {mode:04o} lets users outside group gid {self.gid} in"
        return None

    def check(self, path: Path, st: os.stat_result, kind: int) -> None:
        """Raise a ConfigError naming path if it is unfit for the region."""
        problem = self.problem(st, kind)
        if problem is not None:
            raise ConfigError(f"refusing to use {path} for the IPC region: {problem}")

    def adopt(self, fd: int, mode: int) -> None:
        """Give a file this layer just made its group and exact mode (whatever the umask)."""
        if self.gid is not None:
            os.fchown(fd, -1, self.gid)
        os.fchmod(fd, mode)

    def open_dir(self, path: Path, dir_fd: int | None = None, *, create: bool = False) -> int:
        """Open (making it if create) a directory of the region, checked; its descriptor.

        With dir_fd, path's last part is opened in that directory (path names it in errors).
        """
        made = False
        if create:
            try:
                os.mkdir(_rel(path, dir_fd), self.dir_mode & 0o777, dir_fd=dir_fd)
                made = True
            except FileExistsError:
                pass
        flags = os.O_RDONLY | os.O_DIRECTORY | _NO_FOLLOW
        fd = _open(path, flags, dir_fd)
        try:
            if made:
                self.adopt(fd, self.dir_mode)
            self.check(path, os.fstat(fd), stat.S_IFDIR)
        except BaseException:
            os.close(fd)
            raise
        return fd

    def open_file(self, path: Path, dir_fd: int, mode: int) -> int:
        """Open or make a regular file (path's last part, in dir_fd) without following a link."""
        access = os.O_RDWR
        try:
            fd = os.open(
                path.name, access | os.O_CREAT | os.O_EXCL | _NO_FOLLOW, 0o600, dir_fd=dir_fd
            )
        except FileExistsError:
            fd = _open(path, access | _NO_FOLLOW, dir_fd)
        else:
            try:
                self.adopt(fd, mode)
            except BaseException:
                os.close(fd)
                raise
        try:
            self.check(path, os.fstat(fd), stat.S_IFREG)
        except BaseException:
            os.close(fd)
            raise
        return fd


def _gid(group: str) -> int:
    try:
        return grp.getgrnam(group).gr_gid
    except KeyError:
        if group.isdigit():
            return int(group)
        raise ConfigError(f"group {group!r} does not exist on this host") from None


_KINDS = {stat.S_IFDIR: "directory", stat.S_IFREG: "regular file"}


def _rel(path: Path, dir_fd: int | None) -> str | Path:
    return path if dir_fd is None else path.name


def _open(path: Path, flags: int, dir_fd: int | None) -> int:
    """os.open, with a ConfigError naming path for a link or a refusal."""
    try:
        return os.open(_rel(path, dir_fd), flags, dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno == errno.ELOOP or os.path.islink(path):
            raise ConfigError(
                f"refusing to use {path} for the IPC region: it is a symbolic link"
            ) from None
        if isinstance(exc, FileNotFoundError):
            raise
        raise ConfigError(f"cannot open {path} for the IPC region: {exc.strerror}") from exc


def _root() -> Path:
    shm = Path("/dev/shm")
    return shm if shm.is_dir() and os.access(shm, os.W_OK) else Path(tempfile.gettempdir())


def _index(entry: str, stem: str) -> int | None:
    if entry == stem:
        return 0
    head, dot, tail = entry.rpartition(".")
    return int(tail) if dot and head == stem and tail.isdigit() and tail[0] != "0" else None


def _base(root: Path, access: Access) -> Path:
    """The base directory of this user's (or group's) regions in root; see the module doc."""
    stem = f"chanlayers-{access.uid}" if access.gid is None else f"chanlayers-g{access.gid}"
    deadline = time.monotonic() + _SETTLE
    while True:
        foreign: dict[int, str] = {}
        wrong: dict[int, str] = {}
        fit: list[int] = []
        for entry in os.listdir(root):
            index = _index(entry, stem)
            if index is None:
                continue
            try:
                st = os.lstat(root / entry)
            except FileNotFoundError:
                continue
            problem = access.problem(st, stat.S_IFDIR)
            if problem is None:
                fit.append(index)
            elif st.st_uid == access.uid and not stat.S_ISLNK(st.st_mode):
                wrong[index] = problem
            else:
                foreign[index] = problem
        first = min([*fit, *wrong], default=None)
        if first is not None and first in wrong:
            # Ours but unfit: another process of ours may be setting it up right now.
            if time.monotonic() < deadline:
                time.sleep(0.01)
                continue
            where = root / _name(stem, first)
            raise ConfigError(f"refusing to use {where} for the IPC region: {wrong[first]}")
        if first is not None:
            for index in sorted(i for i in foreign if i < first):
                log.warning(
                    "ignoring %s, which another user made (%s); the IPC regions of this "
                    "user are in %s",
                    root / _name(stem, index),
                    foreign[index],
                    root / _name(stem, first),
                )
            return root / _name(stem, first)
        free = next(i for i in itertools.count() if i not in foreign)
        with contextlib.suppress(ConfigError, FileNotFoundError):
            # Made by someone else meanwhile: the next look sorts it out.
            os.close(access.open_dir(root / _name(stem, free), create=True))
        # Look again: of two processes racing here, both settle on the lowest.


def _name(stem: str, index: int) -> str:
    return stem if index == 0 else f"{stem}.{index}"


def default_directory(name: str, access: Access | None = None) -> Path:
    """Where the region called name lives: in /dev/shm when the host has it (RAM-backed)."""
    return _base(_root(), access or Access.of(None)) / name

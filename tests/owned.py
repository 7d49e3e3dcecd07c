"""What every server process the tests own has in common: address, directory, lifecycle.

``RedisProcess`` (tests/redis_procs.py) and ``RabbitProcess`` (tests/rabbit_procs.py)
differ in how they launch and when they are ready; the rest is here, once: where the
server listens, its working directory, ``kill()`` (a crash), ``stop()`` (a clean
shutdown that removes the directory), the context manager, and an ``atexit`` hook that
stops whatever a test left running.
"""

from __future__ import annotations

import atexit
import contextlib
import shutil
import subprocess
from pathlib import Path
from types import TracebackType
from typing import ClassVar, Self

__all__ = ["HOST", "OwnedProcess"]

HOST = "127.0.0.1"

_live: dict[int, OwnedProcess] = {}
"""Running processes by id(), stopped at interpreter exit if nobody stopped them."""


@atexit.register
def _stop_leftovers() -> None:
    for proc in list(_live.values()):
        with contextlib.suppress(Exception):
            proc.stop(timeout=5.0)


class OwnedProcess:
    """One server child process on 127.0.0.1; subclasses launch it in start()."""

    Error: ClassVar[type[Exception]] = RuntimeError
    """Raised for a server that never started (and by subclasses for their failures)."""
    stop_timeout: ClassVar[float] = 10.0
    """Seconds stop() gives the server to exit after SIGTERM before it is killed."""

    def __init__(self, name: str) -> None:
        self.host = HOST
        self.name = name
        self._port: int | None = None
        self._dir: Path | None = None
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def port(self) -> int:
        """The port (fixed at the first start, kept by restart())."""
        if self._port is None:
            raise self.Error(f"{self.name} was never started")
        return self._port

    @property
    def address(self) -> tuple[str, int]:
        return (self.host, self.port)

    @property
    def dir(self) -> Path:
        """The working directory (logs, configs, data)."""
        if self._dir is None:
            raise self.Error(f"{self.name} was never started")
        return self._dir

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def running(self) -> bool:
        """True while the child process exists (it may not answer yet, or any more)."""
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> Self:
        """Launch the server and wait until it answers."""
        raise NotImplementedError

    def _launched(self, proc: subprocess.Popen[bytes]) -> None:
        """Note the child just started, so the exit hook stops it if nobody else does."""
        self._proc = proc
        _live[id(self)] = self

    def _kill_now(self, proc: subprocess.Popen[bytes]) -> None:
        """SIGKILL the server (subclasses also end its helpers)."""
        if proc.poll() is None:
            proc.kill()

    def kill(self) -> None:
        """SIGKILL the server (a crash: no shutdown, no goodbye) and reap it."""
        proc = self._proc
        if proc is None:
            return
        self._kill_now(proc)
        proc.wait()
        _live.pop(id(self), None)

    def stop(self, timeout: float | None = None) -> None:
        """SIGTERM the server, SIGKILL it after timeout, and remove its directory."""
        proc = self._proc
        if proc is not None:
            if proc.poll() is None:
                proc.terminate()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(self.stop_timeout if timeout is None else timeout)
            self._kill_now(proc)
            proc.wait()
        _live.pop(id(self), None)
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def __repr__(self) -> str:
        state = "running" if self.running() else "stopped"
        port = self._port if self._port is not None else "?"
        return f"<{type(self).__name__} {self.name} {self.host}:{port} pid={self.pid} {state}>"

    def __enter__(self) -> Self:
        if not self.running():
            self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

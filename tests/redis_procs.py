"""Redis servers the tests own: plain servers, a Sentinel set-up and a small Cluster.

Unlike the shared server found by ``tests/servers.py``, these are ``redis-server``
processes started by the test session itself, on free ports of 127.0.0.1, so a test
may kill, restart or fail them over without disturbing anyone else.

* ``RedisProcess``: one ``redis-server`` (or one Sentinel), with ``kill``/``restart``/``stop``.
* ``RedisSentinel``: an owned master, one replica and one or three Sentinels; ``failover()``.
* ``RedisCluster``: three owned cluster nodes joined by ``redis-cli --cluster create``.
* ``command``: a minimal RESP client (raw socket) for admin commands and readiness checks.

Every process is a child of the test process, without persistence (``--save ""
--appendonly no``), with its working directory in a temporary directory that ``stop()``
removes. Processes still running at interpreter exit are killed by an ``atexit`` hook;
on Linux they are also killed by the kernel if the test process itself dies
(``PR_SET_PDEATHSIG``), so nothing is left behind even after a SIGKILL of pytest.
"""

from __future__ import annotations

import contextlib
import ctypes
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Self, TypeAlias

from tests.owned import HOST, OwnedProcess

__all__ = [
    "HOST",
    "RedisCluster",
    "RedisProcess",
    "RedisProcessError",
    "RedisReplyError",
    "RedisSentinel",
    "Reply",
    "command",
    "free_port",
    "info",
    "wait_until",
]

STARTUP_TIMEOUT = 10.0
"""Seconds a server gets to answer after it was started."""
COMMAND_TIMEOUT = 2.0
"""Seconds one admin command may take (connect plus reply)."""
PORT_ATTEMPTS = 5
"""Ports tried before giving up when the chosen port turns out to be taken."""
LOG_TAIL_LINES = 30

REDIS_SERVER = shutil.which("redis-server") or "redis-server"
REDIS_CLI = shutil.which("redis-cli") or "redis-cli"

Reply: TypeAlias = "str | int | list[Reply] | None"
"""A decoded RESP2 reply: bulk and simple strings as str, integers, nil, arrays."""


class RedisProcessError(RuntimeError):
    """A server did not start, did not stop, or did not reach the expected state."""


class RedisReplyError(RuntimeError):
    """The server answered a command with an error reply (``-ERR ...``)."""


# --- ports -------------------------------------------------------------------------

_handed_out: set[int] = set()
_ports_lock = threading.Lock()


def free_port(host: str = HOST) -> int:
    """A port that was free on host a moment ago: bound, read back and closed.

    Ports this module already handed out are never returned again, so two servers
    started in a row cannot both be given the same port before either has bound it.
    The port may still be taken by someone else before the server binds it; callers
    retry with another port when that happens (see ``RedisProcess.start``).
    """
    with _ports_lock:
        for _ in range(100):
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
                sock.bind((host, 0))
                port: int = sock.getsockname()[1]
            # A cluster bus defaults to port + 10000; keep that valid even though we
            # always set --cluster-port explicitly.
            if port not in _handed_out and port + 10000 <= 65535:
                _handed_out.add(port)
                return port
    raise RedisProcessError(f"no free port found on {host}")


# --- a minimal RESP client ---------------------------------------------------------


def _encode(args: Sequence[str | int | bytes]) -> bytes:
    out = [b"*%d\r\n" % len(args)]
    for arg in args:
        data = arg if isinstance(arg, bytes) else str(arg).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


def _read_reply(stream: Callable[[], bytes], read: Callable[[int], bytes]) -> Reply:
    line = stream()
    if not line.endswith(b"\r\n"):
        raise ConnectionError("connection closed in the middle of a reply")
    kind, rest = line[:1], line[1:-2]
    if kind == b"+":
        return rest.decode()
    if kind == b"-":
        raise RedisReplyError(rest.decode(errors="replace"))
    if kind == b":":
        return int(rest)
    if kind == b"$":
        size = int(rest)
        if size < 0:
            return None
        data = read(size + 2)
        if len(data) != size + 2:
            raise ConnectionError("connection closed in the middle of a reply")
        return data[:-2].decode(errors="replace")
    if kind == b"*":
        count = int(rest)
        if count < 0:
            return None
        return [_read_reply(stream, read) for _ in range(count)]
    raise ConnectionError(f"not a RESP reply: {line!r}")


def command(
    host: str, port: int, *args: str | int | bytes, timeout: float = COMMAND_TIMEOUT
) -> Reply:
    """Send one command over a fresh connection and return its decoded reply.

    Raises OSError (refused, reset, timed out) or RedisReplyError. Meant for admin
    commands and readiness checks, where a dependency-free client with a hard
    timeout and no retries is what we want; tests of the layers use redis-py.
    """
    with (
        socket.create_connection((host, port), timeout=timeout) as sock,
        sock.makefile("rb") as stream,
    ):
        sock.sendall(_encode(args))
        return _read_reply(stream.readline, stream.read)


def info(
    host: str, port: int, section: str = "", *, timeout: float = COMMAND_TIMEOUT
) -> dict[str, str]:
    """``INFO [section]`` as a dict of field -> value (section headers dropped)."""
    reply = command(host, port, "INFO", *([section] if section else []), timeout=timeout)
    if not isinstance(reply, str):
        raise RedisProcessError(f"INFO answered {reply!r}")
    return _fields(reply)


def _fields(text: str) -> dict[str, str]:
    fields: dict[str, str] = {}
    for line in text.splitlines():
        if line and not line.startswith("#") and ":" in line:
            key, _, value = line.partition(":")
            fields[key] = value.strip()
    return fields


def _pairs(reply: Reply) -> dict[str, str]:
    """A flat [field, value, field, value, ...] reply (SENTINEL MASTER etc.) as a dict."""
    if not isinstance(reply, list):
        raise RedisProcessError(f"expected a field/value array, got {reply!r}")
    items = [str(item) for item in reply]
    return dict(zip(items[::2], items[1::2], strict=True))


def wait_until(
    check: Callable[[], bool], timeout: float, what: str, *, interval: float = 0.05
) -> None:
    """Call check until it returns True; RedisProcessError naming what after timeout.

    OSError and RedisReplyError raised by check count as "not yet" (the last one is
    chained to the timeout error).
    """
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while True:
        try:
            if check():
                return
        except (OSError, RedisReplyError) as exc:
            last = exc
        if time.monotonic() >= deadline:
            detail = f" (last error: {last!r})" if last is not None else ""
            raise RedisProcessError(f"timed out after {timeout:g} s waiting for {what}{detail}")
        time.sleep(interval)


# --- one redis-server ---------------------------------------------------------------

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # pragma: no cover - runs in the forked child
    """preexec_fn: have the kernel SIGKILL the child when its parent thread exits."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def _preexec() -> Callable[[], None] | None:
    # PDEATHSIG fires when the parent *thread* exits, so only use it from the main
    # thread, which lives as long as the test process.
    if sys.platform.startswith("linux") and threading.current_thread() is threading.main_thread():
        return _die_with_parent
    return None


class RedisProcess(OwnedProcess):
    """One ``redis-server`` child process on a free port of 127.0.0.1.

    ``start()`` (or ``with RedisProcess() as server:``) launches it and waits until
    it answers; ``kill()`` SIGKILLs it; ``restart()`` starts it again on the same
    port (its directory, hence a cluster's nodes.conf or a Sentinel's rewritten
    config, is kept); ``stop()`` terminates it and removes its directory (``port``
    stays readable; a later ``start()``/``restart()`` reuses it with a new directory).

    extra_args are appended to the command line (``"--replicaof", "127.0.0.1 6380"``).
    cluster=True makes it a cluster node (config file in its directory, its own free
    bus port). sentinel_config, if given, is written to ``<dir>/sentinel.conf`` and the
    process runs as a Sentinel (``redis-server <conf> --sentinel``).
    """

    Error = RedisProcessError

    def __init__(
        self,
        extra_args: Sequence[str] = (),
        *,
        cluster: bool = False,
        cluster_node_timeout_ms: int = 2000,
        sentinel_config: str | None = None,
        startup_timeout: float = STARTUP_TIMEOUT,
        name: str = "redis",
    ) -> None:
        super().__init__(name)
        self.extra_args = list(extra_args)
        self.cluster = cluster
        self.cluster_node_timeout_ms = cluster_node_timeout_ms
        self.sentinel_config = sentinel_config
        self.startup_timeout = startup_timeout
        self._bus_port: int | None = None

    # -- properties --

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:<port>/0``."""
        return f"redis://{self.host}:{self.port}/0"

    @property
    def log_path(self) -> Path:
        return self.dir / "redis.log"

    def answers(self, timeout: float = 1.0) -> bool:
        """True if the server answers PING with PONG right now."""
        try:
            return command(self.host, self.port, "PING", timeout=timeout) == "PONG"
        except (OSError, RedisReplyError):
            return False

    def command(self, *args: str | int | bytes, timeout: float = COMMAND_TIMEOUT) -> Reply:
        """Send one command to this server (see module-level ``command``)."""
        return command(self.host, self.port, *args, timeout=timeout)

    def info(self, section: str = "") -> dict[str, str]:
        return info(self.host, self.port, section)

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except (OSError, RedisProcessError):
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:]) or "(empty log)"

    # -- lifecycle --

    def args(self) -> list[str]:
        """The full command line for the current port."""
        head = [REDIS_SERVER]
        if self.sentinel_config is not None:
            head += [str(self.dir / "sentinel.conf"), "--sentinel"]
        args = [
            *head,
            "--port", str(self.port),
            "--bind", self.host,
            "--save", "",
            "--appendonly", "no",
            "--daemonize", "no",
            "--dir", str(self.dir),
        ]  # fmt: skip
        if self.sentinel_config is None:
            # Replicas sync at once instead of after the default 5 s diskless delay.
            args += ["--repl-diskless-sync-delay", "0"]
        if self.cluster:
            assert self._bus_port is not None
            args += [
                "--cluster-enabled", "yes",
                "--cluster-config-file", str(self.dir / "nodes.conf"),
                "--cluster-node-timeout", str(self.cluster_node_timeout_ms),
                "--cluster-port", str(self._bus_port),
            ]  # fmt: skip
        return args + self.extra_args

    def start(self) -> Self:
        """Start the server on a free port (a new one per attempt) and wait until ready."""
        if self.running():
            raise RedisProcessError(f"{self!r} is already running")
        if self._port is not None:  # started before: same port, like restart()
            return self.restart()
        failures: list[str] = []
        for _ in range(PORT_ATTEMPTS):
            self._port = free_port(self.host)
            self._bus_port = free_port(self.host) if self.cluster else None
            # A fresh Sentinel config per attempt: nothing learnt by a failed one.
            self._prepare_dir(fresh_config=True)
            try:
                self._launch_and_wait()
                return self
            except _PortTaken as exc:
                failures.append(str(exc))
            except BaseException:
                self._port = self._bus_port = None
                raise
        self._port = self._bus_port = None
        raise RedisProcessError(
            f"{self.name}: no port worked after {PORT_ATTEMPTS} attempts: {failures}"
        )

    def restart(self) -> Self:
        """Start again on the same port and directory (killing it first if running)."""
        if self.running():
            self.kill()
        if self._port is None:
            return self.start()
        self._prepare_dir(fresh_config=False)
        try:
            self._launch_and_wait()
        except _PortTaken as exc:
            raise RedisProcessError(f"{self.name}: cannot restart: {exc}") from None
        return self

    # -- internals --

    def _prepare_dir(self, *, fresh_config: bool) -> None:
        """Create the directory if needed (first start, or restart after stop())."""
        if self._dir is None or not self._dir.exists():
            self._dir = Path(tempfile.mkdtemp(prefix=f"chanlayers-{self.name}-"))
        conf = self._dir / "sentinel.conf"
        if self.sentinel_config is not None and (fresh_config or not conf.exists()):
            conf.write_text(self.sentinel_config)

    def _launch_and_wait(self) -> None:
        with (self.dir / "redis.log").open("ab") as log:
            proc = subprocess.Popen(
                self.args(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.dir,
                preexec_fn=_preexec(),  # only a prctl, see _preexec
            )
        self._launched(proc)
        try:
            self._wait_ready()
        except BaseException:
            self.kill()
            raise

    def _wait_ready(self) -> None:
        """Wait until *our* process answers (INFO's process_id is its pid)."""
        proc = self._proc
        assert proc is not None
        deadline = time.monotonic() + self.startup_timeout
        while True:
            code = proc.poll()
            if code is not None:
                tail = self.log_tail()
                if "Address already in use" in tail:
                    raise _PortTaken(f"port {self.port}: address already in use")
                raise RedisProcessError(
                    f"{self.name} exited with code {code} while starting on port {self.port}.\n"
                    f"Command: {' '.join(self.args())}\nLog tail:\n{tail}"
                )
            try:
                # A short timeout: a squatter that accepts but never answers must not
                # stall us past the moment our own process gives up and exits.
                fields = info(self.host, self.port, "server", timeout=0.5)
                if fields.get("process_id") == str(proc.pid):
                    return
                # Someone else's server answers on our port; ours will exit with
                # "Address already in use" shortly, and we retry on another port.
            except (OSError, RedisReplyError):
                pass
            if time.monotonic() >= deadline:
                raise RedisProcessError(
                    f"{self.name} on port {self.port} did not answer within "
                    f"{self.startup_timeout:g} s.\nCommand: {' '.join(self.args())}\n"
                    f"Log tail:\n{self.log_tail()}"
                )
            time.sleep(0.02)


class _PortTaken(Exception):
    """The chosen port was taken between choosing it and the server binding it."""


# --- Sentinel -----------------------------------------------------------------------


class RedisSentinel:
    """An owned master, one replica of it and one or three Sentinels monitoring it.

    ``with RedisSentinel() as setup:`` starts everything and waits until every
    Sentinel reports the master, knows the replica, and the replica is in sync.
    ``failover()`` makes the replica the master.
    """

    master_name = "mymaster"

    def __init__(
        self,
        sentinels: int = 1,
        *,
        down_after_ms: int = 1000,
        failover_timeout_ms: int = 3000,
        ready_timeout: float = 15.0,
    ) -> None:
        if sentinels not in (1, 3):
            raise ValueError("sentinels must be 1 or 3")
        self.sentinel_count = sentinels
        self.down_after_ms = down_after_ms
        self.failover_timeout_ms = failover_timeout_ms
        self.ready_timeout = ready_timeout
        self.master = RedisProcess(name="sentinel-master")
        self.replica: RedisProcess | None = None
        self.sentinel_procs: list[RedisProcess] = []
        self._stack = contextlib.ExitStack()

    @property
    def sentinels(self) -> list[tuple[str, int]]:
        """(host, port) of every Sentinel, as redis-py's ``Sentinel`` takes them."""
        return [proc.address for proc in self.sentinel_procs]

    @property
    def master_address(self) -> tuple[str, int]:
        return self.master.address

    def sentinel_config(self, quorum: int = 1) -> str:
        return (
            f"sentinel monitor {self.master_name} {HOST} {self.master.port} {quorum}\n"
            f"sentinel down-after-milliseconds {self.master_name} {self.down_after_ms}\n"
            f"sentinel failover-timeout {self.master_name} {self.failover_timeout_ms}\n"
            "sentinel resolve-hostnames no\n"
        )

    def start(self) -> Self:
        try:
            self._stack.enter_context(self.master)
            self.replica = self._stack.enter_context(
                RedisProcess(["--replicaof", f"{HOST} {self.master.port}"], name="sentinel-replica")
            )
            wait_until(
                lambda: self._in_sync(self.replica),
                self.ready_timeout,
                f"replica {self.replica.port} to sync with master {self.master.port}",
            )
            config = self.sentinel_config()
            for index in range(self.sentinel_count):
                self.sentinel_procs.append(
                    self._stack.enter_context(
                        RedisProcess(sentinel_config=config, name=f"sentinel-{index}")
                    )
                )
            self.wait_for_master(self.master.port, self.replica.port)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        self._stack.close()
        self.sentinel_procs.clear()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def sentinel_command(self, *args: str | int, index: int = 0) -> Reply:
        """Send a command to one Sentinel (the first by default)."""
        return self.sentinel_procs[index].command(*args)

    def master_addr(self, index: int = 0) -> tuple[str, int] | None:
        """What ``SENTINEL GET-MASTER-ADDR-BY-NAME`` answers on one Sentinel."""
        reply = self.sentinel_command(
            "SENTINEL", "GET-MASTER-ADDR-BY-NAME", self.master_name, index=index
        )
        if not isinstance(reply, list) or len(reply) != 2:
            return None
        host, port = reply
        return (str(host), int(str(port)))

    def wait_for_master(
        self, master_port: int, replica_port: int | None, timeout: float | None = None
    ) -> None:
        """Wait until every Sentinel reports master_port as an up master and knows
        replica_port as an up replica (and, with three, knows the other two)."""

        def ready() -> bool:
            for index in range(len(self.sentinel_procs)):
                if self.master_addr(index) != (HOST, master_port):
                    return False
                master = _pairs(
                    self.sentinel_command("SENTINEL", "MASTER", self.master_name, index=index)
                )
                if master.get("flags") != "master":  # not s_down, o_down, disconnected
                    return False
                if int(master.get("num-other-sentinels", "0")) != len(self.sentinel_procs) - 1:
                    return False
                if replica_port is not None:
                    replicas = self.sentinel_command(
                        "SENTINEL", "REPLICAS", self.master_name, index=index
                    )
                    assert isinstance(replicas, list)
                    up = [
                        fields
                        for fields in map(_pairs, replicas)
                        if fields.get("port") == str(replica_port)
                        and fields.get("flags") == "slave"
                    ]
                    if not up:
                        return False
            return True

        wait_until(
            ready,
            self.ready_timeout if timeout is None else timeout,
            f"sentinels to report master {master_port} with replica {replica_port}",
        )

    def failover(self, timeout: float = 15.0) -> tuple[str, int]:
        """``SENTINEL FAILOVER``; wait until every Sentinel reports the replica as master.

        Afterwards ``master`` and ``replica`` are swapped, and the old master (if it
        runs) is made a replica of the new one right away: Sentinel would do the same,
        but only some ten seconds later. Waits until it is in sync and every Sentinel
        sees it as a replica, so the set-up is ready for another failover. Returns the
        new master's address.
        """
        old, new = self.master, self.replica
        if new is None:
            raise RedisProcessError("no replica to fail over to")
        self.sentinel_command("SENTINEL", "FAILOVER", self.master_name)
        wait_until(
            lambda: all(
                self.master_addr(i) == (HOST, new.port) for i in range(len(self.sentinel_procs))
            ),
            timeout,
            f"sentinels to report {new.port} as master after failover",
        )
        wait_until(
            lambda: new.info("replication").get("role") == "master",
            timeout,
            f"{new.port} to become master",
        )
        self.master, self.replica = new, old
        if old.running():
            old.command("REPLICAOF", HOST, new.port)
            wait_until(
                lambda: self._in_sync(old),
                timeout,
                f"old master {old.port} to sync with new master {new.port}",
            )
            self.wait_for_master(new.port, old.port, timeout)
        else:
            self.wait_for_master(new.port, None, timeout)
        return new.address

    @staticmethod
    def _in_sync(replica: RedisProcess | None) -> bool:
        assert replica is not None
        return replica.info("replication").get("master_link_status") == "up"


# --- Cluster ------------------------------------------------------------------------


class RedisCluster:
    """Three owned cluster nodes, all masters (no replicas), slots spread over them."""

    def __init__(
        self, size: int = 3, *, ready_timeout: float = 20.0, node_timeout_ms: int = 2000
    ) -> None:
        if size < 3:
            raise ValueError("a Redis Cluster needs at least 3 masters")
        self.size = size
        self.ready_timeout = ready_timeout
        self.procs = [
            RedisProcess(cluster=True, cluster_node_timeout_ms=node_timeout_ms, name=f"cluster-{i}")
            for i in range(size)
        ]
        self._stack = contextlib.ExitStack()

    @property
    def nodes(self) -> list[tuple[str, int]]:
        return [proc.address for proc in self.procs]

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:<port of the first node>`` (a startup node for clients)."""
        return f"redis://{HOST}:{self.procs[0].port}"

    def start(self) -> Self:
        try:
            for proc in self.procs:
                self._stack.enter_context(proc)
            self._create()
            self.wait_ok()
        except BaseException:
            self.stop()
            raise
        return self

    def _create(self) -> None:
        cmd = [
            REDIS_CLI,
            "--cluster", "create",
            *(f"{host}:{port}" for host, port in self.nodes),
            "--cluster-replicas", "0",
            "--cluster-yes",
        ]  # fmt: skip
        try:
            done = subprocess.run(
                cmd, capture_output=True, text=True, timeout=self.ready_timeout, check=False
            )
        except subprocess.TimeoutExpired as exc:
            raise RedisProcessError(f"{' '.join(cmd)} timed out: {exc.output!r}") from None
        if done.returncode != 0:
            raise RedisProcessError(
                f"{' '.join(cmd)} failed with code {done.returncode}:\n{done.stdout}\n{done.stderr}"
            )

    def cluster_info(self, proc: RedisProcess) -> dict[str, str]:
        reply = proc.command("CLUSTER", "INFO")
        if not isinstance(reply, str):
            raise RedisProcessError(f"CLUSTER INFO answered {reply!r}")
        return _fields(reply)

    def wait_ok(self, timeout: float | None = None) -> None:
        """Wait until every running node says cluster_state:ok and knows all nodes."""

        def ok() -> bool:
            for proc in self.procs:
                fields = self.cluster_info(proc)
                if fields.get("cluster_state") != "ok":
                    return False
                if fields.get("cluster_known_nodes") != str(self.size):
                    return False
            return True

        wait_until(
            ok, self.ready_timeout if timeout is None else timeout, "cluster_state:ok on every node"
        )

    def stop(self) -> None:
        self._stack.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

"""A RabbitMQ node the tests own: a second ``rabbitmq-server`` that may be killed and restarted.

The shared broker (``rabbit@<host>`` on 5672) must never be stopped, so fault tests run
against a node of their own: its own node name (``chl-<random>@localhost``), AMQP port,
distribution port, cookie, home, Mnesia and log directories, all under a temporary
directory that ``stop()`` removes. No plugins are enabled (the node boots in a few
seconds) and ``loopback_users = none`` is not needed: guest logs in from 127.0.0.1.

The server script is started with ``RUNNING_UNDER_SYSTEMD`` set so that it ``exec``s
erl, which ``exec``s beam: the child process *is* the beam process, so ``kill()`` is a
SIGKILL of the broker itself, and ``PR_SET_PDEATHSIG`` (kept across exec) kills it if
the test process dies. It runs in its own session, and ``kill()``/``stop()`` also end
its helpers (erl_child_setup, inet_gethost) with the process group. An ``atexit`` hook
stops every node still running.

``tls=True`` adds an AMQPS listener on 127.0.0.1 (``tls_port``, ``amqps_url``) with a
server certificate from a CA made for the node (``pki``, tests/pki.py); clients are not
asked for certificates.

``shared_node()`` hands out one node per test session (it boots in ~5 s), with a TLS
listener; it restarts the node if a test left it killed.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Self

from tests.owned import OwnedProcess
from tests.pki import Pki, make_pki
from tests.redis_procs import _preexec, free_port
from tests.servers import amqp_answers

__all__ = ["RabbitProcess", "RabbitProcessError", "shared_node", "stop_shared_node"]

STARTUP_TIMEOUT = 30.0
"""Seconds a node gets to accept AMQP connections after it was started."""
CTL_TIMEOUT = 20.0
LOG_TAIL_LINES = 30

_LIB = Path("/usr/lib/rabbitmq/bin")
# The /usr/sbin wrappers switch to the rabbitmq user, whose home holds the shared
# node's cookie; the scripts under /usr/lib run as we are, with our HOME.
RABBITMQ_SERVER = str(_LIB / "rabbitmq-server") if _LIB.is_dir() else "rabbitmq-server"
RABBITMQCTL = str(_LIB / "rabbitmqctl") if _LIB.is_dir() else "rabbitmqctl"


class RabbitProcessError(RuntimeError):
    """A node did not start, did not stop, or a rabbitmqctl command failed."""


class RabbitProcess(OwnedProcess):
    """One owned ``rabbitmq-server`` node on free ports of 127.0.0.1."""

    Error = RabbitProcessError
    stop_timeout = 15.0  # a node's clean shutdown takes a few seconds

    def __init__(self, *, tls: bool = False, startup_timeout: float = STARTUP_TIMEOUT) -> None:
        self.nodename = f"chl-{secrets.token_hex(4)}@localhost"
        super().__init__(self.nodename)
        self.tls = tls
        self.startup_timeout = startup_timeout
        self._dist_port: int | None = None
        self._tls_port: int | None = None
        self._pki: Pki | None = None

    @property
    def url(self) -> str:
        """``amqp://guest:guest@127.0.0.1:<port>/``."""
        return f"amqp://guest:guest@{self.host}:{self.port}/"

    @property
    def tls_port(self) -> int:
        """The AMQPS port (a node started with tls=True)."""
        if self._tls_port is None:
            raise RabbitProcessError(f"{self.nodename} has no TLS listener")
        return self._tls_port

    @property
    def pki(self) -> Pki:
        """The CA and server certificate of the TLS listener."""
        if self._pki is None:
            raise RabbitProcessError(f"{self.nodename} has no TLS listener")
        return self._pki

    @property
    def amqps_url(self) -> str:
        """``amqps://guest:guest@127.0.0.1:<tls port>/`` (the client must trust ``pki.ca``)."""
        return f"amqps://guest:guest@{self.host}:{self.tls_port}/"

    def answers(self, timeout: float = 1.0) -> bool:
        """True if the node answers the AMQP protocol header (and accepts on its TLS port)."""
        if self._port is None or not amqp_answers(self.host, self.port, timeout):
            return False
        if self._tls_port is None:
            return True
        try:
            socket.create_connection((self.host, self._tls_port), timeout).close()
        except OSError:
            return False
        return True

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        chunks: list[str] = []
        for path in [self.dir / "stdout.log", *sorted((self.dir / "log").glob("*.log"))]:
            with contextlib.suppress(OSError):
                text = path.read_text(errors="replace").splitlines()[-lines:]
                chunks.append(f"--- {path.name}\n" + "\n".join(text))
        return "\n".join(chunks) or "(no log)"

    def env(self) -> dict[str, str]:
        """The environment of the server and of rabbitmqctl for this node."""
        base = self.dir
        return {
            **os.environ,
            "HOME": str(base / "home"),  # holds our own .erlang.cookie
            "RABBITMQ_NODENAME": self.nodename,
            "RABBITMQ_NODE_IP_ADDRESS": self.host,
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self._dist_port),
            "RABBITMQ_MNESIA_BASE": str(base / "mnesia"),
            "RABBITMQ_LOG_BASE": str(base / "log"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(base / "enabled_plugins"),
            "RABBITMQ_CONFIG_FILE": str(base / "rabbitmq.conf"),
            "RABBITMQ_ADVANCED_CONFIG_FILE": str(base / "advanced.config"),
            "RABBITMQ_PID_FILE": str(base / "rabbit.pid"),
            "RUNNING_UNDER_SYSTEMD": "1",  # the script execs erl instead of waiting on it
        }

    def _prepare_dir(self) -> None:
        base = Path(tempfile.mkdtemp(prefix="chl-rabbit-"))
        (base / "home").mkdir()
        cookie = base / "home" / ".erlang.cookie"
        cookie.write_text(secrets.token_hex(16).upper())
        cookie.chmod(0o400)
        (base / "enabled_plugins").write_text("[].\n")
        # Logs to a file only; the default "console" output would fill our pipe.
        conf = ["log.console = false", "log.file.level = info"]
        if self.tls:
            (base / "tls").mkdir()
            self._pki = make_pki(base / "tls")
            conf += [
                f"listeners.ssl.1 = {self.host}:{self.tls_port}",
                f"ssl_options.cacertfile = {self._pki.ca}",
                f"ssl_options.certfile = {self._pki.cert}",
                f"ssl_options.keyfile = {self._pki.key}",
                "ssl_options.verify = verify_none",
                "ssl_options.fail_if_no_peer_cert = false",
            ]
        (base / "rabbitmq.conf").write_text("\n".join(conf) + "\n")
        (base / "advanced.config").write_text("[].\n")
        self._dir = base

    def start(self) -> Self:
        """Start the node on free ports and wait until it accepts AMQP connections."""
        if self.running():
            raise RabbitProcessError(f"{self!r} is already running")
        if self._port is not None:
            return self.restart()
        self._port, self._dist_port = free_port(), free_port()
        if self.tls:
            self._tls_port = free_port()
        self._prepare_dir()
        try:
            self._launch_and_wait()
        except BaseException:
            self.stop()
            raise
        return self

    def restart(self) -> Self:
        """Start again with the same name, ports and directories (killing it first)."""
        if self.running():
            self.kill()
        if self._port is None or self._dir is None:
            return self.start()
        self._launch_and_wait()
        return self

    def _launch_and_wait(self) -> None:
        with (self.dir / "stdout.log").open("ab") as out:
            proc = subprocess.Popen(
                [RABBITMQ_SERVER],
                env=self.env(),
                cwd=self.dir,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_preexec(),
            )
        self._launched(proc)
        deadline = time.monotonic() + self.startup_timeout
        while not self.answers(timeout=1.0):
            if not self.running():
                raise RabbitProcessError(
                    f"{self.nodename} exited with code {proc.returncode} while starting:\n"
                    + self.log_tail()
                )
            if time.monotonic() >= deadline:
                self.kill()
                raise RabbitProcessError(
                    f"{self.nodename} did not accept AMQP on {self.host}:{self.port} within "
                    f"{self.startup_timeout:g} s:\n" + self.log_tail()
                )
            time.sleep(0.2)

    def _kill_now(self, proc: subprocess.Popen[bytes]) -> None:
        # The beam leads its own session: SIGKILL the group, so its helpers
        # (erl_child_setup, inet_gethost) go too, even after the beam itself exited.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)

    def stop(self, timeout: float | None = None) -> None:
        """SIGTERM the node (a clean shutdown), SIGKILL its group after timeout, remove
        its files; the next start() picks new ports."""
        super().stop(timeout)
        self._port = self._tls_port = None
        self._pki = None

    def ctl(self, *args: str, timeout: float = CTL_TIMEOUT) -> str:
        """Run ``rabbitmqctl -n <this node> <args>`` and return its standard output."""
        cmd = [RABBITMQCTL, "-n", self.nodename, "-q", *args]
        try:
            done = subprocess.run(
                cmd, env=self.env(), capture_output=True, text=True, timeout=timeout, check=False
            )
        except subprocess.TimeoutExpired:
            raise RabbitProcessError(f"{' '.join(cmd)} timed out after {timeout:g} s") from None
        if done.returncode != 0:
            raise RabbitProcessError(
                f"{' '.join(cmd)} failed with code {done.returncode}: {done.stderr.strip()}"
            )
        return done.stdout

    def connections(self) -> int:
        """How many AMQP client connections the node has open now."""
        out = self.ctl("list_connections", "--no-table-headers", "pid")
        return len([line for line in out.splitlines() if line.strip()])


_shared: RabbitProcess | None = None


def shared_node() -> RabbitProcess:
    """The session's owned node, started on first use, restarted if a test killed it."""
    global _shared
    if _shared is None:
        _shared = RabbitProcess(tls=True).start()
    elif not _shared.running() or not _shared.answers():
        _shared.restart()
    return _shared


def stop_shared_node() -> None:
    """Stop the session's node (if one was started)."""
    global _shared
    if _shared is not None:
        _shared.stop()
        _shared = None

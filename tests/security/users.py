"""A second local identity for the tests: code run in a child process as another uid.

The tests run as root (CI does), so a child can become uid 65534 ("nobody") and act
as another local user would. The child imports what it needs while still root (the
interpreter and the venv may sit under /root, which nobody cannot read), then drops
to the other identity for good and runs the test's code. Run as anyone but root, the
tests that need this are skipped loudly, and under CHANLAYERS_CI=1 they fail.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NOBODY = 65534
OTHER = 65533  # a third user, in no group of the tests

_PRELUDE = """
import asyncio, errno, json, os, socket, stat, sys
from pathlib import Path
import layers.ipc, layers.ipc.access
from layers.ipc import IPCChannelLayer
from layers.exceptions import ConfigError
groups = json.loads(os.environ["AS_GROUPS"])
os.setgroups(groups)
os.setgid(int(os.environ["AS_GID"]))
os.setuid(int(os.environ["AS_UID"]))
assert os.getuid() == os.geteuid() != 0
shm = os.environ.get("AS_SHM")
if shm:
    layers.ipc.access._root = lambda: Path(shm)
"""


def need_root() -> None:
    """Skip (loudly; fail under CHANLAYERS_CI) unless a second identity can be made."""
    if os.geteuid() == 0:
        return
    reason = (
        "SKIPPED A SECURITY TEST: it acts as a second local user, which needs root "
        f"(running as uid {os.geteuid()})"
    )
    print(f"\n*** {reason} ***", file=sys.stderr)
    if os.environ.get("CHANLAYERS_CI"):
        pytest.fail(reason)
    pytest.skip(reason)


def start_as_user(
    code: str, *, uid: int = NOBODY, groups: tuple[int, ...] = (), shm: Path | None = None
) -> subprocess.Popen[str]:
    """Start code (Python) as uid, with the IPC regions' root at shm; stdout piped."""
    need_root()
    env = {
        **os.environ,
        "AS_UID": str(uid),
        "AS_GID": str(uid),
        "AS_GROUPS": str(list(groups)),
        "AS_SHM": str(shm or ""),
    }
    return subprocess.Popen(
        [sys.executable, "-c", _PRELUDE + textwrap.dedent(code)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def as_user(
    code: str,
    *,
    uid: int = NOBODY,
    groups: tuple[int, ...] = (),
    shm: Path | None = None,
    timeout: float = 30,
) -> subprocess.CompletedProcess[str]:
    """Run code (Python) as uid to its end; its result."""
    proc = start_as_user(code, uid=uid, groups=groups, shm=shm)
    try:
        out, err = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def ok(result: subprocess.CompletedProcess[str]) -> str:
    """The child's stdout, once it is known to have succeeded."""
    assert result.returncode == 0, result.stderr
    return result.stdout

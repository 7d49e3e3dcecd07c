"""Fixtures for the IPC tests: a fresh region name, its layers, and child processes."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from layers.ipc import IPCChannelLayer
from layers.ipc.files import default_directory

ROOT = Path(__file__).resolve().parents[2]


class Child:
    """A participant in another process (tests/ipc/child.py), read line by line."""

    def __init__(self, mode: str, name: str, *args: str, **options: Any) -> None:
        env = {**os.environ, "IPC_CHILD_OPTIONS": json.dumps(options)}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.ipc.child", mode, name, *args],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            text=True,
        )

    async def line(self, timeout: float = 10) -> str:
        """The next line the child printed."""
        assert self.proc.stdout is not None
        async with asyncio.timeout(timeout):
            text = await asyncio.to_thread(self.proc.stdout.readline)
        assert text, f"child exited early with {self.proc.poll()}"
        return text.rstrip("\n")

    async def lines(self) -> list[str]:
        """Every remaining line, once the child has exited."""
        assert self.proc.stdout is not None
        rest = await asyncio.to_thread(self.proc.stdout.read)
        return rest.splitlines()

    async def wait(self, timeout: float = 10) -> int:
        """Wait for the child to exit; its return code."""
        return await asyncio.to_thread(self.proc.wait, timeout)

    def kill(self) -> None:
        """kill -9 the child."""
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)

    def reap(self) -> None:
        """Kill if still running, wait, and close the pipe."""
        self.kill()
        self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()


@pytest.fixture
def region_name() -> Iterator[str]:
    """A fresh region name; the test fails if its directory outlives the test."""
    name = f"test-{secrets.token_hex(4)}"
    yield name
    leftover = default_directory(name)
    if leftover.exists():
        # Fail, but leave /dev/shm clean: a region that held something persists.
        shutil.rmtree(leftover, ignore_errors=True)
        pytest.fail(f"{leftover} was left behind")


@pytest.fixture
def children(region_name: str) -> Iterator[list[Child]]:
    """Children started by the test; killed and reaped at teardown."""
    made: list[Child] = []
    yield made
    for child in made:
        child.reap()


@pytest.fixture
async def open_layer(region_name: str) -> AsyncIterator[Any]:
    """Opens IPC layers on the test's region; closes them at teardown."""
    made: list[IPCChannelLayer] = []

    def factory(**options: Any) -> IPCChannelLayer:
        options.setdefault("name", region_name)
        layer = IPCChannelLayer(**options)
        made.append(layer)
        return layer

    yield factory
    # What the test left queued would rightly keep the region after the last close.
    still_open = [layer for layer in made if not layer.closed]
    if still_open:
        await still_open[0].flush()
    for layer in made:
        await layer.close()

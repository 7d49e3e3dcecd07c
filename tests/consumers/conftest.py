"""A fresh in-memory 'default' layer per consumer test, chosen through the environment."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import signal
import socket
import sys
from collections.abc import AsyncIterator, Iterator

import pytest

import layers.config
from layers import ChannelLayer, SyncChannelLayer, get_channel_layer


@pytest.fixture(autouse=True)
async def layer(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[ChannelLayer]:
    """The layer consumers with alias 'default' get: memory://, new for this test."""
    monkeypatch.delenv("CHANNEL_LAYERS", raising=False)
    monkeypatch.setenv("CHANNEL_LAYER_URL", "memory://")
    layers.config.reset_channel_layers()
    the_layer = get_channel_layer()
    try:
        yield the_layer
    finally:
        await the_layer.close()
        layers.config.reset_channel_layers()


@pytest.fixture
def redis_layer_url(redis_url: str) -> Iterator[str]:
    """A Redis layer URL with a prefix of its own, flushed afterwards (shared server)."""
    sep = "&" if "?" in redis_url else "?"
    url = f"{redis_url}{sep}prefix=tcons{secrets.token_hex(4)}"
    yield url
    with SyncChannelLayer(url) as sync_layer:
        sync_layer.flush()


def free_port() -> int:
    """A TCP port nobody listens on right now (for a server started as a subprocess)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.asynccontextmanager
async def cli_process(
    *args: str, cwd: str | None = None
) -> AsyncIterator[asyncio.subprocess.Process]:
    """`chanlayers ARGS` as a subprocess in its own session, its group stopped afterwards."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "layers",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        start_new_session=True,
        cwd=cwd,
    )
    try:
        yield process
    finally:
        for signum in (signal.SIGTERM, signal.SIGKILL):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signum)
            try:
                await asyncio.wait_for(process.wait(), timeout=10)
            except TimeoutError:
                continue
            # The leader is gone; anything it left in its group goes too.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            break

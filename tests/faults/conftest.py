"""Fixtures of the fault tests: an owned server per networked backend, behind a TcpProxy."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from layers.base import ChannelLayer
from tests.faults.backends import NETWORKED, NetworkedBackend, OwnedServer
from tests.faults.proxy import TcpProxy


@dataclass
class Rig:
    """A backend, the server it owns, and the proxy every layer of the test goes through."""

    backend: NetworkedBackend
    server: OwnedServer
    proxy: TcpProxy
    layers: list[ChannelLayer] = field(default_factory=list)

    def layer(self, **options: Any) -> ChannelLayer:
        """A layer that reaches the server through the proxy; closed at teardown."""
        made = self.backend.make(*self.proxy.address, **options)
        self.layers.append(made)
        return made

    def direct(self, **options: Any) -> ChannelLayer:
        """A layer that reaches the server without the proxy; closed at teardown."""
        made = self.backend.make(*self.server.address, **options)
        self.layers.append(made)
        return made


@pytest.fixture(params=NETWORKED, ids=[b.name for b in NETWORKED])
def networked_server(request: pytest.FixtureRequest) -> Iterator[tuple[NetworkedBackend, Any]]:
    """An owned server of each networked backend."""
    backend: NetworkedBackend = request.param
    with backend.server() as server:
        yield backend, server


@pytest.fixture
async def rig(networked_server: tuple[NetworkedBackend, OwnedServer]) -> AsyncIterator[Rig]:
    """A backend's owned server behind a fault proxy; the layers made are closed after."""
    backend, server = networked_server
    with TcpProxy(*server.address) as proxy:
        made = Rig(backend, server, proxy)
        yield made
        proxy.accept()
        proxy.resume()
        proxy.delay = 0
        for layer in made.layers:
            await layer.close()
    # The proxy's aborts reach this loop's transports in its next turns; then anything
    # left unclosed is collected now, so a leak fails the test that made it, not a later one.
    for _ in range(3):
        await asyncio.sleep(0.01)
    gc.collect()

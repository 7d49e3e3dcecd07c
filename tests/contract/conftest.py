"""The contract suite's fixtures: every test here runs once per backend variant."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from layers.base import ChannelLayer
from tests.variants import VARIANTS, Variant

LayerFactory = Callable[..., ChannelLayer]


@pytest.fixture(params=VARIANTS, ids=[v.name for v in VARIANTS])
def variant(request: pytest.FixtureRequest) -> Variant:
    """The backend variant under test, bound to the servers it needs."""
    chosen: Variant = request.param
    if chosen.servers is not None:
        return chosen.bind(**request.getfixturevalue(chosen.servers))
    return chosen


class Layers:
    """Makes layers of one variant and closes them after the test."""

    def __init__(self, variant: Variant) -> None:
        self.variant = variant
        self.made: list[ChannelLayer] = []

    def __call__(self, **options: Any) -> ChannelLayer:
        layer = self.variant.make(**options)
        self.made.append(layer)
        return layer

    def peer(self, layer: ChannelLayer, **options: Any) -> ChannelLayer:
        """Another 'process' on the same layer: a new object where state is shared."""
        if not self.variant.shared:
            return layer
        return self(prefix=layer.prefix, **options)

    async def close_all(self) -> None:
        for layer in self.made:
            if not layer.closed:
                await layer.flush()
                await layer.close()
        if self.variant.shared:
            # Layers the test closed itself may have left queues or keys on the server:
            # a fresh layer per prefix flushes them too.
            for prefix in sorted({layer.prefix for layer in self.made}):
                async with self.variant.make(prefix=prefix) as fresh:
                    await fresh.flush()


@pytest.fixture
async def make_layer(variant: Variant) -> AsyncIterator[Layers]:
    """A factory of layers of the current variant, closed at teardown."""
    layers = Layers(variant)
    yield layers
    await layers.close_all()


@pytest.fixture
async def layer(make_layer: Layers) -> ChannelLayer:
    """A layer of the current variant with default options."""
    return make_layer()

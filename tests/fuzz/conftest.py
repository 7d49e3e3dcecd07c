"""Fixtures of the property tests: one layer per backend, reused across every example.

Reusing the layer is the point: after any amount of bad input it must still work.
A backend joins the fuzzing with its variant's name in ``FUZZED``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from hypothesis import HealthCheck, settings

from layers.base import ChannelLayer
from tests.helpers import msg, recv
from tests.variants import VARIANTS, Variant

FUZZED = ("inmemory", "ipc", "redis", "rabbitmq")
VARIANTS_FUZZED = [v for v in VARIANTS if v.name in FUZZED]

# Bounded and reproducible: the same examples on every run, CI included.
settings.register_profile(
    "chanlayers",
    max_examples=40,
    deadline=None,
    derandomize=True,
    database=None,  # derandomized: nothing to replay, nothing to write
    print_blob=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
settings.load_profile("chanlayers")


@pytest.fixture(params=VARIANTS_FUZZED, ids=[v.name for v in VARIANTS_FUZZED])
async def fuzzed(request: pytest.FixtureRequest) -> AsyncIterator[ChannelLayer]:
    """A layer of each fuzzed backend; checked to still work at teardown."""
    chosen: Variant = request.param
    if chosen.servers is not None:
        chosen = chosen.bind(**request.getfixturevalue(chosen.servers))
    layer = chosen.make(capacity=1000)
    yield layer
    await still_works(layer)
    await layer.flush()
    await layer.close()


async def still_works(layer: ChannelLayer) -> None:
    """The layer sends, receives and fans out as if nothing had happened."""
    await layer.send("after.fuzz", msg(7))
    assert (await recv(layer, "after.fuzz"))["seq"] == 7
    local = await layer.new_channel()
    await layer.group_add("after-fuzz", local)
    await layer.group_send("after-fuzz", msg(8))
    assert (await recv(layer, local))["seq"] == 8
    await layer.group_discard("after-fuzz", local)

"""Property tests over configs: any option value builds a working layer or raises ConfigError."""

from __future__ import annotations

import secrets
from typing import Any

import pytest
from hypothesis import event, example, given, settings
from hypothesis import strategies as st

from layers.exceptions import ConfigError, InvalidChannelName
from layers.inmemory import InMemoryChannelLayer
from layers.redis import RedisChannelLayer
from tests.helpers import msg, recv

anything = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.text(max_size=10),
    st.binary(max_size=10),
    st.lists(st.integers() | st.text(max_size=5), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
)
# Per option: plausible values (mostly accepted), then anything at all.
PLAUSIBLE = {
    "expiry": st.floats(min_value=0.001, max_value=1e12) | st.integers(1, 10**15),
    "group_expiry": st.integers(1, 10**15) | st.floats(min_value=1e-3, max_value=1e12),
    "capacity": st.integers(-5, 10**9),
    "channel_capacity": st.dictionaries(
        st.text(max_size=6) | st.just("re:(") | st.just("re:fuzz.*") | st.integers(),
        st.integers(-1, 100),
        max_size=2,
    ),
    "symmetric_encryption_keys": st.lists(
        st.text(max_size=24) | st.binary(max_size=24), max_size=2
    ),
    "max_message_size": st.integers(-1, 1 << 30),
    "prefix": st.text("abc.-_!:{ ", max_size=12),
}
REDIS_PLAUSIBLE = {
    "socket_timeout": st.floats(min_value=0.01, max_value=1e6),
    "blocking_timeout": st.floats(min_value=0.01, max_value=1e6),
    "batch_size": st.integers(-1, 10**6),
    "cluster": st.booleans(),
}
UNKNOWN = {"no_such_option": anything}


def configs(plausible: dict[str, st.SearchStrategy[Any]]) -> st.SearchStrategy[dict[str, Any]]:
    wild = {name: strategy | anything for name, strategy in plausible.items()}
    return st.fixed_dictionaries({}, optional=plausible) | st.fixed_dictionaries(
        {}, optional={**wild, **UNKNOWN}
    )


# A prefix is a name: a bad one is InvalidChannelName (a TypeError), like any bad name.
REFUSALS = (ConfigError, InvalidChannelName)


def build(factory: Any, **options: Any) -> Any:
    """The layer, or None if refused with a documented error that says something."""
    try:
        layer = factory(**options)
    except REFUSALS as exc:
        refusal = str(exc)
    else:
        event("built")
        return layer
    event("refused")
    assert refusal
    return None


async def exercise(layer: Any) -> None:
    try:
        await layer.send("fuzz.config", msg(1))
        if layer.expiry >= 1:  # a shorter one may rightly expire before the receive
            assert (await recv(layer, "fuzz.config"))["seq"] == 1
    finally:
        await layer.flush()
        await layer.close()


@settings(max_examples=100)
@given(options=configs(PLAUSIBLE))
async def test_inmemory_configs(options: dict[str, Any]) -> None:
    layer = build(InMemoryChannelLayer, **options)
    if layer is not None:
        await exercise(layer)


@pytest.mark.usefixtures("redis_url")
@settings(max_examples=100)
@given(options=configs({**PLAUSIBLE, **REDIS_PLAUSIBLE}))
@example(options={"expiry": 9646430256.0})  # once overflowed the entries' 13-digit expiry
async def test_redis_configs(redis_url: str, options: dict[str, Any]) -> None:
    # Never the default prefix, nor a short one someone else may use on this server.
    tag = f"z{secrets.token_hex(4)}"
    options["prefix"] = tag + options["prefix"] if isinstance(options.get("prefix"), str) else tag
    layer = build(RedisChannelLayer, hosts=[redis_url], **options)
    if layer is None:
        return
    if layer.cluster:  # a plain server is no cluster: nothing to exercise
        await layer.close()
        return
    await exercise(layer)

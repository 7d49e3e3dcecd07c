"""Building layers from URLs, CHANNEL_LAYERS dicts and the environment."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from layers.config import (
    available_backends,
    get_channel_layer,
    layer_from_config,
    layer_from_url,
    reset_channel_layers,
)
from layers.exceptions import BackendNotAvailable, ConfigError
from layers.inmemory import InMemoryChannelLayer


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in ("CHANNEL_LAYERS", "CHANNEL_LAYER_URL", "DJANGO_SETTINGS_MODULE"):
        monkeypatch.delenv(name, raising=False)
    reset_channel_layers()
    yield
    reset_channel_layers()


def test_memory_url_with_options() -> None:
    layer = layer_from_url('memory://?capacity=7&expiry=2.5&channel_capacity={"a*":1}')
    assert isinstance(layer, InMemoryChannelLayer)
    assert (layer.capacity, layer.expiry, layer.get_capacity("ab")) == (7, 2.5, 1)


def test_unknown_scheme_lists_the_known_ones() -> None:
    with pytest.raises(ConfigError, match=r"unknown channel layer URL scheme 'mqtt'.*memory://"):
        layer_from_url("mqtt://localhost")


def test_unknown_url_option_is_named() -> None:
    with pytest.raises(ConfigError, match="unknown option.*bogus"):
        layer_from_url("memory://?bogus=1")


@pytest.mark.parametrize("url", ["ipc://myapp", "redis://localhost:6379", "amqp://guest@localhost"])
def test_backends_not_yet_written_are_not_available(url: str) -> None:
    scheme = url.split(":", 1)[0] + "://"
    if scheme in available_backends():  # it has landed: its own tests cover it
        return
    with pytest.raises(BackendNotAvailable, match=r"is not available.*available here: memory://"):
        layer_from_url(url)


def test_config_dict_like_django() -> None:
    layer = layer_from_config(
        {"BACKEND": "layers.inmemory.InMemoryChannelLayer", "CONFIG": {"capacity": 3}}
    )
    assert isinstance(layer, InMemoryChannelLayer)
    assert layer.capacity == 3


@pytest.mark.parametrize(
    ("config", "text"),
    [
        ({"CONFIG": {}}, "has no BACKEND"),
        ({"BACKEND": "nodots"}, "must be a dotted path"),
        ({"BACKEND": "layers.nothing.Layer"}, "module 'layers.nothing' does not exist"),
        ({"BACKEND": "layers.inmemory.Nope"}, "layers.inmemory has no Nope"),
        ({"BACKEND": "layers.inmemory.InMemoryChannelLayer", "CONFIG": []}, "CONFIG must be"),
        (42, "must be a dict or a URL"),
    ],
)
def test_bad_configs_say_what_is_wrong(config: object, text: str) -> None:
    with pytest.raises(ConfigError, match=text):
        layer_from_config(config)


def test_falls_back_to_in_memory_and_caches() -> None:
    layer = get_channel_layer()
    assert isinstance(layer, InMemoryChannelLayer)
    assert get_channel_layer() is layer
    with pytest.raises(ConfigError, match="no channel layer 'other'"):
        get_channel_layer("other")


def test_env_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHANNEL_LAYER_URL", "memory://?capacity=9")
    assert get_channel_layer().capacity == 9


def test_env_json_wins_over_env_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHANNEL_LAYER_URL", "memory://?capacity=9")
    monkeypatch.setenv(
        "CHANNEL_LAYERS",
        json.dumps(
            {
                "default": {
                    "BACKEND": "layers.inmemory.InMemoryChannelLayer",
                    "CONFIG": {"capacity": 4},
                },
                "jobs": "memory://?capacity=5",
            }
        ),
    )
    assert get_channel_layer().capacity == 4
    assert get_channel_layer("jobs").capacity == 5
    with pytest.raises(ConfigError, match=r"no channel layer 'x'.*'default', 'jobs'"):
        get_channel_layer("x")


def test_bad_env_json(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHANNEL_LAYERS", "{not json")
    with pytest.raises(ConfigError, match="not JSON"):
        get_channel_layer()


async def test_a_closed_cached_layer_is_replaced() -> None:
    layer = get_channel_layer()
    await layer.close()
    assert get_channel_layer() is not layer


def test_install_hints_work_from_pypi_and_from_a_checkout() -> None:
    from layers.config import install_hint

    hint = install_hint("rabbitmq")
    assert "pip install 'chanlayers[rabbitmq]'" in hint
    assert "pip install -e '.[rabbitmq]'" in hint

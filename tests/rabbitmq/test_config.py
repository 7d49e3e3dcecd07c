"""Configuration: host or url, TLS context, our options, and unknown ones refused by name."""

from __future__ import annotations

import ssl

import pytest

from layers.config import layer_from_url
from layers.exceptions import ConfigError
from layers.rabbitmq import RabbitMQChannelLayer
from tests.helpers import msg, recv
from tests.rabbitmq.conftest import MakeLayer


def test_unknown_option_is_named() -> None:
    with pytest.raises(ConfigError, match="prefetch_cuont") as caught:
        RabbitMQChannelLayer(prefetch_cuont=5)
    assert "prefetch_count" in str(caught.value)  # the known options are listed


def test_host_and_url_are_exclusive() -> None:
    with pytest.raises(ConfigError, match="either host or url"):
        RabbitMQChannelLayer(host="amqp://a/", url="amqp://b/")


def test_a_bare_host_becomes_an_amqp_url() -> None:
    layer = RabbitMQChannelLayer(host="rabbit.internal")
    assert layer.url == "amqp://guest:guest@rabbit.internal/"
    assert RabbitMQChannelLayer(host="amqps://u:p@h/v").url == "amqps://u:p@h/v"


@pytest.mark.parametrize(
    ("options", "error"),
    [
        ({"url": "redis://localhost"}, "amqp:// or amqps://"),
        ({"prefetch_count": 0}, "prefetch_count"),
        ({"prefetch_count": 1.5}, "prefetch_count"),
        ({"connect_timeout": -1}, "connect_timeout"),
        ({"ssl_context": "yes"}, "ssl_context"),
        ({"capacity": 0}, "capacity"),
    ],
)
def test_bad_values_are_refused(options: dict[str, object], error: str) -> None:
    with pytest.raises(ConfigError, match=error):
        RabbitMQChannelLayer(**options)  # type: ignore[arg-type]


def test_ssl_context_is_accepted() -> None:
    context = ssl.create_default_context()
    layer = RabbitMQChannelLayer(url="amqps://guest:guest@localhost/", ssl_context=context)
    assert layer.links.ssl_context is context


def test_from_url_splits_our_options_from_the_clients() -> None:
    layer = RabbitMQChannelLayer.from_url(
        "amqps://u:p@host:5671/vh?prefix=app&capacity=7&cafile=/ca.pem&heartbeat=30"
    )
    assert layer.prefix == "app"
    assert layer.capacity == 7
    assert layer.url == "amqps://u:p@host:5671/vh?cafile=/ca.pem&heartbeat=30"


def test_from_url_names_an_option_nobody_reads() -> None:
    # A typo of a layer option would otherwise go to aiormq, which ignores it.
    with pytest.raises(ConfigError, match="'capcity'"):
        RabbitMQChannelLayer.from_url("amqp://u:p@host/?capcity=7")


async def test_layer_from_an_amqp_url_works(amqp_url: str) -> None:
    layer = layer_from_url(f"{amqp_url.rstrip('/')}/?prefix=tcfg{id(amqp_url) % 10000}")
    assert isinstance(layer, RabbitMQChannelLayer)
    try:
        await layer.send("cfg", msg(1))
        assert (await recv(layer, "cfg"))["seq"] == 1
    finally:
        await layer.flush()
        await layer.close()


async def test_stats_report_the_backend_figures(rabbit: MakeLayer) -> None:
    layer = rabbit()
    stats = layer.stats()
    assert stats["backend"] == "RabbitMQChannelLayer"
    assert stats["dropped_unroutable"] == 0
    assert stats["inbox"] == f"{layer.prefix}:p:{layer.client_id}"

"""Secrets out of errors and logs; TLS settings never silently dropped; shard placement
that a password rotation (or a new sentinel) does not move."""

from __future__ import annotations

import asyncio
import logging
import ssl
import subprocess
import sys
from typing import Any

import pytest

from layers.config import layer_from_url
from layers.exceptions import ChannelLayerConnectionError, ConfigError
from layers.rabbitmq import RabbitMQChannelLayer
from layers.redact import LOGGERS, redact, redact_options
from layers.redis import RedisChannelLayer
from tests.helpers import msg
from tests.redis_procs import free_port

SECRET = "SuperSecretPw"


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        (f"redis://:{SECRET}@127.0.0.1:6399/0", "redis://:***@127.0.0.1:6399/0"),
        (f"amqp://guest:{SECRET}@host/vh", "amqp://guest:***@host/vh"),
        (f"at rediss://u:{SECRET}@h:1 and amqps://a:{SECRET}@b/ x", "at rediss://u:***@h:1 and "),
        (f"redis://:p@ss{SECRET}@h:1/0", "redis://:***@h:1/0"),  # an unquoted "@" too
        (f"redis://h:1/0?password={SECRET}&db=1", "redis://h:1/0?password=***&db=1"),
        ("redis://user@h:1/0", "redis://user@h:1/0"),  # no password: nothing to hide
    ],
)
def test_passwords_in_text_are_masked(text: str, shown: str) -> None:
    assert redact(text).startswith(shown)
    assert SECRET not in redact(text)


def test_passwords_in_options_are_masked() -> None:
    shown = redact_options(
        [{"address": f"redis://:{SECRET}@h/0", "password": SECRET, "db": 1}, ("h", 1)]
    )
    assert shown == [{"address": "redis://:***@h/0", "password": "***", "db": 1}, ("h", 1)]


async def test_a_redis_that_does_not_answer_is_named_without_its_password() -> None:
    url = f"redis://:{SECRET}@127.0.0.1:{free_port()}/0"
    layer = RedisChannelLayer(hosts=[url], socket_connect_timeout=0.5, socket_timeout=0.5)
    try:
        with pytest.raises(ChannelLayerConnectionError) as caught:
            await layer.send("c", msg())
    finally:
        await layer.close()
    assert "did not answer" in str(caught.value)
    assert SECRET not in str(caught.value)
    assert "redis://:***@127.0.0.1" in str(caught.value)
    assert SECRET not in str(layer.shard_names)


def test_the_cli_never_prints_a_password() -> None:
    url = f"redis://:{SECRET}@127.0.0.1:{free_port()}/0?socket_connect_timeout=0.5"
    done = subprocess.run(
        [sys.executable, "-m", "layers", "send", "--layer", url, "c", '{"type": "t"}'],
        capture_output=True,
        text=True,
        timeout=30,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode != 0
    assert "did not answer" in done.stderr
    assert SECRET not in done.stdout + done.stderr


@pytest.mark.parametrize(
    "make",
    [
        lambda: RedisChannelLayer(hosts=[f"redis+sentinel://:{SECRET}@h:1"]),
        lambda: RedisChannelLayer(hosts=[f"http://:{SECRET}@h:1"]),
        lambda: RedisChannelLayer(hosts=[{"password": SECRET, "nothing": "else"}]),
        lambda: RedisChannelLayer(hosts=[{"sentinels": [("h", 1)], "password": SECRET}]),
        lambda: RabbitMQChannelLayer(url=f"http://guest:{SECRET}@h/"),
        lambda: layer_from_url(f"nosuch://u:{SECRET}@h/"),
    ],
)
def test_configuration_errors_hide_passwords(make: Any) -> None:
    with pytest.raises(ConfigError) as caught:
        make()
    assert SECRET not in str(caught.value)


async def test_log_lines_name_shards_without_passwords(caplog: pytest.LogCaptureFixture) -> None:
    url = f"redis://:{SECRET}@127.0.0.1:{free_port()}/0"
    layer = RedisChannelLayer(hosts=[url], socket_connect_timeout=0.2, socket_timeout=0.2)
    with caplog.at_level(logging.DEBUG):
        channel = await layer.new_channel()
        with pytest.raises((TimeoutError, ChannelLayerConnectionError)):
            await asyncio.wait_for(layer.receive(channel), 1.0)
        await layer.close()
    assert "redis://:***@127.0.0.1" in caplog.text  # the shard is named, masked
    assert SECRET not in caplog.text


@pytest.mark.parametrize("name", LOGGERS)
def test_every_log_line_is_masked(name: str, caplog: pytest.LogCaptureFixture) -> None:
    log = logging.getLogger(name)
    with caplog.at_level(logging.INFO, logger=name):
        log.warning("reading from %s failed", f"redis://:{SECRET}@h:1/0")
        try:
            raise ConnectionError(f"cannot reach amqp://guest:{SECRET}@h/")
        except ConnectionError:
            log.exception("connection lost")
    assert "redis://:***@h:1/0" in caplog.text
    assert "amqp://guest:***@h/" in caplog.text  # the traceback's text too
    assert SECRET not in caplog.text


# -- accidental plaintext (issue 17.9) ---------------------------------------------------


def test_tls_settings_on_a_plaintext_amqp_url_are_refused() -> None:
    context = ssl.create_default_context()
    with pytest.raises(ConfigError, match=r"plaintext \(amqp://\).*ssl_context.*amqps://"):
        RabbitMQChannelLayer(url=f"amqp://guest:{SECRET}@127.0.0.1/", ssl_context=context)
    with pytest.raises(ConfigError, match="cafile"):
        RabbitMQChannelLayer.from_url("amqp://guest:guest@127.0.0.1/?cafile=/ca.pem")
    RabbitMQChannelLayer(url="amqps://guest:guest@127.0.0.1/", ssl_context=context)


def test_tls_settings_on_a_plaintext_redis_url_are_refused() -> None:
    with pytest.raises(ConfigError, match=r"plaintext but has TLS options \['ssl_ca_certs'\]"):
        RedisChannelLayer(hosts=[{"address": "redis://127.0.0.1:6379/0", "ssl_ca_certs": "/ca"}])
    with pytest.raises(ConfigError, match="TLS options without ssl=True"):
        RedisChannelLayer(
            hosts=[{"sentinels": [("h", 1)], "master_name": "m", "ssl_ca_certs": "/ca"}]
        )
    RedisChannelLayer(hosts=[{"address": "rediss://127.0.0.1:6379/0", "ssl_ca_certs": "/ca"}])


# -- shard placement (issue 17.4) ----------------------------------------------------------

CHANNELS = [f"chan{i}" for i in range(200)]


def placement(hosts: list[Any]) -> list[int]:
    layer = RedisChannelLayer(hosts=hosts)
    return [layer.ring.index(c) for c in CHANNELS]


def test_a_password_rotation_moves_no_channel() -> None:
    before = placement([f"redis://:old@10.0.0.{i}:6379/0" for i in range(4)])
    after = placement([f"redis://user:new@10.0.0.{i}:6379/0" for i in range(4)])
    bare = placement([(f"10.0.0.{i}", 6379) for i in range(4)])
    assert len(set(before)) == 4
    assert before == after == bare


def test_adding_a_sentinel_moves_no_channel() -> None:
    def hosts(sentinels: list[tuple[str, int]], password: str) -> list[Any]:
        return [
            {"sentinels": sentinels, "master_name": f"m{i}", "password": password} for i in range(3)
        ]

    assert placement(hosts([("s1", 26379)], "a")) == placement(
        hosts([("s1", 26379), ("s2", 26379)], "b")
    )


def test_an_explicit_name_keeps_a_moved_shard_in_place() -> None:
    old = placement([{"address": f"redis://old{i}:6379/0", "name": f"s{i}"} for i in range(3)])
    new = placement([{"address": f"redis://new{i}:7000/0", "name": f"s{i}"} for i in range(3)])
    assert old == new


def test_one_server_under_two_passwords_is_listed_twice() -> None:
    with pytest.raises(ConfigError, match=r"the same server twice: \['h:1/0', 'h:1/0'\]"):
        RedisChannelLayer(hosts=["redis://:a@h:1/0", "redis://:b@h:1"])

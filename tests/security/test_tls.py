"""TLS: Redis (rediss://) and RabbitMQ (amqps://) against owned servers with certificates made here.

The CA and the server certificates are generated with ``cryptography`` (tests/pki.py);
nothing is read from the machine's trust store. Redis gets an owned redis-server with a
TLS port; RabbitMQ uses the session's owned node (tests/rabbit_procs.py), which always
has an AMQPS listener next to its plain one (the shared broker on 5672 is not touched).
"""

from __future__ import annotations

import os
import secrets
import ssl
import time
from collections.abc import Iterator
from typing import Any

import pytest

from layers.exceptions import ChannelLayerConnectionError
from layers.rabbitmq import RabbitMQChannelLayer
from layers.redis import RedisChannelLayer
from tests.faults.proxy import TcpProxy
from tests.helpers import msg, recv
from tests.pki import Pki, make_pki
from tests.rabbit_procs import RabbitProcess
from tests.redis_procs import RedisProcess, RedisProcessError, free_port
from tests.security.plaintext import MESSAGE, plaintext_in

NO_TLS = (
    "redis-server was built without TLS support (BUILD_TLS=no: it refuses --tls-port); "
    "rediss:// is untested on this machine"
)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def tls_redis(pki: Pki) -> Iterator[int]:
    """An owned redis-server with a TLS port (the plain port stays for readiness checks)."""
    port = free_port()
    server = RedisProcess(
        [
            "--tls-port", str(port),
            "--tls-cert-file", str(pki.cert),
            "--tls-key-file", str(pki.key),
            "--tls-ca-cert-file", str(pki.ca),
            "--tls-auth-clients", "no",
        ],
        name="tls",
    )  # fmt: skip
    try:
        server.start()
    except RedisProcessError as exc:
        if "TLS" in str(exc) or "tls-port" in str(exc):
            reason = f"{NO_TLS}: {str(exc).splitlines()[0]}"
            # A user's redis-server may lack TLS; in CI (.ci/run) that is a failure.
            if os.environ.get("CHANLAYERS_CI"):
                pytest.fail(reason)
            pytest.skip(reason)
        raise
    with server:
        yield port


def tls_layer(url: str, **pool: object) -> RedisChannelLayer:
    return RedisChannelLayer(
        hosts=[{"address": url, **pool}],
        prefix=f"s{secrets.token_hex(4)}",
        socket_timeout=2,
        socket_connect_timeout=2,
        blocking_timeout=1,
    )


async def test_rediss_with_the_ca_works(tls_redis: int, pki: Pki) -> None:
    layer = tls_layer(f"rediss://127.0.0.1:{tls_redis}/0", ssl_ca_certs=str(pki.ca))
    local = await layer.new_channel()
    await layer.group_add("tls", local)
    await layer.send("tls.normal", msg(1))
    await layer.group_send("tls", msg(2))
    assert (await recv(layer, "tls.normal"))["seq"] == 1
    assert (await recv(layer, local))["seq"] == 2
    await layer.flush()
    await layer.close()


async def test_plaintext_to_the_tls_port_fails_clearly(tls_redis: int) -> None:
    layer = tls_layer(f"redis://127.0.0.1:{tls_redis}/0")
    with pytest.raises(ChannelLayerConnectionError, match=f"127.0.0.1:{tls_redis}"):
        await layer.send("tls.normal", msg(1))
    await layer.close()


async def test_rediss_without_trusting_the_ca_is_refused(tls_redis: int) -> None:
    layer = tls_layer(f"rediss://127.0.0.1:{tls_redis}/0")
    with pytest.raises(ChannelLayerConnectionError, match="(?i)certificate"):
        await layer.send("tls.normal", msg(1))
    await layer.close()


# -- RabbitMQ: amqps:// ----------------------------------------------------------------

CONNECT_TIMEOUT = 2.0


def amqps_layer(url: str, prefix: str | None = None, **options: Any) -> RabbitMQChannelLayer:
    return RabbitMQChannelLayer(
        url=url,
        prefix=prefix or f"s{secrets.token_hex(4)}",
        connect_timeout=CONNECT_TIMEOUT,
        **options,
    )


def trusting(node: RabbitProcess) -> ssl.SSLContext:
    """A client context that trusts the node's test CA (and checks the host name)."""
    return ssl.create_default_context(cafile=str(node.pki.ca))


async def test_amqps_with_the_ca_works_across_two_layers(own_rabbit: RabbitProcess) -> None:
    """One layer trusts the CA through ssl_context, the other through the URL's cafile."""
    prefix = f"s{secrets.token_hex(4)}"
    first = amqps_layer(own_rabbit.amqps_url, prefix, ssl_context=trusting(own_rabbit))
    second = amqps_layer(f"{own_rabbit.amqps_url}?cafile={own_rabbit.pki.ca}", prefix)
    local = await first.new_channel()
    await first.group_add("tls", local)
    await second.send("tls.normal", msg(1))
    await second.group_send("tls", msg(2))
    await second.send(local, msg(3))
    await first.send("tls.back", msg(4))
    assert (await recv(first, "tls.normal"))["seq"] == 1
    assert [(await recv(first, local))["seq"] for _ in range(2)] == [2, 3]
    assert (await recv(second, "tls.back"))["seq"] == 4
    for layer in (first, second):
        await layer.flush()
        await layer.close()


async def test_amqps_without_trusting_the_ca_is_refused_quickly(
    own_rabbit: RabbitProcess,
) -> None:
    layer = amqps_layer(own_rabbit.amqps_url)
    started = time.monotonic()
    with pytest.raises(ChannelLayerConnectionError, match="(?i)certificate"):
        await layer.send("tls.normal", msg(1))
    assert time.monotonic() - started < CONNECT_TIMEOUT + 1
    await layer.close()


async def test_plain_amqp_to_the_tls_port_fails_clearly(own_rabbit: RabbitProcess) -> None:
    layer = amqps_layer(f"amqp://guest:guest@127.0.0.1:{own_rabbit.tls_port}/")
    started = time.monotonic()
    with pytest.raises(ChannelLayerConnectionError, match=f"127.0.0.1:{own_rabbit.tls_port}"):
        await layer.send("tls.normal", msg(1))
    assert time.monotonic() - started < CONNECT_TIMEOUT + 1
    await layer.close()


@pytest.fixture
def sniffed_tls(own_rabbit: RabbitProcess) -> Iterator[TcpProxy]:
    """A recording proxy in front of the owned node's TLS port."""
    with TcpProxy(own_rabbit.host, own_rabbit.tls_port, record=True) as proxy:
        yield proxy


async def test_amqps_wire_shows_no_plaintext(
    own_rabbit: RabbitProcess, sniffed_tls: TcpProxy
) -> None:
    """Unencrypted messages over amqps://: the proxy sees only TLS records.

    The same message over amqp:// does show on the wire (test_encryption_at_rest.py,
    the "plain" case), so this check can fail.
    """
    host, port = sniffed_tls.address
    url = f"amqps://guest:guest@{host}:{port}/"
    layer = amqps_layer(url, ssl_context=trusting(own_rabbit))
    await layer.send("tls.secret", MESSAGE)
    assert await recv(layer, "tls.secret") == MESSAGE
    await layer.flush()
    await layer.close()
    wire = bytes(sniffed_tls.recorded)
    assert wire.startswith(b"\x16\x03"), "the first bytes are not a TLS handshake record"
    assert plaintext_in(wire) == []
    for visible_in_plain_amqp in (b"AMQP", b"guest", b"tls.secret"):
        assert visible_in_plain_amqp not in wire

"""TLS to Redis (rediss://) against an owned redis-server with a certificate made here.

The CA and the server certificate are generated with ``cryptography`` for each test
session; nothing is read from the machine's trust store. RabbitMQ over amqps:// is not
tested here: the shared broker would need a TLS listener in its config and a restart,
which tests never do (see the README's TLS section).
"""

from __future__ import annotations

import datetime
import ipaddress
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from layers.exceptions import ChannelLayerConnectionError
from layers.redis import RedisChannelLayer
from tests.helpers import msg, recv
from tests.redis_procs import RedisProcess, RedisProcessError, free_port

NO_TLS = (
    "redis-server was built without TLS support (BUILD_TLS=no: it refuses --tls-port); "
    "rediss:// is untested on this machine"
)


@dataclass(frozen=True)
class Pki:
    """PEM files: a CA, and a server certificate for 127.0.0.1/localhost signed by it."""

    ca: Path
    cert: Path
    key: Path


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def _write_key(key: ec.EllipticCurvePrivateKey, path: Path) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )


def make_pki(directory: Path) -> Pki:
    """A throwaway CA and a server certificate it signed, valid for a day."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(_name("chanlayers test CA"))
        .issuer_name(_name("chanlayers test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("127.0.0.1"))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .add_extension(x509.ExtendedKeyUsage([x509.OID_SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    pki = Pki(directory / "ca.pem", directory / "server.pem", directory / "server.key")
    pki.ca.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    pki.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    _write_key(key, pki.key)
    return pki


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
            pytest.skip(f"{NO_TLS}: {str(exc).splitlines()[0]}")
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

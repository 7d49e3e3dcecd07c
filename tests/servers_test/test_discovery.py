"""Server discovery (tests/servers.py) against the real servers, real sockets."""

from __future__ import annotations

import dataclasses
import socket
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests import servers
from tests.servers import RABBITMQ, REDIS, Server

SHORT = 0.5
"""Probe timeout for ports where nothing will answer."""


def host_port(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    assert parts.hostname is not None
    assert parts.port is not None
    return parts.hostname, parts.port


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A port bound by this test and not listening: connecting is refused."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts connections (kernel backlog) but never says a word."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        yield sock.getsockname()[1]


SERVERS = pytest.mark.parametrize("server", [REDIS, RABBITMQ], ids=["redis", "rabbitmq"])


# -- 1. the environment variable wins ----------------------------------------------


@SERVERS
def test_env_var_wins_over_a_local_server(server: Server) -> None:
    url = f"{server.scheme}://from-the-env.invalid:1/"
    # The default local server may well answer here; the variable still wins.
    assert servers.find_url(server, {server.env_var: url}) == url


@SERVERS
def test_env_var_is_not_probed(server: Server, closed_port: int) -> None:
    url = f"{server.scheme}://127.0.0.1:{closed_port}/"
    assert servers.find_url(server, {server.env_var: url}) == url
    with servers.provide(server, {server.env_var: url}, use_docker=False) as found:
        assert found == url


@SERVERS
def test_blank_env_var_counts_as_unset(server: Server, closed_port: int) -> None:
    nowhere = dataclasses.replace(server, port=closed_port)
    assert servers.find_url(nowhere, {server.env_var: "  "}, timeout=SHORT) is None


def test_named_finders_read_their_own_variable() -> None:
    env = {"REDIS_URL": "redis://r.invalid:1/0", "AMQP_URL": "amqp://a.invalid:1/"}
    assert servers.find_redis_url(env) == "redis://r.invalid:1/0"
    assert servers.find_amqp_url(env) == "amqp://a.invalid:1/"


def test_process_environment_is_read_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_URL", "redis://from-os-environ.invalid:1/0")
    assert servers.find_redis_url() == "redis://from-os-environ.invalid:1/0"


# -- 2. the local port is found for a real server --------------------------------------


def test_probes_recognise_the_real_redis(redis_url: str) -> None:
    host, port = host_port(redis_url)
    assert servers.redis_answers(host, port)
    # Found through its port, with no variable set.
    here = dataclasses.replace(REDIS, host=host, port=port)
    assert servers.find_url(here, {}) == f"redis://{host}:{port}/0"


def test_probes_recognise_the_real_rabbitmq(amqp_url: str) -> None:
    host, port = host_port(amqp_url)
    assert servers.amqp_answers(host, port)
    here = dataclasses.replace(RABBITMQ, host=host, port=port)
    assert servers.find_url(here, {}) == f"amqp://guest:guest@{host}:{port}/"


def test_session_fixtures_give_urls_of_their_scheme(redis_url: str, amqp_url: str) -> None:
    assert urlsplit(redis_url).scheme in {"redis", "rediss", "unix"}
    assert urlsplit(amqp_url).scheme in {"amqp", "amqps"}


def test_one_server_is_not_mistaken_for_the_other(redis_url: str, amqp_url: str) -> None:
    # RabbitMQ answers a RESP PING with its own protocol header, not +PONG; Redis
    # waits for a newline after "AMQP..." and so never sends Connection.Start.
    assert not servers.redis_answers(*host_port(amqp_url))
    assert not servers.amqp_answers(*host_port(redis_url), timeout=SHORT)


# -- a closed or silent port is not a server -----------------------------------------------


@SERVERS
def test_closed_port_is_not_a_server(server: Server, closed_port: int) -> None:
    assert not server.probe("127.0.0.1", closed_port, SHORT)
    nowhere = dataclasses.replace(server, port=closed_port)
    assert servers.find_url(nowhere, {}, timeout=SHORT) is None


@SERVERS
def test_silent_listener_is_not_a_server(server: Server, silent_port: int) -> None:
    assert not server.probe("127.0.0.1", silent_port, SHORT)


# -- 3. Docker, and 4. the failure -----------------------------------------------------------


def test_no_docker_engine_behind_a_missing_socket(tmp_path: Path) -> None:
    missing = f"unix://{tmp_path}/no-docker.sock"
    assert servers.docker_available({"DOCKER_HOST": missing}) is False


def test_not_found_message_says_how_to_start_one() -> None:
    message = servers.not_found_message(REDIS, "no engine answered")
    assert "REDIS_URL" in message
    assert "export REDIS_URL=redis://127.0.0.1:6379/0" in message
    assert "docker compose up -d redis rabbitmq" in message
    assert "redis-server --port 6379" in message
    assert "no engine answered" in message

    message = servers.not_found_message(RABBITMQ, "no engine answered")
    assert "AMQP_URL" in message
    assert "docker compose up -d redis rabbitmq" in message
    assert "rabbitmq-server -detached" in message


def test_require_passes_a_found_url_through() -> None:
    assert servers.require(REDIS, "redis://x.invalid:1/0") == "redis://x.invalid:1/0"


@SERVERS
def test_nothing_found_fails_and_does_not_skip(
    server: Server, closed_port: int, tmp_path: Path
) -> None:
    nowhere = dataclasses.replace(server, port=closed_port)
    no_docker = {"DOCKER_HOST": f"unix://{tmp_path}/no-docker.sock"}
    # pytest.fail raises Failed; a skip would raise pytest.skip.Exception instead.
    with (
        pytest.raises(pytest.fail.Exception) as failed,
        servers.provide(nowhere, no_docker, timeout=SHORT),
    ):
        pytest.fail("provide() should not have yielded a URL")  # pragma: no cover
    message = str(failed.value)
    assert "should not have yielded" not in message
    assert f"No {server.name} server for the tests" in message
    assert server.env_var in message
    assert "docker compose up -d redis rabbitmq" in message
    assert server.start_command in message
    assert "Docker (no engine answered)" in message
    assert not isinstance(failed.value, pytest.skip.Exception)


def test_require_fails_with_the_message() -> None:
    with pytest.raises(pytest.fail.Exception, match="REDIS_URL") as failed:
        servers.require(REDIS, None)
    assert "docker compose up -d redis rabbitmq" in str(failed.value)

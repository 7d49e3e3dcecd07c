"""The fault proxy itself: it forwards, and cuts, refuses, stalls and slows on demand."""

from __future__ import annotations

import gc
import socket
import time
from collections.abc import Iterator

import pytest

from tests.faults.proxy import TcpProxy
from tests.redis_procs import RedisProcess, command


@pytest.fixture
def proxy(own_redis: RedisProcess) -> Iterator[TcpProxy]:
    with TcpProxy("127.0.0.1", own_redis.port) as running:
        yield running


def _ping(sock: socket.socket) -> bytes:
    sock.sendall(b"PING\r\n")
    return sock.recv(64)


def test_forwards_commands(proxy: TcpProxy) -> None:
    assert command(*proxy.address, "SET", "k", "v") == "OK"
    assert command(*proxy.address, "GET", "k") == "v"
    assert proxy.stats.accepted == 2


def test_cut_drops_open_connections(proxy: TcpProxy) -> None:
    with socket.create_connection(proxy.address, timeout=2) as sock:
        assert _ping(sock) == b"+PONG\r\n"
        assert proxy.cut() == 1
        try:
            reply = _ping(sock)
        except OSError:
            reply = b""
        assert reply == b"", "a cut link must not answer"
    assert proxy.stats.cut == 1


def test_refuse_then_accept(proxy: TcpProxy) -> None:
    proxy.refuse()
    with pytest.raises((ConnectionError, EOFError, TimeoutError)):
        command(*proxy.address, "PING", timeout=1)
    assert proxy.stats.refused == 1
    proxy.accept()
    assert command(*proxy.address, "PING") == "PONG"


def test_pause_holds_bytes_until_resume(proxy: TcpProxy) -> None:
    with socket.create_connection(proxy.address, timeout=2) as sock:
        assert _ping(sock) == b"+PONG\r\n"
        proxy.pause()
        sock.settimeout(0.3)
        with pytest.raises(TimeoutError):
            _ping(sock)
        proxy.resume()
        sock.settimeout(2)
        assert sock.recv(64) == b"+PONG\r\n"
    assert proxy.stats.cut == 0


def test_pause_down_lets_requests_through(proxy: TcpProxy) -> None:
    with socket.create_connection(proxy.address, timeout=2) as sock:
        proxy.pause("down")
        sock.sendall(b"SET held 1\r\n")
        sock.settimeout(0.3)
        with pytest.raises(TimeoutError):
            sock.recv(64)
        # The server ran the command although its reply is held.
        assert command(*proxy.target, "GET", "held") == "1"
        proxy.resume()
        sock.settimeout(2)
        assert sock.recv(64) == b"+OK\r\n"


def test_delay_slows_every_chunk(proxy: TcpProxy) -> None:
    proxy.delay = 0.2
    with socket.create_connection(proxy.address, timeout=2) as sock:
        started = time.monotonic()
        assert _ping(sock) == b"+PONG\r\n"
        # one chunk each way: at least two delays
        assert time.monotonic() - started >= 0.4


def test_connections_arriving_as_it_stops_are_closed(own_redis: RedisProcess) -> None:
    # A client that gives up on its connect (a layer closing mid-reconnect) leaves a
    # connection in the listener's backlog: accepted in the turn where stop() begins,
    # it must be closed like any other (an unclosed socket fails the test, at gc).
    proxy = TcpProxy("127.0.0.1", own_redis.port).start()
    proxy.freeze(0.3)
    clients = [socket.create_connection(proxy.address, timeout=2) for _ in range(3)]
    for client in clients:
        client.close()
    proxy.stop()
    gc.collect()

"""The pipelined script connection (layers/redis/multiplex.py) against a real Redis."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from layers.redis.multiplex import Multiplexed, RespParser, pack, supported


@pytest.fixture
async def client(redis_url: str) -> AsyncIterator[Redis]:
    made = Redis.from_url(redis_url, socket_timeout=5)
    yield made
    await made.aclose()


@pytest.fixture
async def wire(client: Redis) -> AsyncIterator[Multiplexed]:
    made = Multiplexed(client)
    yield made
    await made.aclose()


@pytest.mark.parametrize(
    ("data", "replies"),
    [
        (b":42\r\n$3\r\nabc\r\n+OK\r\n", [42, b"abc", b"OK"]),
        (b"*3\r\n:1\r\n$-1\r\n*1\r\n$0\r\n\r\n", [[1, None, [b""]]]),
        (b"_\r\n#t\r\n#f\r\n,1.5\r\n", [None, 1, 0, 1.5]),
        (b"%1\r\n+k\r\n:2\r\n~2\r\n:1\r\n:2\r\n", [[b"k", 2], [1, 2]]),
        (b"*-1\r\n$5\r\na\r\nbc\r\n", [None, b"a\r\nbc"]),
    ],
)
def test_parser_takes_replies_split_at_any_byte(data: bytes, replies: list[object]) -> None:
    whole = RespParser()
    whole.feed(data)
    assert whole.replies() == replies
    split, got = RespParser(), []
    for i in range(len(data)):
        split.feed(data[i : i + 1])
        got += split.replies()
    assert got == replies


def test_parser_turns_errors_into_redis_py_exceptions() -> None:
    parser = RespParser()
    parser.feed(b"-NOSCRIPT No matching script\r\n-ERR wrong\r\n")
    noscript, other = parser.replies()
    assert isinstance(noscript, NoScriptError)
    assert isinstance(other, ResponseError)
    assert "wrong" in str(other)


async def test_concurrent_callers_each_get_their_own_reply(wire: Multiplexed) -> None:
    values = [secrets.token_hex(4) for _ in range(300)]
    got = await asyncio.gather(*(wire.execute("ECHO", v) for v in values))
    assert got == [v.encode() for v in values]


async def test_concurrent_calls_share_one_connection(wire: Multiplexed, client: Redis) -> None:
    name = f"mux-{secrets.token_hex(4)}"
    await asyncio.gather(*(wire.execute("CLIENT", "SETNAME", name) for _ in range(50)))
    listed = (await client.execute_command("CLIENT", "LIST")).decode()
    assert listed.count(f"name={name} ") == 1


async def test_a_cancelled_caller_does_not_shift_the_replies(wire: Multiplexed) -> None:
    await wire.execute("PING")  # connected
    first = asyncio.ensure_future(wire.execute("ECHO", "first"))
    await asyncio.sleep(0)  # its request is written
    first.cancel()
    assert await wire.execute("ECHO", "second") == b"second"
    assert first.cancelled()


async def test_errors_are_raised_and_the_connection_goes_on(wire: Multiplexed) -> None:
    with pytest.raises(NoScriptError):
        await wire.evalsha("0" * 40, 0)
    with pytest.raises(ResponseError, match="unknown command"):
        await wire.execute("NO-SUCH-COMMAND")
    sha = (await wire.script_load("return {1, false, 'x'}")).decode()
    assert await wire.evalsha(sha, 0) == [1, None, b"x"]


async def test_a_killed_connection_fails_waiters_then_reconnects(
    wire: Multiplexed, client: Redis
) -> None:
    key = f"mux:{secrets.token_hex(4)}"
    # Only this connection: the shared Redis serves other clients (other suites, helpers).
    connection_id = await wire.execute("CLIENT", "ID")
    waiting = asyncio.ensure_future(wire.execute("BLPOP", key, 10))
    await asyncio.sleep(0.1)
    assert await client.execute_command("CLIENT", "KILL", "ID", connection_id) == 1
    with pytest.raises(RedisConnectionError):
        await waiting
    assert await wire.execute("ECHO", "again") == b"again"


async def test_a_reply_later_than_the_socket_timeout_raises_and_closes(redis_url: str) -> None:
    client = Redis.from_url(redis_url, socket_timeout=0.2)
    wire = Multiplexed(client)
    try:
        with pytest.raises(RedisTimeoutError):
            await wire.execute("BLPOP", f"mux:{secrets.token_hex(4)}", 2)
        assert await wire.execute("ECHO", "fresh") == b"fresh"  # on a new connection
    finally:
        await wire.aclose()
        await client.aclose()


async def test_closing_ends_waiters_without_hanging(wire: Multiplexed) -> None:
    waiting = asyncio.ensure_future(wire.execute("BLPOP", f"mux:{secrets.token_hex(4)}", 10))
    await asyncio.sleep(0.1)
    async with asyncio.timeout(2):
        await wire.aclose()
        with pytest.raises(RedisConnectionError):
            await waiting


async def test_it_does_not_use_up_a_small_pool(redis_url: str) -> None:
    client = Redis.from_url(redis_url, max_connections=1)
    wire = Multiplexed(client)
    try:
        assert await wire.execute("ECHO", "x") == b"x"
        async with asyncio.timeout(2):
            assert await client.ping()  # the pool's one connection is still free
    finally:
        await wire.aclose()
        await client.aclose()


async def test_finish_hands_a_consuming_reply_to_a_cancelled_caller(wire: Multiplexed) -> None:
    # As a loop shutting down cancels a reader mid-pop: what the server popped is kept.
    key = f"mux:{secrets.token_hex(4)}"
    await wire.execute("RPUSH", key, "a", "b")
    kept = asyncio.ensure_future(wire.execute("LPOP", key, finish=True))
    lost = asyncio.ensure_future(wire.execute("LPOP", key))
    await asyncio.sleep(0)  # both requests are written
    kept.cancel()
    lost.cancel()
    assert await kept == b"a"
    with pytest.raises(asyncio.CancelledError):
        await lost
    assert await wire.execute("LLEN", key) == 0  # b was popped, its caller gone


def test_pack_refuses_what_redis_cannot_take() -> None:
    assert pack(("SET", b"k", 1, 2.5)) == b"*4\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\n1\r\n$3\r\n2.5\r\n"
    with pytest.raises(TypeError, match="must be bytes, str or a number"):
        pack(("SET", "k", True))


class _CountingWrites:
    """Wraps a transport's write to count the writes (the syscalls) it makes."""

    def __init__(self, wire: Multiplexed) -> None:
        assert wire._open is not None
        self.transport = wire._open[0].transport
        self.real = self.transport.write
        self.writes: list[bytes] = []
        self.transport.write = self.write  # type: ignore[method-assign]

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.writes.append(bytes(data))
        self.real(data)


async def test_requests_of_one_loop_pass_go_out_in_one_write(wire: Multiplexed) -> None:
    await wire.execute("PING")  # connected
    counted = _CountingWrites(wire)
    values = [str(i) for i in range(64)]
    assert await asyncio.gather(*(wire.execute("ECHO", v) for v in values)) == [
        v.encode() for v in values
    ]
    # The first request at once, the other 63 together at the end of the pass.
    assert len(counted.writes) == 2
    assert counted.writes[1].count(b"ECHO") == 63
    # A lone request still goes out at once, in its own write.
    assert await wire.execute("ECHO", "alone") == b"alone"
    assert len(counted.writes) == 3


async def test_execute_many_pipelines_and_reports_each_reply(wire: Multiplexed) -> None:
    await wire.execute("PING")
    counted = _CountingWrites(wire)
    replies = await wire.execute_many([("ECHO", "a"), ("NOSUCHCOMMAND",), ("ECHO", "b")])
    assert replies[0] == b"a"
    assert isinstance(replies[1], ResponseError)
    assert replies[2] == b"b"
    assert len(counted.writes) == 2


@pytest.mark.parametrize(
    ("version", "expected"),
    [("8.1.0", True), ("5.0.0", True), ("4.6.0", False), ("9.0.0", False), ("dev", False)],
)
def test_only_tested_redis_py_versions_are_multiplexed(version: str, expected: bool) -> None:
    assert supported(version) is expected

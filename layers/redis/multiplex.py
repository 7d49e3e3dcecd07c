"""One pipelined connection per shard for the layer's scripts.

redis-py checks a connection out of its pool for every command and reads the reply through
stream coroutines: that costs more than the round trip itself on loopback. A Multiplexed
has the client's pool make one connection (so redis-py still resolves Sentinel masters,
does TLS, AUTH and SELECT) and keeps it out of the pool. It takes over its transport with
a Protocol that writes each request at once and resolves replies in order. Concurrent
callers share the connection, and their requests travel pipelined.

The requests made in one pass of the event loop go out in one write: the first at
once (a lone sender waits for nothing), the rest gathered until the pass ends, so 64
concurrent senders cost two syscalls rather than 64.

A caller cancelled while waiting leaves its reply to be read and thrown away, so replies
never go to the wrong caller. A reply not back within socket_timeout closes the
connection and fails every waiter on it: that server is treated as gone.

This leans on redis-py's private parts (redis._parsers, a connection's _writer, its
transport's set_protocol). ``supported()`` says whether the installed redis-py is one
these were tested with; where not, the layer runs its scripts through redis-py's own
client instead, which is slower but cannot break on redis-py's internals.
"""

from __future__ import annotations

import asyncio
import collections
import math
from collections.abc import Sequence
from typing import Any

import redis
from redis.asyncio import Redis
from redis.asyncio.connection import Connection
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ReadOnlyError, RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

__all__ = ["Multiplexed", "RespParser", "pack", "supported"]

_Reply = int | bytes | list[Any] | RedisError | None
# The redis-py major versions whose private parts used here were tested (>= first, < last).
TESTED_VERSIONS = (5, 9)


def supported(version: str | None = None) -> bool:
    """True if redis-py (of version, default the installed one) is one Multiplexed was
    tested with and still has the private parts it uses."""
    version = redis.__version__ if version is None else version
    try:
        major = int(version.split(".")[0])
    except ValueError:
        return False
    if not TESTED_VERSIONS[0] <= major < TESTED_VERSIONS[1]:
        return False
    try:
        from redis._parsers.base import BaseParser
    except ImportError:
        return False
    return callable(getattr(BaseParser, "parse_error", None)) and hasattr(Connection, "connect")


class RespParser:
    """Incremental RESP parser (RESP2, and RESP3 as scripts reply): feed bytes, take replies."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self._pos = 0

    def feed(self, data: bytes) -> None:
        """Add bytes read from the socket."""
        if self._pos:
            del self._buf[: self._pos]
            self._pos = 0
        self._buf += data

    def replies(self) -> list[_Reply]:
        """Every whole reply buffered so far, in order."""
        out: list[_Reply] = []
        while True:
            parsed = self._parse(self._pos)
            if parsed is None:
                return out
            reply, self._pos = parsed
            out.append(reply)

    def _parse(self, pos: int) -> tuple[_Reply, int] | None:
        buf = self._buf
        end = buf.find(b"\r\n", pos)
        if end < 0:
            return None
        kind, line = buf[pos], bytes(buf[pos + 1 : end])
        pos = end + 2
        if kind == 0x3A:  # ':' integer
            return int(line), pos
        if kind == 0x24:  # '$' bulk string
            size = int(line)
            if size < 0:
                return None, pos
            if len(buf) < pos + size + 2:
                return None
            return bytes(buf[pos : pos + size]), pos + size + 2
        if kind == 0x2A:  # '*' array
            count = int(line)
            if count < 0:
                return None, pos
            return self._parse_items(pos, count)
        if kind == 0x2B:  # '+' simple string
            return line, pos
        if kind == 0x2D:  # '-' error
            return _error(line.decode("utf-8", "replace")), pos
        # RESP3, which redis-py 8 speaks by default: the types a script's reply can take.
        if kind == 0x5F:  # '_' null
            return None, pos
        if kind == 0x23:  # '#' boolean
            return int(line == b"t"), pos
        if kind == 0x2C:  # ',' double
            return float(line), pos  # type: ignore[return-value]
        if kind in (0x25, 0x7E):  # '%' map, '~' set: as an array of their items
            count = int(line) * (2 if kind == 0x25 else 1)
            return self._parse_items(pos, count)
        raise RedisConnectionError(f"unexpected RESP reply type {chr(kind)!r}")

    def _parse_items(self, pos: int, count: int) -> tuple[_Reply, int] | None:
        items: list[Any] = []
        for _ in range(count):
            parsed = self._parse(pos)
            if parsed is None:
                return None
            item, pos = parsed
            items.append(item)
        return items, pos


def _error(message: str) -> RedisError:
    # redis-py's own mapping, so NOSCRIPT is a NoScriptError and so on.
    from redis._parsers.base import BaseParser

    return BaseParser.parse_error(message)  # type: ignore[no-untyped-call,no-any-return]


def pack(args: tuple[Any, ...]) -> bytes:
    """A command in RESP: redis-py's packer costs more than the round trip on loopback."""
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        if isinstance(arg, bytes):
            data = arg
        elif isinstance(arg, str):
            data = arg.encode()
        elif isinstance(arg, int | float) and not isinstance(arg, bool):
            data = repr(arg).encode()
        else:
            raise TypeError(f"a Redis command argument must be bytes, str or a number: {arg!r}")
        parts.append(b"$%d\r\n%b\r\n" % (len(data), data))
    return b"".join(parts)


class _Protocol(asyncio.Protocol):
    def __init__(self, transport: asyncio.Transport, timeout: float | None) -> None:
        self.transport = transport
        # redis-py's stream protocol still hears of the close, so its disconnect()
        # (from a pool disconnect, say) does not wait for a close it never sees.
        self._streams = transport.get_protocol()
        # Each request's future and the time its reply is due by.
        self.waiting: collections.deque[tuple[asyncio.Future[_Reply], float]] = collections.deque()
        self.parser = RespParser()
        self.lost: Exception | None = None
        self._loop = asyncio.get_running_loop()
        self._timeout = timeout
        # One timer for the oldest request, not one per request: it is re-armed for
        # the next oldest when it fires early.
        self._watchdog: asyncio.TimerHandle | None = None
        # Requests made since this loop pass's first write, or None if none was made.
        self._unwritten: list[bytes] | None = None

    def request(self, command: bytes) -> asyncio.Future[_Reply]:
        """Write one packed command (or queue it for the end of this loop pass); the
        future of its reply."""
        future: asyncio.Future[_Reply] = self._loop.create_future()
        due = self._loop.time() + self._timeout if self._timeout is not None else math.inf
        self.waiting.append((future, due))
        if self._unwritten is None:
            self.transport.write(command)
            self._unwritten = []
            self._loop.call_soon(self._write_rest)
        else:
            self._unwritten.append(command)
        if self._watchdog is None and due < math.inf:
            self._watchdog = self._loop.call_at(due, self._check)
        return future

    def _write_rest(self) -> None:
        unwritten, self._unwritten = self._unwritten, None
        if unwritten and self.lost is None:
            self.transport.write(b"".join(unwritten))

    def _check(self) -> None:
        self._watchdog = None
        if not self.waiting or self.lost is not None:
            return
        due = self.waiting[0][1]
        if self._loop.time() >= due:
            self.fail(RedisTimeoutError(f"no reply within socket_timeout ({self._timeout}s)"))
        else:
            self._watchdog = self._loop.call_at(due, self._check)

    def data_received(self, data: bytes) -> None:
        self.parser.feed(data)
        try:
            replies = self.parser.replies()
        except (ValueError, RedisError) as exc:
            self.fail(RedisConnectionError(f"bad reply from Redis: {exc}"))
            return
        for reply in replies:
            if not self.waiting:
                self.fail(RedisConnectionError("Redis sent a reply nobody asked for"))
                return
            future = self.waiting.popleft()[0]
            if not future.done():
                future.set_result(reply)

    def fail(self, exc: Exception) -> None:
        """Fail every waiter and close: the connection is not to be used again."""
        if self.lost is None:
            self.lost = exc
            self.transport.abort()
            if self._watchdog is not None:
                self._watchdog.cancel()
        kind = type(self.lost) if isinstance(self.lost, RedisError) else RedisConnectionError
        while self.waiting:
            future = self.waiting.popleft()[0]
            if not future.done():
                future.set_exception(kind(str(self.lost)))

    def connection_lost(self, exc: Exception | None) -> None:
        self.fail(exc or RedisConnectionError("connection closed by Redis"))
        self._streams.connection_lost(exc)


def _replica(protocol: _Protocol, reply: ReadOnlyError) -> RedisConnectionError:
    """A failover made this server a replica: as redis-py's Sentinel connections do,
    drop the connection so that the next one asks for the new master."""
    gone = RedisConnectionError(f"the server is now a read-only replica ({reply})")
    protocol.fail(gone)
    return gone


class Multiplexed:
    """A client's scripts over one pipelined connection; the client still does the rest."""

    def __init__(self, client: Redis, preload: Sequence[str] = ()) -> None:
        self.client = client
        # Scripts loaded on each new connection (one pipelined round trip), so that a
        # NOSCRIPT retry, two more round trips, is not paid in the middle of a send.
        self._preload = preload
        self._lock = asyncio.Lock()
        self._open: tuple[_Protocol, Connection] | None = None

    async def _connect(self) -> tuple[_Protocol, Connection]:
        async with self._lock:
            if self._open is not None and self._open[0].lost is None:
                return self._open
            await self._drop()
            # Made by the pool but not taken from it: it does not count against the
            # pool's max_connections, which the client's other commands still need.
            conn = self.client.connection_pool.make_connection()  # type: ignore[no-untyped-call]
            assert isinstance(conn, Connection)
            await conn.connect()  # type: ignore[no-untyped-call]
            writer = conn._writer  # redis-py's connected stream
            if writer is None:
                raise RedisConnectionError("redis-py connected without a stream")
            transport = writer.transport
            assert isinstance(transport, asyncio.Transport)
            protocol = _Protocol(transport, conn.socket_timeout)
            transport.set_protocol(protocol)
            self._open = (protocol, conn)
            loads = [protocol.request(pack(("SCRIPT", "LOAD", s))) for s in self._preload]
            try:
                for reply in await asyncio.gather(*loads):
                    if isinstance(reply, RedisError):
                        raise reply
            except BaseException:
                await self._drop()
                raise
            return protocol, conn

    async def _drop(self) -> None:
        opened, self._open = self._open, None
        if opened is not None:
            await opened[1].disconnect()

    async def execute(self, *args: Any, finish: bool = False) -> Any:
        """Run one command; its reply, or its error raised.

        With finish, a caller cancelled while the reply is on its way still waits for it
        and returns it (the cancel is dropped): for commands that consume, whose reply
        must not be lost even when the loop shuts down and cancels every task.
        """
        opened = self._open
        if opened is None or opened[0].lost is not None:
            opened = await self._connect()
        protocol = opened[0]
        # The protocol's watchdog fails the future if no reply comes within socket_timeout.
        future = protocol.request(pack(args))
        try:
            reply = await (asyncio.shield(future) if finish else future)
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if not finish or task is None or future.cancelled():
                raise
            task.uncancel()
            reply = await future
        if isinstance(reply, ReadOnlyError):
            raise _replica(protocol, reply)
        if isinstance(reply, RedisError):
            raise reply
        return reply

    async def execute_many(self, commands: list[tuple[Any, ...]]) -> list[Any]:
        """Run commands pipelined, in order; per command its reply or its RedisError
        (a connection error fails the commands not answered yet)."""
        opened = self._open
        if opened is None or opened[0].lost is not None:
            opened = await self._connect()
        protocol = opened[0]
        futures = [protocol.request(pack(args)) for args in commands]
        # Cancelling gather cancels the futures, so their replies are read and dropped.
        replies: list[Any] = await asyncio.gather(*futures, return_exceptions=True)
        for i, reply in enumerate(replies):
            if isinstance(reply, ReadOnlyError):
                replies[i] = _replica(protocol, reply)
        return replies

    async def evalsha(self, sha: str, numkeys: int, *args: Any, finish: bool = False) -> Any:
        """EVALSHA, as redis-py's method of that name (finish: see execute)."""
        return await self.execute("EVALSHA", sha, numkeys, *args, finish=finish)

    async def script_load(self, source: str) -> Any:
        """SCRIPT LOAD, as redis-py's method of that name."""
        return await self.execute("SCRIPT", "LOAD", source)

    async def aclose(self) -> None:
        """Close the connection (pending callers get a connection error)."""
        async with self._lock:
            await self._drop()

"""A TCP proxy the fault tests put between a layer and its server.

It runs in its own thread and event loop, so it keeps forwarding (or stalling) whatever
the test's own loop is doing, and a test can drive it from sync or async code alike:

* ``cut()`` closes every open connection at once (both directions), as a dropped link;
* ``refuse()`` / ``accept()`` make new connections fail or succeed (a server that is down);
* ``pause()`` / ``resume()`` stop and restart forwarding without closing anything (a stall);
  ``pause("down")`` holds only the server's replies, so requests still reach the server;
* ``delay`` adds latency to every chunk forwarded (a slow link);
* ``freeze()`` blocks the proxy itself for a while (for races at its own edges).

``stats`` counts connections accepted and cut, so a test can tell that the layer really
reconnected through the proxy. ``record=True`` keeps every byte forwarded (both ways) in
``recorded``, for tests that check what travels on the wire.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import Coroutine
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Literal, Self, TypeVar

__all__ = ["ProxyStats", "TcpProxy"]

T = TypeVar("T")
CHUNK = 65536
CALL_TIMEOUT = 10.0
Direction = Literal["both", "up", "down"]
"""up: client to server; down: server to client."""


@dataclass
class ProxyStats:
    """What the proxy has seen."""

    accepted: int = 0
    refused: int = 0
    cut: int = 0


class TcpProxy:
    """Forwards 127.0.0.1:<port> to (host, port) and can cut, refuse, stall or slow the link."""

    def __init__(
        self,
        target_host: str,
        target_port: int,
        listen_host: str = "127.0.0.1",
        *,
        record: bool = False,
    ) -> None:
        self.target = (target_host, target_port)
        self.record = record
        self.recorded = bytearray()
        self.listen_host = listen_host
        self.port = 0
        self.delay = 0.0
        self.stats = ProxyStats()
        self._refusing = False
        self._stopping = False
        self._flowing: dict[str, asyncio.Event] = {}
        self._links: set[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        # Connection handlers too: stop() must end them before the loop closes, or
        # they are collected mid-await (unclosed sockets, "coroutine ignored GeneratorExit").
        self._handlers: set[asyncio.Task[Any]] = set()
        self._listener: socket.socket | None = None
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="tcp-proxy", daemon=True
        )

    @property
    def address(self) -> tuple[str, int]:
        """Where clients connect."""
        return (self.listen_host, self.port)

    # -- lifecycle ----------------------------------------------------------------

    def start(self) -> Self:
        """Start listening on a free port."""
        self._thread.start()
        self._call(self._start())
        return self

    def stop(self) -> None:
        """Close every link and the listener, then end the proxy's thread."""
        if not self._thread.is_alive():
            return
        self._call(self._stop())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(CALL_TIMEOUT)
        self._loop.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- faults ---------------------------------------------------------------------

    def cut(self) -> int:
        """Drop every open connection now; returns how many were cut."""
        return self._call(self._cut())

    def refuse(self) -> None:
        """Refuse new connections (they are accepted and closed at once) until accept()."""
        self._refusing = True

    def accept(self) -> None:
        """Accept and forward new connections again."""
        self._refusing = False
        self._stopping = False

    def pause(self, direction: Direction = "both") -> None:
        """Stop forwarding bytes on every link (one way or both), without closing them."""
        self._call(self._set_flowing(False, direction))

    def resume(self) -> None:
        """Forward bytes both ways again after pause()."""
        self._call(self._set_flowing(True, "both"))

    def freeze(self, seconds: float) -> None:
        """Block the proxy's loop for seconds (nothing is accepted or forwarded), from
        when this returns: whatever reaches the proxy meanwhile is handled in one turn."""
        frozen = threading.Event()

        def block() -> None:
            frozen.set()
            time.sleep(seconds)

        self._loop.call_soon_threadsafe(block)
        frozen.wait(CALL_TIMEOUT)

    @property
    def open_links(self) -> int:
        """Connections currently forwarded."""
        return len(self._links)

    # -- inside the proxy's loop ---------------------------------------------------

    def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(CALL_TIMEOUT)

    async def _start(self) -> None:
        self._flowing = {"up": asyncio.Event(), "down": asyncio.Event()}
        for event in self._flowing.values():
            event.set()
        # Not asyncio.start_server: its Server makes an accepted connection's transport in
        # a later task, and once close() ran that task fails (Server._attach asserts) and
        # drops the socket unclosed. A client that gave up on its connect leaves exactly
        # such a connection for stop() to meet. Here a connection is accepted and handed to
        # its handler in one callback, and stop() just stops calling it.
        self._listener = socket.create_server((self.listen_host, 0))
        self._listener.setblocking(False)
        self.port = self._listener.getsockname()[1]
        asyncio.get_running_loop().add_reader(self._listener, self._accept_one)

    def _accept_one(self) -> None:
        assert self._listener is not None
        try:
            conn, _ = self._listener.accept()
        except (BlockingIOError, InterruptedError, ConnectionAbortedError):
            return
        asyncio.get_running_loop().create_task(self._handle(conn))

    async def _stop(self) -> None:
        self._stopping = True
        if self._listener is not None:
            asyncio.get_running_loop().remove_reader(self._listener)
            self._listener.close()
        await self._set_flowing(True, "both")
        me = asyncio.current_task()
        # Tasks are left to end by themselves, not cancelled: a task cancelled before it
        # starts (a connection accepted just now) never closes its socket. Cut links end
        # their pumps, and a handler that starts now closes its client and returns.
        deadline = time.monotonic() + CALL_TIMEOUT / 2
        while tasks := [t for t in asyncio.all_tasks() if t is not me]:
            await self._cut()
            if time.monotonic() > deadline:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                break
            await asyncio.wait(tasks, timeout=0.05)
        # The aborts close their sockets in callbacks of the next loop turn.
        await asyncio.sleep(0)

    async def _set_flowing(self, flowing: bool, direction: Direction) -> None:
        for name, event in self._flowing.items():
            if direction in ("both", name):
                if flowing:
                    event.set()
                else:
                    event.clear()

    async def _cut(self) -> int:
        links = list(self._links)
        self._links.clear()
        for client, upstream in links:
            for writer in (client, upstream):
                # abort(), not close(): a cut link sends RST and drops buffered bytes.
                writer.transport.abort()
        self.stats.cut += len(links)
        return len(links)

    async def _handle(self, conn: socket.socket) -> None:
        handler = asyncio.current_task()
        assert handler is not None
        self._handlers.add(handler)
        try:
            # The socket is a transport's once this returns; until then it is ours to close.
            try:
                client_r, client_w = await asyncio.open_connection(sock=conn)
            except BaseException as exc:
                conn.close()
                if isinstance(exc, OSError):
                    return  # the client is gone already
                raise
            try:
                await self._forward(client_r, client_w)
            finally:
                client_w.transport.abort()
        finally:
            self._handlers.discard(handler)

    async def _forward(
        self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter
    ) -> None:
        if self._refusing or self._stopping:
            self.stats.refused += 1
            client_w.transport.abort()
            return
        try:
            up_r, up_w = await asyncio.open_connection(*self.target)
        except OSError:
            self.stats.refused += 1
            client_w.transport.abort()
            return
        if self._stopping:  # stop() began while this link was being opened
            client_w.transport.abort()
            up_w.transport.abort()
            return
        self.stats.accepted += 1
        link = (client_w, up_w)
        self._links.add(link)
        pumps = [
            asyncio.create_task(self._pump(client_r, up_w, self._flowing["up"])),
            asyncio.create_task(self._pump(up_r, client_w, self._flowing["down"])),
        ]
        self._tasks.update(pumps)
        try:
            await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in pumps:
                task.cancel()
            await asyncio.gather(*pumps, return_exceptions=True)
            self._tasks.difference_update(pumps)
            self._links.discard(link)
            for writer in link:
                writer.transport.abort()

    async def _pump(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, flowing: asyncio.Event
    ) -> None:
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            while data := await reader.read(CHUNK):
                await flowing.wait()
                if self.delay:
                    await asyncio.sleep(self.delay)
                if self.record:
                    self.recorded += data
                writer.write(data)
                await writer.drain()

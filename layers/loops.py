"""One resource per event loop, closed when that loop shuts down.

Connections and sockets belong to the loop that opened them. A layer used from several
loops (async_to_sync in threads, asyncio.run per call) keeps one per loop, and an async
generator registered with each loop closes that loop's one during its
shutdown_asyncgens(), which asyncio.run, asyncio.Runner and asgiref all call.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import weakref
from collections.abc import AsyncGenerator, Awaitable, Callable, Coroutine
from typing import Generic, TypeVar

__all__ = ["PerLoop"]

T = TypeVar("T")
Loop = asyncio.AbstractEventLoop


class PerLoop(Generic[T]):
    """One T per event loop: made on first use in it, closed at its shutdown or by aclose()."""

    def __init__(
        self,
        make: Callable[[], Awaitable[T]],
        close: Callable[[T], Coroutine[object, object, None]],
        at_loop_shutdown: Callable[[T], Awaitable[None]] | None = None,
    ) -> None:
        self._make = make
        self._close = close
        self._at_loop_shutdown = at_loop_shutdown or close
        self._made: weakref.WeakKeyDictionary[Loop, T] = weakref.WeakKeyDictionary()
        self._making: weakref.WeakKeyDictionary[Loop, asyncio.Future[T]] = (
            weakref.WeakKeyDictionary()
        )
        # By id of their resource, until they have run. They outlive aclose() and
        # take_all(): dropped, one would be finalized (closing again) at an arbitrary
        # moment; kept, it runs at its loop's shutdown, where closing again does nothing.
        # Once run they must go: a generator holds its loop even when finished.
        self._finalizers: dict[int, AsyncGenerator[None, None]] = {}
        self._lock = threading.Lock()

    async def here(self) -> T:
        """The running loop's resource, made on first use (once, however many ask)."""
        loop = asyncio.get_running_loop()
        resource = self._made.get(loop)
        if resource is not None:
            return resource
        pending = self._making.get(loop)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[T] = loop.create_future()
        with self._lock:
            self._making[loop] = future
        try:
            resource = await self._make()
            finalizer = self._close_at_loop_shutdown(loop, resource)
            await finalizer.__anext__()  # registers it with this loop's shutdown_asyncgens
        except BaseException as exc:
            with self._lock:
                self._making.pop(loop, None)
            future.set_exception(exc)
            future.exception()  # retrieved: only concurrent callers care
            raise
        with self._lock:
            self._made[loop] = resource
            self._finalizers[id(resource)] = finalizer
            self._making.pop(loop, None)
        future.set_result(resource)
        return resource

    async def _close_at_loop_shutdown(self, loop: Loop, resource: T) -> AsyncGenerator[None, None]:
        try:
            yield
        finally:
            try:
                await self._at_loop_shutdown(resource)
            finally:
                with self._lock:
                    if self._made.get(loop) is resource:
                        del self._made[loop]
                    self._finalizers.pop(id(resource), None)

    def current(self) -> T | None:
        """The running loop's resource, if it has made one."""
        return self._made.get(asyncio.get_running_loop())

    def all(self) -> list[T]:
        """Every live loop's resource."""
        with self._lock:
            return list(self._made.values())

    def take_all(self) -> list[tuple[Loop, T]]:
        """Every loop's resource with its loop, forgotten here (for the caller to close)."""
        with self._lock:
            taken = list(self._made.items())
            self._made.clear()
        return taken

    async def aclose(self) -> None:
        """Close this loop's resource now, and other running loops' in their loop."""
        here = asyncio.get_running_loop()
        for loop, resource in self.take_all():
            if loop is here:
                await self._close(resource)
            elif loop.is_running() and not loop.is_closed():
                # Wait for it: a close cut short when that loop stops could leave the
                # resource open (a RedisCluster marks itself closed before it is).
                # Bounded, in case that loop is itself waiting on this one.
                done = asyncio.run_coroutine_threadsafe(self._close(resource), loop)
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(asyncio.wrap_future(done), 5)

"""One resource per event loop, closed when that loop shuts down.

Connections and sockets belong to the loop that opened them. A layer used from several
loops (async_to_sync in threads, asyncio.run per call) keeps one per loop, and an async
generator registered with each loop closes that loop's one during its
shutdown_asyncgens(), which asyncio.run, asyncio.Runner and asgiref all call.

By then asyncio.run has cancelled every other task of that loop (its _cancel_all_tasks
comes first): a resource whose I/O depends on background tasks (an AMQP connection's
reader and writer, a reconnect task) no longer works there. The loop-shutdown closer
must not wait on such I/O; it is bounded all the same, so no resource can hang a loop's
shutdown (and with it the thread, or the process's exit, that runs the loop).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import weakref
from collections.abc import AsyncGenerator, Awaitable, Callable, Coroutine, Hashable, Iterable
from functools import partial
from typing import Any, Generic, TypeVar

__all__ = ["LoopTasks", "PerLoop", "cancel_everywhere", "run_in_loop"]

T = TypeVar("T")
Loop = asyncio.AbstractEventLoop
log = logging.getLogger("layers")
# The longest a loop's shutdown waits for one resource's closer.
SHUTDOWN_LIMIT = 5.0


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
                async with asyncio.timeout(SHUTDOWN_LIMIT):
                    await self._at_loop_shutdown(resource)
            except TimeoutError:
                log.warning("closing %r at its loop's end took over %gs", resource, SHUTDOWN_LIMIT)
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
        for loop, resource in self.take_all():
            # Waited for in another loop too: a close cut short when that loop stops
            # could leave the resource open (a RedisCluster marks itself closed before
            # it is). A stopped loop's resource is left to its finalizer.
            await run_in_loop(loop, partial(self._close, resource))


async def run_in_loop(
    loop: Loop, run: Callable[[], Coroutine[Any, Any, None]], patience: float = 5
) -> bool:
    """Run run() in loop and wait for it; False (not called) if loop is not running.

    Here, it is awaited. In another loop, it is waited for at most patience seconds and
    its failure ignored: that loop may itself be waiting on this one, or stop meanwhile.
    """
    if loop is asyncio.get_running_loop():
        await run()
    elif loop.is_running() and not loop.is_closed():
        done = asyncio.run_coroutine_threadsafe(run(), loop)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(asyncio.wrap_future(done), patience)
    else:
        return False
    return True


def cancel_everywhere(tasks: Iterable[asyncio.Task[Any]]) -> list[asyncio.Task[Any]]:
    """Cancel tasks, each in its own loop (if still open: Task.cancel is not thread-safe);
    return the running loop's unfinished ones, for the caller to await."""
    here = asyncio.get_running_loop()
    mine = []
    for task in tasks:
        loop = task.get_loop()
        if loop is here:
            task.cancel()
            if not task.done():
                mine.append(task)
        elif not loop.is_closed():
            loop.call_soon_threadsafe(task.cancel)
    return mine


class LoopTasks:
    """An owner's background tasks, each in the loop that started it.

    A layer used from several loops starts its readers in whichever loop needs one;
    its close() runs in one loop and must stop them all: that loop's are cancelled and
    awaited, the others' are cancelled in their own loop (Task.cancel is not
    thread-safe). Readers are kept by key, one per key; spawned tasks until done.
    """

    def __init__(self, on_failure: Callable[[BaseException], None] | None = None) -> None:
        self._tasks: dict[Hashable, asyncio.Task[Any]] = {}
        self._on_failure = on_failure

    def alive(self, key: Hashable) -> bool:
        """True if key's task is running, in a loop that is not closed."""
        task = self._tasks.get(key)
        return task is not None and not task.done() and not task.get_loop().is_closed()

    def start(self, key: Hashable, coro: Coroutine[Any, Any, None], name: str) -> None:
        """Run coro as key's task in the running loop (in place of a finished one)."""
        self.adopt(key, asyncio.get_running_loop().create_task(coro, name=name))

    def adopt(self, key: Hashable, task: asyncio.Task[Any]) -> None:
        """Keep task, started by the caller in its loop, as key's task."""
        self._tasks[key] = task

    def forget(self, key: Hashable) -> None:
        """Drop key's task from the set (it is finishing by itself)."""
        self._tasks.pop(key, None)

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        """Run coro as a task of the running loop, kept until it is done; on_failure
        hears why it failed, if it does."""
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks[task] = task
        task.add_done_callback(self._spawned_done)
        return task

    def running_here(self) -> list[asyncio.Task[Any]]:
        """The running loop's unfinished tasks."""
        here = asyncio.get_running_loop()
        return [t for t in list(self._tasks.values()) if t.get_loop() is here and not t.done()]

    def _spawned_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.pop(task, None)
        error = None if task.cancelled() else task.exception()
        if error is not None and self._on_failure is not None:
            self._on_failure(error)

    def cancel_all(self) -> list[asyncio.Task[Any]]:
        """Cancel every task, each in its own loop; return the running loop's unfinished ones."""
        return self._cancel(lambda task: True)

    def cancel_here(self) -> list[asyncio.Task[Any]]:
        """Cancel the running loop's tasks only; return those unfinished."""
        here = asyncio.get_running_loop()
        return self._cancel(lambda task: task.get_loop() is here)

    def _cancel(self, which: Callable[[asyncio.Task[Any]], bool]) -> list[asyncio.Task[Any]]:
        chosen = [(key, task) for key, task in list(self._tasks.items()) if which(task)]
        for key, _ in chosen:
            self._tasks.pop(key, None)
        return cancel_everywhere(task for _, task in chosen)

    async def aclose(self) -> None:
        """Cancel every task; wait for the running loop's to finish."""
        await asyncio.gather(*self.cancel_all(), return_exceptions=True)

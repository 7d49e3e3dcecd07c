"""A second event loop in a thread, held still or ended at a moment the test chooses.

Cross-loop races (a wake-up sent to a loop that ends before it runs it, a cancel right
after a wake) only happen by chance in the two-loops contract test; this harness makes
them happen on purpose: start coroutines in the other loop, hold() it so that what other
threads send it queues up, then let it go on, end it as asyncio.run would (its tasks
cancelled first), or abandon it (closed with its callbacks never run, as a dead thread's).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import threading
from collections.abc import Callable, Coroutine, Iterator
from typing import Any, Literal, TypeVar

T = TypeVar("T")
WAIT = 5.0


class LoopThread:
    """An event loop running in its own thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name="second loop", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def start(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        """Run coro as a task of this loop; its result arrives in the returned future."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def call(self, fn: Callable[[], T]) -> T:
        """Run fn in this loop's thread and return what it returned."""

        async def run() -> T:
            return fn()

        return self.start(run()).result(WAIT)

    def settle(self) -> None:
        """Return once this loop has run everything that was ready."""

        async def turns() -> None:
            for _ in range(5):
                await asyncio.sleep(0)

        self.start(turns()).result(WAIT)

    @contextlib.contextmanager
    def hold(self, then: Literal["run", "end", "abandon"] = "run") -> Iterator[None]:
        """Keep this loop busy while the block runs, so what other threads send it queues
        up; then, before any of that runs, go on ("run"), cancel every task and close
        once they are done, as asyncio.run ends ("end"), or stop and close ("abandon")."""
        entered, release = threading.Event(), threading.Event()

        def block() -> None:
            entered.set()
            release.wait(WAIT)
            if then == "end":
                tasks = asyncio.all_tasks(self.loop)
                for task in tasks:
                    task.cancel()
                self.loop.create_task(self._stop_when_done(tasks))
            elif then == "abandon":
                self.loop.stop()

        self.loop.call_soon_threadsafe(block)
        assert entered.wait(WAIT), "the second loop did not take the hold"
        try:
            yield
        finally:
            release.set()
            if then != "run":
                self._thread.join(WAIT)
                assert not self._thread.is_alive(), "the second loop did not stop"
                self.abandon()

    async def _stop_when_done(self, tasks: set[asyncio.Task[Any]]) -> None:
        await asyncio.gather(*tasks, return_exceptions=True)
        self.loop.stop()

    def end(self) -> None:
        """End the loop as asyncio.run does: cancel its tasks, let them finish, close it."""
        with self.hold("end"):
            pass

    def abandon(self) -> None:
        """Stop the loop (once what is queued has run) and close it, dropping its tasks."""
        if self.loop.is_running():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(WAIT)
            assert not self._thread.is_alive(), "the second loop did not stop"
        if not self.loop.is_closed():
            # Tasks still pending are dropped with the loop, as with a dead thread's loop.
            self.loop.set_exception_handler(lambda loop, context: None)
            self.loop.close()


@contextlib.contextmanager
def loop_thread() -> Iterator[LoopThread]:
    """A LoopThread that is abandoned when the block ends, whatever the test did."""
    other = LoopThread()
    try:
        yield other
    finally:
        other.abandon()

"""The layer's background tasks, and how flush() and close() let them end."""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable, Coroutine
from typing import Any

from ..loops import LoopTasks

__all__ = ["Background"]


class Background(LoopTasks):
    """LoopTasks that know which of them only wait (and so may be cancelled at once)."""

    def __init__(self, on_failure: Callable[[BaseException], None] | None = None) -> None:
        super().__init__(on_failure)
        # Spawned tasks that never talk to the broker: flush() and close() cancel them
        # at once, and let the others finish first.
        self._waiting: weakref.WeakSet[asyncio.Task[Any]] = weakref.WeakSet()

    def spawn(self, coro: Coroutine[Any, Any, Any], waits_only: bool = False) -> asyncio.Task[Any]:
        """Run coro in the running loop; waits_only: it never talks to the broker."""
        task = super().spawn(coro)
        if waits_only:
            self._waiting.add(task)
        return task

    async def settle_here(self, limit: float) -> None:
        """Let this loop's background tasks finish; cancel what is left after limit seconds.

        Not cancelled at once: aiormq closes a channel whose call is cancelled, and the
        publishing channel is every call's; frames others queued on it meanwhile are a
        protocol error that closes the whole connection.
        """
        mine = self.running_here()
        if not mine:
            return
        for task in mine:
            if task in self._waiting:
                task.cancel()
        _, late = await asyncio.wait(mine, timeout=limit)
        for task in late:
            task.cancel()
        await asyncio.gather(*late, return_exceptions=True)

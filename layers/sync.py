"""SyncChannelLayer: the channel layer API for plain, blocking code (scripts, cron, Celery).

async_to_sync(layer.group_send) makes a new event loop per call in a worker thread,
and connection-holding layers then trip over "Event loop is closed" or "attached to
a different loop" (channels#859, #1799, channels_redis#332). This class instead owns
one event loop in one background thread for its whole life; every call is handed to
that loop, so any number of threads may share one SyncChannelLayer.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import threading
import weakref
from collections.abc import Coroutine, Iterable
from types import TracebackType
from typing import Any, Self, TypeVar

from .base import ChannelLayer
from .config import get_channel_layer, layer_from_url
from .exceptions import ChannelLayerClosed, ChannelLayerError, ConfigError
from .figures import Figures

__all__ = ["SyncChannelLayer"]

T = TypeVar("T")
Message = dict[str, Any]

_live: weakref.WeakSet[SyncChannelLayer] = weakref.WeakSet()


@atexit.register
def _close_all() -> None:
    for layer in list(_live):
        layer.close()


class SyncChannelLayer:
    """A blocking facade over a channel layer, running it on its own loop thread."""

    def __init__(self, layer: ChannelLayer | str | None = None) -> None:
        # A URL makes a layer of our own, closed with us; a layer object or an alias
        # (the process-wide cached layer) is shared, so only our loop's connections go.
        if isinstance(layer, ChannelLayer):
            self.layer, self._owned = layer, False
        elif isinstance(layer, str) and "://" in layer:
            self.layer, self._owned = layer_from_url(layer), True
        else:
            alias = layer or "default"
            try:
                self.layer = get_channel_layer(alias)
            except ConfigError as exc:
                if ":" in alias or "/" in alias:  # host:port or a path, not an alias
                    raise ConfigError(
                        f"{alias!r} is neither a layer URL (they contain '://', e.g. "
                        f"redis://{alias}) nor a CHANNEL_LAYERS alias: {exc}"
                    ) from None
                raise
            self._owned = False
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stop: asyncio.Event | None = None
        self._closed = False
        _live.add(self)

    # -- the loop thread -------------------------------------------------------------

    def _start(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._closed:
                raise ChannelLayerClosed("this SyncChannelLayer is closed")
            if self._loop is None:
                ready = threading.Event()
                self._thread = threading.Thread(
                    target=self._run, args=(ready,), name="chanlayers-sync", daemon=True
                )
                self._thread.start()
                ready.wait()
            assert self._loop is not None
            return self._loop

    def _run(self, ready: threading.Event) -> None:
        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            ready.set()
            await self._stop.wait()
            if self._owned:
                await self.layer.close()

        # asyncio.run cancels leftovers and runs shutdown_asyncgens, which closes the
        # connections the layer opened in this loop.
        asyncio.run(main())

    def _call(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:
            coro.close()
            raise ChannelLayerError(
                "SyncChannelLayer blocks, so it cannot be called from a running event "
                "loop; in async code await the layer's own methods instead "
                "(e.g. await get_channel_layer().group_send(...))"
            )
        try:
            loop = self._start()
        except BaseException:
            coro.close()
            raise
        future = asyncio.run_coroutine_threadsafe(coro, loop)
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()  # receive is cancellation-safe: nothing is lost
            raise TimeoutError(f"no result within {timeout} s") from None

    # -- the API -----------------------------------------------------------------------

    def send(self, channel: str, message: Message) -> None:
        """Send message to channel; raise ChannelFull if it is at capacity."""
        self._call(self.layer.send(channel, message))

    def send_many(self, items: Iterable[tuple[str, Message]]) -> list[BaseException | None]:
        """Send each (channel, message); per item None if stored, else its error."""
        return self._call(self.layer.send_many(list(items)))

    def group_send_many(self, items: Iterable[tuple[str, Message]]) -> list[BaseException | None]:
        """group_send each (group, message); per item None, else its error."""
        return self._call(self.layer.group_send_many(list(items)))

    def group_send(self, group: str, message: Message) -> None:
        """Send message to every member of group."""
        self._call(self.layer.group_send(group, message))

    def group_add(self, group: str, channel: str) -> None:
        """Add channel to group."""
        self._call(self.layer.group_add(group, channel))

    def group_discard(self, group: str, channel: str) -> None:
        """Remove channel from group."""
        self._call(self.layer.group_discard(group, channel))

    def group_channels(self, group: str) -> list[str]:
        """The members of group."""
        return self._call(self.layer.group_channels(group))

    def receive(self, channel: str, timeout: float | None = None) -> Message:
        """Wait for a message on channel; raise TimeoutError after timeout seconds."""
        if timeout is not None and not timeout > 0:
            raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
        return self._call(self.layer.receive(channel), timeout)

    def new_channel(self, prefix: str = "specific") -> str:
        """A new process-local channel name of this layer."""
        return self._call(self.layer.new_channel(prefix))

    def flush(self) -> None:
        """Remove every message and group of the layer."""
        self._call(self.layer.flush())

    def stats(self) -> dict[str, Any]:
        """The layer's counters."""
        return self.layer.stats()

    def figures(self, top: int = 10) -> Figures:
        """The whole deployment's figures (see ChannelLayer.figures)."""
        return self._call(self.layer.figures(top))

    def close(self) -> None:
        """Stop the loop thread (closing the layer if this object made it)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            loop, thread, stop = self._loop, self._thread, self._stop
        _live.discard(self)
        if loop is not None and stop is not None and thread is not None:
            if thread is threading.current_thread():
                raise ChannelLayerError("close() cannot be called from the layer's own loop")
            loop.call_soon_threadsafe(stop.set)
            thread.join()
        elif self._owned:
            asyncio.run(self.layer.close())

    @property
    def closed(self) -> bool:
        """True once close() has been called."""
        return self._closed

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

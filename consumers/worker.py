"""The worker: run consumers on normal channels (background jobs), like channels' runworker.

Each message taken off a named channel goes to a new application instance with scope
{"type": "channel", "channel": name}. Channels are served concurrently, the messages
of one channel one at a time, in order. A message is taken off the layer only when
the previous one's instance has finished (consumers never read ahead), so stopping
on SIGINT/SIGTERM lets the running jobs finish and leaves every waiting job on its
channel; a second signal cancels the running jobs too.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import signal
from collections.abc import Awaitable, Iterable
from typing import Any, NoReturn, TypeVar

from layers import ChannelLayer
from layers.naming import check_channel

from .asgi import ASGIApp, Message
from .base import _Consumer
from .exceptions import StopConsumer

__all__ = ["Worker", "check_channels", "load_application", "run_worker"]

log = logging.getLogger("consumers.worker")

_T = TypeVar("_T")


def load_application(spec: str) -> ASGIApp:
    """The app named by 'module:attr' (attr may be dotted); a consumer class gets as_asgi()."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise ValueError(f"--app takes 'module:attribute', e.g. 'myapp.jobs:router', got {spec!r}")
    try:
        target: Any = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and (module_name == exc.name or module_name.startswith(exc.name + ".")):
            raise ValueError(
                f"--app {spec}: no module named {module_name!r} (imported from the current "
                "directory or PYTHONPATH)"
            ) from None
        raise
    for part in attr.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise ValueError(f"--app {spec}: {module_name} has no attribute {attr!r}") from None
    if isinstance(target, type) and issubclass(target, _Consumer):
        return target.as_asgi()
    if not callable(target):
        raise ValueError(f"--app {spec}: {target!r} is not an ASGI application")
    app: ASGIApp = target
    return app


def check_channels(channels: Iterable[str]) -> list[str]:
    """channels without repeats; ValueError if empty, TypeError if a name is invalid."""
    names = list(dict.fromkeys(channels))
    if not names:
        raise ValueError("a worker needs at least one channel to receive on")
    for name in names:
        check_channel(name)
        if "!" in name:
            raise ValueError(f"a worker receives on normal channels; {name!r} is process-local")
    return names


async def _no_client(message: Message) -> NoReturn:
    raise RuntimeError(
        f"a worker's consumer has no client to send {message.get('type')!r} to; "
        "send to a channel with self.channel_layer.send(...) instead"
    )


class Worker:
    """Receive on named normal channels and run the application for each message."""

    def __init__(
        self, application: ASGIApp, channels: Iterable[str], channel_layer: ChannelLayer
    ) -> None:
        self.application = application
        self.channels = check_channels(channels)
        self.channel_layer = channel_layer
        self.stats = {"handled": 0, "failed": 0, "cancelled": 0}
        self._stopping = False
        self._idle: dict[str, asyncio.Future[Any]] = {}
        self._jobs: set[asyncio.Task[None]] = set()

    @property
    def stopping(self) -> bool:
        """True once stop() was called."""
        return self._stopping

    def stop(self, force: bool = False) -> None:
        """Take no more messages; running jobs finish, or are cancelled if force."""
        self._stopping = True
        # A pending receive is cancellation-safe: its message stays on the layer.
        for task in self._idle.values():
            task.cancel()
        if force:
            for job in self._jobs:
                job.cancel()

    async def run(self) -> None:
        """Serve every channel until stop()."""
        served = [asyncio.ensure_future(self._serve(channel)) for channel in self.channels]
        try:
            await asyncio.gather(*served)
        finally:
            # One channel failing (or our own cancellation) ends them all.
            for task in served:
                task.cancel()
            await asyncio.wait(served)

    async def _serve(self, channel: str) -> None:
        while not self._stopping:
            receiving = await self._until_stopped(channel, self.channel_layer.receive(channel))
            if receiving.cancelled():
                return
            # A message that arrived as stop() came is still run, never dropped. A layer
            # error is raised here and ends the worker: backends reconnect on their own,
            # so what reaches a receiver is lasting (a closed layer, a bad password).
            await self._handle(channel, receiving.result())

    async def _until_stopped(self, channel: str, waiting: Awaitable[_T]) -> asyncio.Future[_T]:
        """waiting as a future, done or (by stop()) cancelled; cancelled here if we are."""
        future = asyncio.ensure_future(waiting)
        self._idle[channel] = future
        try:
            await asyncio.wait([future])
        finally:
            del self._idle[channel]
            future.cancel()
        return future

    async def _handle(self, channel: str, message: Message) -> None:
        asked_again = asyncio.Event()
        taken = False

        async def receive() -> Message:
            nonlocal taken
            if not taken:
                taken = True
                return message
            # Consumers read again only once the handler is done: that is the job's end.
            asked_again.set()
            await asyncio.Event().wait()
            raise AssertionError("unreachable")

        scope = {"type": "channel", "channel": channel}
        job = asyncio.ensure_future(self.application(scope, receive, _no_client))
        self._jobs.add(job)
        ended = asyncio.ensure_future(asked_again.wait())
        try:
            await asyncio.wait([job, ended], return_when=asyncio.FIRST_COMPLETED)
        finally:
            ended.cancel()
            job.cancel()
            await asyncio.wait([job])
            self._jobs.discard(job)
        what = (message.get("type"), channel)
        if job.cancelled() and not asked_again.is_set():
            self.stats["cancelled"] += 1
            log.warning("job %r on channel %r cancelled by a forced stop; it is dropped", *what)
            return
        error = None if job.cancelled() else job.exception()
        if error is None or isinstance(error, StopConsumer):
            self.stats["handled"] += 1
            return
        # One failed job must not stop the others: log it with its traceback and go on.
        self.stats["failed"] += 1
        log.error("job %r on channel %r failed", *what, exc_info=error)


async def run_worker(application: ASGIApp, channels: Iterable[str], layer: ChannelLayer) -> Worker:
    """Run a Worker until SIGINT or SIGTERM (a second one cancels running jobs)."""
    worker = Worker(application, channels, layer)
    loop = asyncio.get_running_loop()
    signals = (signal.SIGINT, signal.SIGTERM)

    def on_signal(signum: int) -> None:
        force = worker.stopping
        doing = "cancelling running jobs" if force else "finishing running jobs"
        log.warning("%s: %s", signal.Signals(signum).name, doing)
        worker.stop(force=force)

    for signum in signals:
        loop.add_signal_handler(signum, on_signal, signum)
    try:
        await worker.run()
    finally:
        for signum in signals:
            loop.remove_signal_handler(signum)
    return worker

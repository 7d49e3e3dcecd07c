"""AsyncConsumer and SyncConsumer: one dispatcher, two ways of calling a handler."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, ClassVar

from asgiref.sync import AsyncToSync, SyncToAsync

from layers import ChannelLayer, ChannelLayerError, get_channel_layer

from .asgi import ASGIApp, Message, Receive, Scope, Send
from .exceptions import StopConsumer

__all__ = ["AsyncConsumer", "SyncConsumer", "handler_name"]

log = logging.getLogger("consumers")


def handler_name(message: object) -> str:
    """The method name for a message's type ('a.b' -> 'a_b'); ValueError if it is malformed."""
    type_ = message.get("type") if isinstance(message, Mapping) else None
    if not isinstance(type_, str) or not type_:
        raise ValueError(f"a message needs a non-empty str 'type', got {type_!r}")
    # A type reaching private or dunder attributes would let a peer call internals.
    if type_.startswith(("_", ".")) or "__" in type_:
        # channels' wording first: code and tests ported from channels match on it.
        raise ValueError(
            f"Malformed type in message (leading underscore): {type_!r} names a private "
            "attribute, which no message may call"
        )
    return type_.replace(".", "_")


class _Consumer:
    """What the twins share: construction, the listen loop and the dispatch decision."""

    channel_layer_alias: ClassVar[str | None] = "default"
    groups: list[str] = []

    scope: Scope
    channel_layer: ChannelLayer | None
    channel_name: str | None
    base_send: Send

    def __init__(self, **kwargs: Any) -> None:
        for key, value in kwargs.items():
            setattr(self, key, value)

    @classmethod
    def as_asgi(cls, **initkwargs: Any) -> ASGIApp:
        """An ASGI app that builds a new consumer, with initkwargs, for every connection."""
        for key in initkwargs:
            # channels' rule: only override what the class declares, so typos fail early.
            if not hasattr(cls, key):
                raise TypeError(f"{cls.__name__}.as_asgi() got an unknown keyword {key!r}")

        async def app(scope: Scope, receive: Receive, send: Send) -> None:
            await cls(**initkwargs)(scope, receive, send)

        app.consumer_class = cls  # type: ignore[attr-defined]
        app.consumer_initkwargs = initkwargs  # type: ignore[attr-defined]
        functools.update_wrapper(app, cls, updated=())
        return app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.scope = scope
        self.base_send = send
        alias = self.channel_layer_alias
        self.channel_layer = None if alias is None else get_channel_layer(alias)
        self.channel_name = None
        self._joined: list[str] = []
        sources: list[Callable[[], Awaitable[Message]]] = [receive]
        if self.channel_layer is not None:
            self.channel_name = await self.channel_layer.new_channel()
            sources.append(functools.partial(self.channel_layer.receive, self.channel_name))
        sources.extend(self._more_sources())
        try:
            with contextlib.suppress(StopConsumer):
                await self._listen(sources)
        finally:
            if self._joined:
                # Cancelled with no disconnect (server shutdown, a crash): leave anyway,
                # shielded so a second cancel cannot strand a membership half way.
                await asyncio.shield(self._leave_groups(quiet=True))

    def _more_sources(self) -> list[Callable[[], Awaitable[Message]]]:
        """Further message sources a subclass listens to (the HTTP consumer's timer)."""
        return []

    async def _join_groups(self) -> None:
        """Add this consumer's channel to each of self.groups (remembered for leaving)."""
        if not self.groups:
            return
        if self.channel_layer is None or self.channel_name is None:
            raise ValueError(f"{type(self).__name__}.groups needs a channel layer")
        for group in self.groups:
            # Remembered first: a group_add cut short by a cancel is still left on exit.
            self._joined.append(group)
            await self.channel_layer.group_add(group, self.channel_name)

    async def _leave_groups(self, quiet: bool = False) -> None:
        """Discard this consumer's channel from every group it joined; quiet logs errors."""
        joined, self._joined = self._joined, []
        for group in joined:
            assert self.channel_layer is not None
            assert self.channel_name is not None
            try:
                await self.channel_layer.group_discard(group, self.channel_name)
            except ChannelLayerError as error:
                if not quiet:
                    raise
                # The consumer is ending anyway; group_expiry removes the member later.
                log.warning(
                    "%s could not leave group %r on exit: %s", type(self).__name__, group, error
                )

    async def _listen(self, sources: list[Callable[[], Awaitable[Message]]]) -> None:
        """Wait on every source at once and dispatch each message as it arrives."""
        tasks = [asyncio.ensure_future(source()) for source in sources]
        try:
            while True:
                await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
                for index, task in enumerate(tasks):
                    if task.done():
                        await self.dispatch(task.result())
                        # Re-arm only now: no source reads ahead of its handler, so a
                        # consumer ending (or a worker stopping) never holds a read message.
                        tasks[index] = asyncio.ensure_future(sources[index]())
        finally:
            # Both receives are cancellation-safe, so a cancelled one loses no message.
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def dispatch(self, message: Message) -> None:
        """Run the handler for message's type, or default_handler if there is none."""
        name = handler_name(message)
        if name in _RESERVED:
            raise ValueError(f"refusing message type {message['type']!r}: it names consumer API")
        # Look on the class, so instance attributes (scope, initkwargs) are never called.
        handler = getattr(self, name) if callable(getattr(type(self), name, None)) else None
        await self._call(handler or self.default_handler, message)

    async def _call(self, handler: Callable[[Message], Any], message: Message) -> None:
        """How this twin runs a handler."""
        raise NotImplementedError

    def default_handler(self, message: Message) -> Any:
        """Handle a message of unknown type."""
        raise NotImplementedError

    def _log_unknown(self, message: Message) -> None:
        # channels raises here and kills the consumer; one stray message should not.
        log.warning(
            "%s has no handler for message type %r; ignored",
            type(self).__name__,
            message.get("type"),
        )


class AsyncConsumer(_Consumer):
    """A consumer whose handlers are coroutines."""

    async def _call(self, handler: Callable[[Message], Any], message: Message) -> None:
        await handler(message)

    async def send(self, message: Message) -> None:
        """Send message to the client."""
        await self.base_send(message)

    async def default_handler(self, message: Message) -> None:
        """Log a message of unknown type at WARNING and ignore it."""
        self._log_unknown(message)


class SyncConsumer(_Consumer):
    """A consumer whose handlers are plain functions, run in a worker thread."""

    async def _call(self, handler: Callable[[Message], Any], message: Message) -> None:
        # Protocol machinery (e.g. websocket_connect) is async and stays on the loop;
        # everything a user writes as a plain function goes to a worker thread.
        if inspect.iscoroutinefunction(handler):
            await handler(message)
        else:
            await SyncToAsync(handler, thread_sensitive=False)(message)

    def send(self, message: Message) -> None:
        """Send message to the client (call from a handler, i.e. from its thread)."""
        AsyncToSync(self.base_send)(message)

    def default_handler(self, message: Message) -> None:
        """Log a message of unknown type at WARNING and ignore it."""
        self._log_unknown(message)


# Types must not reach the consumer's own API (a client sending {"type": "send"} would
# echo itself; "dispatch" would recurse); handlers live only in subclasses.
_RESERVED = frozenset(
    name
    for klass in (_Consumer, AsyncConsumer, SyncConsumer)
    for name in (*vars(klass), *vars(klass).get("__annotations__", {}))
)

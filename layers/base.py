"""The channel layer contract: validation, capacity, expiry and stats, written once."""

from __future__ import annotations

import abc
import inspect
import logging
import math
from collections.abc import Iterable, Mapping
from types import TracebackType
from typing import Any, ClassVar, Self

from . import exceptions
from .capacity import CapacityRules, Pattern
from .codec import DEFAULT_MAX_MESSAGE_SIZE, Codec, Message
from .exceptions import ChannelLayerClosed, ConfigError, UndecodableMessage
from .local import Counters
from .naming import (
    MAX_NAME_LENGTH,
    check_channel,
    check_group,
    check_prefix,
    new_client_id,
    new_local_name,
    non_local_name,
    owned_by,
)

__all__ = ["ChannelLayer", "GroupSendResult"]

log = logging.getLogger("layers")

GroupSendResult = tuple[int, int]
"""(delivered, dropped because full) for one group_send."""


def _seconds(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ConfigError(f"{name} must be a positive number of seconds, got {value!r}")
    if not math.isfinite(value):
        raise ConfigError(f"{name} must be finite, got {value!r}")
    return float(value)


class ChannelLayer(abc.ABC):
    """A channel layer: the Django Channels contract, validated here, carried by a backend."""

    extensions: ClassVar[list[str]] = ["groups", "flush"]
    ChannelFull = exceptions.ChannelFull
    MessageTooLarge = exceptions.MessageTooLarge
    MAX_NAME_LENGTH: ClassVar[int] = MAX_NAME_LENGTH

    def __init__(
        self,
        *,
        prefix: str = "asgi",
        expiry: float = 60,
        group_expiry: float = 86400,
        capacity: int = 100,
        channel_capacity: Mapping[Pattern, int] | None = None,
        symmetric_encryption_keys: Iterable[str | bytes] | None = None,
        max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
        **unknown: Any,
    ) -> None:
        if unknown:
            raise ConfigError(
                f"unknown option(s) for {type(self).__name__}: {', '.join(sorted(unknown))}; "
                f"known options are {', '.join(sorted(self.known_options()))}"
            )
        self.prefix = check_prefix(prefix)
        self.expiry = _seconds("expiry", expiry)
        self.group_expiry = _seconds("group_expiry", group_expiry)
        self.capacity_rules = CapacityRules(capacity, channel_capacity)
        self.capacity = self.capacity_rules.default
        self.codec = Codec(
            max_message_size=max_message_size, symmetric_encryption_keys=symmetric_encryption_keys
        )
        self.counters = Counters()
        self.client_id = new_client_id()
        self._closed = False

    @classmethod
    def known_options(cls) -> set[str]:
        """Every keyword option this class accepts."""
        names: set[str] = set()
        for klass in cls.__mro__:
            init = klass.__dict__.get("__init__")
            if init is None or klass is object:
                continue
            for param in inspect.signature(init).parameters.values():
                if param.kind is param.KEYWORD_ONLY:
                    names.add(param.name)
        return names

    # -- the public API ----------------------------------------------------------

    async def send(self, channel: str, message: Message) -> None:
        """Send message to channel; raise ChannelFull if it is at capacity."""
        self._check_open()
        check_channel(channel)
        await self._send(channel, self.codec.encode(message))
        self.counters.sent += 1

    async def receive(self, channel: str) -> Message:
        """Wait for the next message on channel ('x!' receives every 'x!*' channel)."""
        self._check_open()
        check_channel(channel)
        while True:
            payload = await self._receive(channel)
            try:
                message = self.codec.decode(payload)
            except UndecodableMessage as exc:
                self.counters.dropped_undecodable += 1
                log.warning("dropped a message on %r: %s", channel, exc)
                continue
            self.counters.received += 1
            return message

    async def new_channel(self, prefix: str = "specific") -> str:
        """A new process-local channel name that only this process receives on."""
        self._check_open()
        # channels' own default is "specific."; accept it without doubling the dot.
        prefix = check_prefix(
            prefix.rstrip(".") if isinstance(prefix, str) else prefix, "new_channel prefix"
        )
        name = new_local_name(prefix, self.client_id)
        await self._new_channel(name)
        return name

    async def group_add(self, group: str, channel: str) -> None:
        """Add channel to group, or renew its membership for group_expiry seconds."""
        self._check_open()
        await self._group_add(check_group(group), check_channel(channel))

    async def group_discard(self, group: str, channel: str) -> None:
        """Remove channel from group; a non-member is a no-op."""
        self._check_open()
        await self._group_discard(check_group(group), check_channel(channel))

    async def group_send(self, group: str, message: Message) -> None:
        """Deliver message once to every member; full members are skipped and counted."""
        self._check_open()
        check_group(group)
        delivered, dropped = await self._group_send(group, self.codec.encode(message))
        self.counters.group_sends += 1
        self.counters.sent += delivered
        if dropped:
            self.counters.dropped_full += dropped
            log.info("group_send to %r skipped %d full member(s)", group, dropped)

    async def group_channels(self, group: str) -> list[str]:
        """The current members of group."""
        self._check_open()
        return await self._group_channels(check_group(group))

    async def flush(self) -> None:
        """Remove every message and group of this layer; waiting receivers keep waiting."""
        self._check_open()
        await self._flush()

    async def close(self) -> None:
        """Release connections and tasks; the layer cannot be used afterwards."""
        if self._closed:
            return
        self._closed = True
        await self._close()

    @property
    def closed(self) -> bool:
        """True once close() has been called."""
        return self._closed

    async def __aenter__(self) -> Self:
        self._check_open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def stats(self) -> dict[str, Any]:
        """Counters since start, plus what the backend can tell of its queues."""
        return {"backend": type(self).__name__, **self.counters.as_dict(), **self._stats()}

    # -- helpers for backends ------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise ChannelLayerClosed(f"this {type(self).__name__} is closed")

    # -- Django Channels compatibility -------------------------------------------------

    def require_valid_channel_name(self, name: str, receive: bool = False) -> bool:
        """channels' name check: raise InvalidChannelName (a TypeError) or return True."""
        check_channel(name)
        return True

    def require_valid_group_name(self, name: str) -> bool:
        """channels' group name check: raise InvalidChannelName or return True."""
        check_group(name)
        return True

    def non_local_name(self, name: str) -> str:
        """The part of a channel name up to and including '!'."""
        return non_local_name(name)

    def get_capacity(self, channel: str) -> int:
        """The capacity of channel."""
        return self.capacity_rules(channel)

    def owns(self, channel: str) -> bool:
        """True if channel is a process-local channel this layer's new_channel() made."""
        return owned_by(channel, self.client_id)

    def require_own(self, channel: str) -> None:
        """Raise InvalidChannelName unless this layer may receive on process-local channel."""
        if not self.owns(channel):
            raise exceptions.InvalidChannelName(
                f"channel {channel!r} belongs to another process or layer: only the "
                "layer whose new_channel() made it can receive on it"
            )

    # -- the transport: what a backend implements ------------------------------------

    @abc.abstractmethod
    async def _send(self, channel: str, payload: bytes) -> None:
        """Queue payload on channel, or raise ChannelFull."""

    @abc.abstractmethod
    async def _receive(self, channel: str) -> bytes:
        """Wait for and take the next payload of channel; safe to cancel."""

    async def _new_channel(self, name: str) -> None:  # noqa: B027 - optional hook
        """Prepare to receive on a new process-local channel."""

    @abc.abstractmethod
    async def _group_add(self, group: str, channel: str) -> None:
        """Add or renew a membership."""

    @abc.abstractmethod
    async def _group_discard(self, group: str, channel: str) -> None:
        """Remove a membership if present."""

    @abc.abstractmethod
    async def _group_send(self, group: str, payload: bytes) -> GroupSendResult:
        """Queue payload on every live member; return (delivered, dropped as full)."""

    @abc.abstractmethod
    async def _group_channels(self, group: str) -> list[str]:
        """The live members of group."""

    @abc.abstractmethod
    async def _flush(self) -> None:
        """Drop every message and group of this layer."""

    @abc.abstractmethod
    async def _close(self) -> None:
        """Release everything the backend holds."""

    def _stats(self) -> dict[str, Any]:
        """Backend figures for stats(), e.g. queue depths."""
        return {}

"""The channel layer contract: validation, capacity, expiry and stats, written once."""

from __future__ import annotations

import abc
import logging
from collections.abc import Iterable
from types import TracebackType
from typing import Any, ClassVar, Self

from . import exceptions
from .batches import encode_batch
from .binding import Binding
from .capacity import CapacityRules, parse_channel_capacity
from .codec import CLOCK_SKEW, DEFAULT_MAX_MESSAGE_SIZE, Codec, Destination, Message
from .compat import ChannelsNames
from .counters import Counters
from .exceptions import (
    ChannelFull,
    ChannelLayerClosed,
    ChannelLayerError,
    UndecodableMessage,
)
from .figures import Figures, process_counters
from .naming import (
    check_channel,
    check_group,
    check_prefix,
    new_client_id,
    new_local_name,
    owned_by,
)
from .options import Option, Options, as_given, positive_int, seconds

__all__ = ["BatchResult", "ChannelLayer", "GroupSendResult", "sweep_interval"]

log = logging.getLogger("layers")

GroupSendResult = tuple[int, int]
"""(delivered, dropped because full) for one group_send."""

BatchResult = list[BaseException | None]
"""Per item of a batch: None if it was done, else the exception that says why not."""

MAX_SWEEP_INTERVAL = 30.0


def sweep_interval(*lifetimes: float) -> float:
    """How often to sweep out what lasts lifetimes: twice per shortest, at least every 30 s."""
    # Twice per lifetime, so that idle state never outlives its expiry by much.
    return min(*lifetimes, MAX_SWEEP_INTERVAL) / 2


class ChannelLayer(ChannelsNames, abc.ABC):
    """A channel layer: the Django Channels contract, validated here, carried by a backend."""

    extensions: ClassVar[list[str]] = ["groups", "flush"]
    ChannelFull = exceptions.ChannelFull
    MessageTooLarge = exceptions.MessageTooLarge

    OPTIONS: ClassVar[Options] = Options(
        Option(
            "prefix",
            lambda name, value: check_prefix(value, name),
            "asgi",
            "what every name this layer stores starts with; layers with another prefix "
            "do not see each other",
        ),
        Option("expiry", seconds(), 60, "seconds a message waits unread before it is dropped"),
        Option(
            "group_expiry",
            seconds(),
            86400,
            "seconds a group membership lasts after its last `group_add`",
        ),
        Option(
            "capacity",
            positive_int,
            100,
            "messages a channel holds before `send` raises `ChannelFull`",
        ),
        Option(
            "channel_capacity",
            parse_channel_capacity,
            None,
            'per-channel capacity: `{glob or "re:regex": capacity}`, first match wins',
        ),
        Option(
            "symmetric_encryption_keys",
            as_given,
            None,
            "keys to encrypt messages with (Fernet): the first encrypts, any decrypts",
        ),
        Option(
            "max_message_size",
            as_given,
            DEFAULT_MAX_MESSAGE_SIZE,
            "largest encoded message in bytes (at least 64); a larger one raises `MessageTooLarge`",
        ),
    )
    """The options every layer takes; each backend's table extends this one."""

    def __init__(self, **options: Any) -> None:
        self.options = self.OPTIONS.parse(type(self).__name__, options)
        """Every option's value, the defaults filled in."""
        self.prefix: str = self.options["prefix"]
        self.expiry: float = self.options["expiry"]
        self.group_expiry: float = self.options["group_expiry"]
        self.capacity_rules = CapacityRules(
            self.options["capacity"], self.options["channel_capacity"]
        )
        self.capacity = self.capacity_rules.default
        self.codec = Codec(
            max_message_size=self.options["max_message_size"],
            symmetric_encryption_keys=self.options["symmetric_encryption_keys"],
            max_age=self.expiry + CLOCK_SKEW,
        )
        self._binding = Binding(self._group_channels, self._member_here)
        self.counters = Counters()
        self.client_id = new_client_id()
        self._closed = False

    @classmethod
    def known_options(cls) -> set[str]:
        """Every keyword option this class accepts."""
        return cls.OPTIONS.names()

    # -- the public API ----------------------------------------------------------

    async def send(self, channel: str, message: Message) -> None:
        """Send message to channel; raise ChannelFull if it is at capacity."""
        self._check_open()
        check_channel(channel)
        await self._send(channel, self.codec.encode(message, channel))
        self.counters.sent += 1

    async def send_many(self, items: Iterable[tuple[str, Message]]) -> BatchResult:
        """Send each (channel, message) in order; per item None if stored, else its error.

        Every item is validated and encoded first: a bad name or message raises, naming
        the item's index, and nothing is sent. A full channel gives that item a
        ChannelFull and the batch goes on. A connection error gives the item it hit a
        ChannelLayerConnectionError, and so every later item that would travel the same
        way (the same server, for Redis), untried or unanswered: as for a send that raised
        it, such an item may or may not be stored. A None entry is stored for sure.
        """
        self._check_open()
        batch = encode_batch(items, check_channel, self.codec.encode, "send_many")
        if not batch:
            return []
        results = await self._send_many(batch)
        self.counters.sent += results.count(None)
        return results

    async def group_send_many(self, items: Iterable[tuple[str, Message]]) -> BatchResult:
        """group_send each (group, message) in order; per item None, or the error that
        kept it from being done (see send_many: a connection error, never ChannelFull)."""
        self._check_open()
        batch = encode_batch(items, check_group, self.codec.encode_for_group, "group_send_many")
        if not batch:
            return []
        results: BatchResult = []
        for (group, _), outcome in zip(batch, await self._group_send_many(batch), strict=True):
            if isinstance(outcome, BaseException):
                results.append(outcome)
            else:
                self._count_group_send(group, outcome)
                results.append(None)
        return results

    async def receive(self, channel: str) -> Message:
        """Wait for the next message on channel ('x!' receives every 'x!*' channel)."""
        self._check_open()
        check_channel(channel)
        while True:  # few locals and no try: every idle receiver holds this frame
            payload = self._receive_now(channel)
            if payload is None:
                payload = await self._receive(channel)
            got = self._unseal(channel, payload)
            if got is None or (got[0] and not await self._binding.check(got[0], channel, payload)):
                self.counters.dropped_undecodable += 1  # _unseal or Binding logged why
                continue
            self.counters.received += 1
            return got[1]

    def _unseal(self, channel: str, payload: bytes) -> tuple[Destination | None, Message] | None:
        try:
            return self.codec.unseal(payload)
        except UndecodableMessage as exc:
            log.warning("dropped a message on %r: %s", channel, exc)
            return None

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
        result = await self._group_send(group, self.codec.encode_for_group(message, group))
        self._count_group_send(group, result)

    def _count_group_send(self, group: str, result: GroupSendResult) -> None:
        delivered, dropped = result
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
        self._binding.forget()

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

    async def figures(self, top: int = 10) -> Figures:
        """The whole deployment's figures for this prefix, as far as the backend keeps them.

        Unlike stats(), which counts this process only, these are read from the shared
        backend, so a fresh process (the CLI, a Prometheus scrape) sees every process's
        work; top bounds the deepest channels and largest groups listed.
        """
        self._check_open()
        if isinstance(top, bool) or not isinstance(top, int) or top < 0:
            raise ValueError(f"top must be a whole number of at least 0, got {top!r}")
        return await self._figures(top)

    # -- helpers for backends ------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise ChannelLayerClosed(f"this {type(self).__name__} is closed")

    # -- Django Channels compatibility -------------------------------------------------

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

    def _receive_now(self, channel: str) -> bytes | None:
        """The next payload of channel if the backend holds one now, without waiting."""
        return None

    async def _new_channel(self, name: str) -> None:
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

    async def _send_many(self, items: list[tuple[str, bytes]]) -> BatchResult:
        """Queue each (channel, payload) in order: one entry per item (see send_many).

        This loop sends one at a time; a backend that can pipeline overrides it.
        """
        results: BatchResult = []
        for channel, payload in items:
            try:
                await self._send(channel, payload)
            except ChannelFull as exc:
                results.append(exc)
            except ChannelLayerError as exc:
                # The link failed: the rest would fail alike, and trying them could
                # store a later message of a channel before this one.
                results += [exc] * (len(items) - len(results))
                break
            else:
                results.append(None)
        return results

    async def _group_send_many(
        self, items: list[tuple[str, bytes]]
    ) -> list[GroupSendResult | BaseException]:
        """group_send each (group, payload) in order; per item its result or its error.

        This loop sends one at a time; a backend that can pipeline overrides it.
        """
        results: list[GroupSendResult | BaseException] = []
        for group, payload in items:
            try:
                results.append(await self._group_send(group, payload))
            except ChannelLayerError as exc:
                results += [exc] * (len(items) - len(results))
                break
        return results

    @abc.abstractmethod
    async def _group_channels(self, group: str) -> list[str]:
        """The live members of group."""

    def _member_here(self, group: str, channel: str, payload: bytes) -> bool | None:
        """Whether channel (payload came on it) is in group, if known without a lookup."""
        return None

    @abc.abstractmethod
    async def _flush(self) -> None:
        """Drop every message and group of this layer."""

    @abc.abstractmethod
    async def _close(self) -> None:
        """Release everything the backend holds."""

    def _stats(self) -> dict[str, Any]:
        """Backend figures for stats(), e.g. queue depths."""
        return {}

    async def _figures(self, limit: int) -> Figures:
        """Deployment figures; a backend that keeps none gives this process's counters."""
        stats = self.stats()
        return Figures(
            backend=type(self).__name__,
            prefix=self.prefix,
            scope="process",
            counters=process_counters(stats),
            notes=("this backend keeps no shared counters: these are this process's",),
        )

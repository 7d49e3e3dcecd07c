"""Binding: an encrypted message is delivered only where it was sent.

The codec seals each ciphertext's destination inside it (a channel, or a group); the
receiver checks it against the channel it arrived on, so a ciphertext copied into
another channel's queue by someone with write access to the backend (a replay) is
dropped and counted instead of delivered. A group message is delivered only to a
channel that is a member of that group: the members are read from the backend, and a
list read answers 'is a member' for MEMBERS_TTL seconds. Without encryption nothing is
sealed, and nothing is checked: a plaintext destination would prove nothing.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Collection

from .codec import CHANNEL, GROUP, Destination
from .exceptions import ChannelLayerClosed, ChannelLayerError

__all__ = ["MEMBERS_TTL", "Binding", "MemberHere", "ReadMembers", "among", "sent_to"]

MEMBERS_TTL = 1.0
"""How long a group's member list, once read, answers 'is a member'. A channel that
left the group less than this ago may still get a message sent to it before it left;
a 'not a member' answer is always asked again."""
_CACHE_SIZE = 256
_ASK_PAUSES = (0.1, 0.3, 1.0)
"""Pauses between reads of a member list that failed: the message is out of its queue
already, so a passing outage must not cost it; after the last, it is dropped and counted."""
log = logging.getLogger("layers")


def _is(name: str, channel: str) -> bool:
    # receive("x!") takes any "x!*" channel's messages.
    return name == channel or (channel.endswith("!") and name.startswith(channel))


def sent_to(destination: Destination, channel: str) -> bool | None:
    """True if a message sealed for destination may be delivered on channel, False if
    not, None if that depends on group membership."""
    kind, name = destination
    if kind == CHANNEL:
        return _is(name, channel)
    if kind == GROUP:
        return None
    return False


ReadMembers = Callable[[str], Awaitable[Collection[str]]]
"""group -> its live members, read from the backend."""
MemberHere = Callable[[str, str, bytes], bool | None]
"""(group, channel, payload) -> whether channel is a member, if the process knows
without asking the backend (RabbitMQ knows its own channels' memberships, and by
which binding the broker routed a payload); else None."""


def among(members: Collection[str], channel: str) -> bool:
    """True if channel is one of members (one of them is an "x!*" channel, for "x!")."""
    if not channel.endswith("!"):
        return channel in members  # a set's lookup: this runs once per group delivery
    return any(member.startswith(channel) for member in members)


class Binding:
    """Checks a received message's destination against the channel it arrived on."""

    def __init__(
        self,
        read_members: ReadMembers,
        member_here: MemberHere,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._read_members = read_members
        self._member_here = member_here
        self._clock = clock
        # group -> (read until, its members then): one read answers for every local
        # member a group message reaches.
        self._lists: dict[str, tuple[float, frozenset[str]]] = {}

    def known(self, destination: Destination, channel: str, payload: bytes) -> bool | None:
        """The answer if it needs no lookup: sent to channel, or to a group it is (or
        was moments ago) a member of; None means the backend must be asked (check)."""
        answer = sent_to(destination, channel)
        if answer is not None:
            return answer
        group = destination[1]
        here = self._member_here(group, channel, payload)
        if here is not None:
            return here
        cached = self._lists.get(group)
        if cached is not None and cached[0] > self._clock() and among(cached[1], channel):
            return True
        return None

    async def check(self, destination: Destination, channel: str, payload: bytes) -> bool:
        """True if a message sealed for destination, that arrived as payload, may be
        delivered on channel.

        The message has left its queue already: a receive cancelled while membership
        is being asked still learns the answer, and gets the message if it may have it
        (returned rather than lost, as receive never loses a message to a cancel).
        """
        allowed: bool | None = self.known(destination, channel, payload)
        if allowed is None:
            lookup = asyncio.ensure_future(self._ask(destination[1], channel))
            try:
                allowed = await asyncio.shield(lookup)
            except asyncio.CancelledError:
                if await lookup:
                    return True
                raise
        if allowed is None:
            log.error(
                "dropped a message on %r sent to group %r: its members could not be read",
                channel,
                destination[1],
            )
            return False
        if not allowed:
            log.warning("dropped a message on %r sent to %r: a replay", channel, destination[1])
        return allowed

    async def _ask(self, group: str, channel: str) -> bool | None:
        """Whether channel is in group, read from the backend; None if it cannot be read."""
        for pause in (*_ASK_PAUSES, None):
            try:
                members = frozenset(await self._read_members(group))
                break
            except ChannelLayerClosed:
                raise
            except ChannelLayerError as exc:
                if pause is None:
                    log.warning("reading the members of %r failed: %s", group, exc)
                    return None
                await asyncio.sleep(pause)
        if len(self._lists) >= _CACHE_SIZE:
            self._lists.clear()
        self._lists[group] = (self._clock() + MEMBERS_TTL, members)
        return among(members, channel)

    def forget(self) -> None:
        """Drop every member list read (after a flush)."""
        self._lists.clear()

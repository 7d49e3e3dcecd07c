"""Redis key names. The {hash tag} keeps every key one script touches in one cluster slot."""

from __future__ import annotations

import binascii
import functools
from dataclasses import dataclass

__all__ = ["Keys"]

_SLOTS = 16384
_TAG_CHARS = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-_"


@functools.cache
def _slot_tags() -> tuple[str, ...]:
    """A hash tag for each of Redis Cluster's slots: 3 characters whose CRC16 lands there.

    The 262,144 three-character strings cover every slot; finding them takes ~0.1 s,
    once per process, and only for a cluster.
    """
    crc = binascii.crc_hqx
    tags: dict[int, bytes] = {}
    chars = [bytes([c]) for c in _TAG_CHARS]
    for first in chars:
        after_first = crc(first, 0)
        for second in chars:
            after_second = crc(second, after_first)
            for third in chars:
                tags.setdefault(crc(third, after_second) % _SLOTS, first + second + third)
    return tuple(tags[slot].decode() for slot in range(_SLOTS))


def _slot(tag: str) -> int:
    return binascii.crc_hqx(tag.encode(), 0) % _SLOTS


@dataclass(frozen=True)
class Keys:
    """Key names under one layer prefix; names are validated, so they cannot escape it."""

    prefix: str
    cluster: bool = False

    def __post_init__(self) -> None:
        if self.cluster:
            _slot_tags()  # now, rather than in the event loop on the first send

    def channel(self, channel: str) -> str:
        """The list of a normal channel."""
        return f"{self.prefix}:c:{{{channel}}}"

    def inbox(self, inbox: str) -> str:
        """The list of a process inbox ('x!'), holding every 'x!*' channel's messages."""
        return f"{self.prefix}:i:{{{inbox}}}"

    def depth(self, inbox: str) -> str:
        """Per local channel, how many of its messages are queued or buffered unread."""
        return f"{self.prefix}:d:{{{inbox}}}"

    def held(self, name: str, reader: str = "") -> str:
        """A reader's last batch of a channel or inbox, kept until it acknowledges it."""
        return f"{self.prefix}:h:{{{name}}}:{reader}" if reader else f"{self.prefix}:h:{{{name}}}"

    def readers(self, channel: str) -> str:
        """The processes fetching from a normal channel, scored by the end of their lease."""
        return f"{self.prefix}:r:{{{channel}}}"

    def group(self, group: str) -> str:
        """A group's members: a hash bundled per process inbox (scripts/group_add.lua)."""
        return f"{self.prefix}:g:{{{group}}}"

    @property
    def counted(self) -> str:
        """The counters hash of a shard (not in a cluster: see counts)."""
        return f"{self.prefix}:f"

    def counts(self, key: str) -> str:
        """The counters hash that the scripts touching key add to (scripts/counting.lua).

        Each shard has one. A cluster has one per slot in use, at most 16,384, named
        by a tag of that slot, so that a script's counters live in its keys' slot
        however many channels and inboxes come and go; the reader sums them.
        """
        if not self.cluster:
            return self.counted
        tag = key[key.index("{") + 1 : key.index("}")]
        return f"{self.prefix}:f:{{{_slot_tags()[_slot(tag)]}}}"

    @property
    def pattern(self) -> str:
        """SCAN pattern for every key of this prefix."""
        return f"{self.prefix}:*"

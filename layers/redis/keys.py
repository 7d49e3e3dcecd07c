"""Redis key names. The {hash tag} keeps every key one script touches in one cluster slot."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Keys"]


@dataclass(frozen=True)
class Keys:
    """Key names under one layer prefix; names are validated, so they cannot escape it."""

    prefix: str

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

    def group(self, group: str) -> str:
        """The sorted set of a group's members, scored by membership expiry (ms)."""
        return f"{self.prefix}:g:{{{group}}}"

    @property
    def pattern(self) -> str:
        """SCAN pattern for every key of this prefix."""
        return f"{self.prefix}:*"

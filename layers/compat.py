"""Django Channels' name helpers, which code written for channels calls on a layer."""

from __future__ import annotations

import warnings
from typing import ClassVar

from .naming import MAX_NAME_LENGTH, check_channel, check_group, non_local_name

__all__ = ["ChannelsNames"]


class ChannelsNames:
    """channels' BaseChannelLayer name API, checked by this project's naming rules."""

    MAX_NAME_LENGTH: ClassVar[int] = MAX_NAME_LENGTH
    # channels' message template, which some user code formats with "Channel" or "Group".
    invalid_name_error: ClassVar[str] = (
        "{} name must be a valid unicode string "
        f"with length < {MAX_NAME_LENGTH} "
        "containing only ASCII alphanumerics, hyphens, underscores, or periods."
    )

    def require_valid_channel_name(self, name: str, receive: bool = False) -> bool:
        """channels' name check: raise InvalidChannelName (a TypeError) or return True."""
        check_channel(name)
        return True

    def require_valid_group_name(self, name: str) -> bool:
        """channels' group name check: raise InvalidChannelName or return True."""
        check_group(name)
        return True

    def match_type_and_length(self, name: object) -> bool:
        """channels' quick check: a str shorter than MAX_NAME_LENGTH."""
        return isinstance(name, str) and len(name) < self.MAX_NAME_LENGTH

    def valid_channel_names(self, names: list[str], receive: bool = False) -> bool:
        """channels' check of a non-empty list of channel names."""
        if not isinstance(names, list) or not names:
            raise TypeError(f"names must be a non-empty list of channel names, got {names!r}")
        for name in names:
            check_channel(name)
        return True

    def valid_channel_name(self, name: str, receive: bool = False) -> bool:
        """Deprecated in channels 4.2.2: use require_valid_channel_name."""
        warnings.warn(
            "valid_channel_name is deprecated, use require_valid_channel_name instead.",
            DeprecationWarning,
            stacklevel=2,
        )
        return self.require_valid_channel_name(name, receive)

    def valid_group_name(self, name: str) -> bool:
        """Deprecated in channels 4.2.2: use require_valid_group_name."""
        warnings.warn(
            "valid_group_name is deprecated, use require_valid_group_name instead.",
            DeprecationWarning,
            stacklevel=2,
        )
        return self.require_valid_group_name(name)

    def non_local_name(self, name: str) -> str:
        """The part of a channel name up to and including '!'."""
        return non_local_name(name)

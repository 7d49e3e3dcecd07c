"""Channel and group name rules, written once for every backend."""

from __future__ import annotations

import re
import secrets

from .exceptions import InvalidChannelName

MAX_NAME_LENGTH = 100
_BODY = r"[A-Za-z0-9\-_.]"
_CHANNEL_RE = re.compile(rf"{_BODY}+(?:!{_BODY}*)?")
_GROUP_RE = re.compile(rf"{_BODY}+")
_BAD_CHAR_RE = re.compile(r"[^A-Za-z0-9\-_.!]")
# The local parts after '!' of several channels, comma-separated (as bytes, the way
# backends' inbox entries carry them).
LOCAL_PARTS = re.compile(rf"{_BODY}*(?:,{_BODY}*)*".encode())
_ALLOWED = "ASCII letters, digits, '-', '_' and '.'"


def _check_common(kind: str, name: object) -> str:
    if not isinstance(name, str):
        raise InvalidChannelName(f"{kind} name must be a str, got {type(name).__name__}: {name!r}")
    if not name:
        raise InvalidChannelName(f"{kind} name must not be empty")
    if len(name) >= MAX_NAME_LENGTH:
        raise InvalidChannelName(
            f"{kind} name {name[:40]!r}... is {len(name)} characters; "
            f"it must be under {MAX_NAME_LENGTH}"
        )
    return name


def _explain(kind: str, name: str, allow_bang: bool) -> InvalidChannelName:
    bad = _BAD_CHAR_RE.search(name)
    if bad is not None:
        return InvalidChannelName(
            f"{kind} name {name!r} has {bad.group()!r} at position {bad.start()}; "
            f"only {_ALLOWED} are allowed"
        )
    if not allow_bang:
        return InvalidChannelName(f"{kind} name {name!r} must not contain '!'")
    if name.startswith("!"):
        return InvalidChannelName(f"{kind} name {name!r} needs at least one character before '!'")
    return InvalidChannelName(f"{kind} name {name!r} may contain at most one '!'")


# Names that passed: most traffic reuses a few names, so skip the regex for them.
_valid_channels: set[str] = set()
_VALID_CACHE_SIZE = 4096


def check_channel(name: object) -> str:
    """Return name if it is a valid channel name, else raise InvalidChannelName."""
    if type(name) is str:
        if name in _valid_channels:
            return name
        if 0 < len(name) < MAX_NAME_LENGTH and _CHANNEL_RE.fullmatch(name):
            if len(_valid_channels) >= _VALID_CACHE_SIZE:
                _valid_channels.clear()
            _valid_channels.add(name)
            return name
    _check_common("channel", name)
    raise _explain("channel", name, allow_bang=True)  # type: ignore[arg-type]


def check_group(name: object) -> str:
    """Return name if it is a valid group name, else raise InvalidChannelName."""
    if isinstance(name, str) and 0 < len(name) < MAX_NAME_LENGTH and _GROUP_RE.fullmatch(name):
        return name
    _check_common("group", name)
    raise _explain("group", name, allow_bang=False)  # type: ignore[arg-type]


def check_prefix(name: object, what: str = "prefix") -> str:
    """Validate a new_channel() or layer prefix: group-name characters, no '!'."""
    try:
        return check_group(name)
    except InvalidChannelName as exc:
        raise InvalidChannelName(str(exc).replace("group name", what, 1)) from None


def non_local_name(channel: str) -> str:
    """The part of a channel name up to and including '!' (the whole name if none)."""
    bang = channel.find("!")
    return channel if bang < 0 else channel[: bang + 1]


def owned_by(channel: str, client_id: str) -> bool:
    """True if channel is a process-local name new_local_name(..., client_id) made."""
    bang = channel.find("!")
    return bang > 0 and channel.endswith("." + client_id, 0, bang)


def new_client_id() -> str:
    """A random id for one layer instance in one process."""
    return secrets.token_hex(6)


def new_local_name(prefix: str, client_id: str) -> str:
    """A fresh process-local channel name: prefix.<client_id>!<random>."""
    return f"{prefix}.{client_id}!{secrets.token_hex(6)}"

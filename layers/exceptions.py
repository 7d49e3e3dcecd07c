"""Every error chanlayers raises, under one root: ChannelLayerError."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    _ChannelsChannelFull = Exception
else:
    # Django code written for channels_redis catches channels.exceptions.ChannelFull;
    # when channels is installed our ChannelFull is also one of those.
    try:
        from channels.exceptions import ChannelFull as _ChannelsChannelFull
    except ImportError:  # pragma: no cover - depends on the environment
        _ChannelsChannelFull = Exception

__all__ = [
    "BackendNotAvailable",
    "ChannelFull",
    "ChannelLayerClosed",
    "ChannelLayerConnectionError",
    "ChannelLayerError",
    "ConfigError",
    "InvalidChannelName",
    "InvalidMessage",
    "MessageTooLarge",
    "UndecodableMessage",
]


class ChannelLayerError(Exception):
    """Root of every chanlayers error."""


class ChannelFull(ChannelLayerError, _ChannelsChannelFull):
    """A send found the channel at its capacity (or the backing store full)."""


class MessageTooLarge(ChannelLayerError, ValueError):
    """The encoded message is over max_message_size; nothing was sent."""


class InvalidChannelName(ChannelLayerError, TypeError):
    """A channel or group name broke the naming rules (TypeError for Django compatibility)."""


class InvalidMessage(ChannelLayerError, TypeError):
    """A message is not a dict of msgpack-safe values with a str "type"."""


class ChannelLayerClosed(ChannelLayerError, RuntimeError):
    """The layer was closed; it cannot be used any more."""


class ConfigError(ChannelLayerError, ValueError):
    """A layer's configuration is wrong: unknown option, bad value, bad URL."""


class BackendNotAvailable(ConfigError):
    """The requested backend is not part of this installation or version."""


class ChannelLayerConnectionError(ChannelLayerError, ConnectionError):
    """The layer could not reach its server within the configured time."""


class UndecodableMessage(ChannelLayerError):
    """A payload failed to decrypt or decode; readers drop and count it."""

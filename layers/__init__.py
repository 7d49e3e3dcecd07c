"""chanlayers: channel layers for ASGI and Django Channels."""

from .base import ChannelLayer
from .config import get_channel_layer, layer_from_config, layer_from_url
from .exceptions import (
    BackendNotAvailable,
    ChannelFull,
    ChannelLayerClosed,
    ChannelLayerConnectionError,
    ChannelLayerError,
    ConfigError,
    InvalidChannelName,
    InvalidMessage,
    MessageTooLarge,
    UndecodableMessage,
)
from .redact import mask_log_lines
from .sync import SyncChannelLayer

mask_log_lines()  # no password reaches a log line, whatever the line quotes

__version__ = "0.1.0"

__all__ = [
    "BackendNotAvailable",
    "ChannelFull",
    "ChannelLayer",
    "ChannelLayerClosed",
    "ChannelLayerConnectionError",
    "ChannelLayerError",
    "ConfigError",
    "InvalidChannelName",
    "InvalidMessage",
    "MessageTooLarge",
    "SyncChannelLayer",
    "UndecodableMessage",
    "__version__",
    "get_channel_layer",
    "layer_from_config",
    "layer_from_url",
]

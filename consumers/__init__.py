"""consumers: Django Channels-shaped consumers and routing over any chanlayers layer.

This first slice has the generic consumers (AsyncConsumer, SyncConsumer: a message of
type 'a.b' goes to method a_b, from the client and from the consumer's own layer
channel at once) and the routers (ProtocolTypeRouter, URLRouter with route(),
ChannelNameRouter). WebSocket/HTTP consumers, the worker and communicators come later.
"""

from .base import AsyncConsumer, SyncConsumer
from .exceptions import StopConsumer
from .routing import ChannelNameRouter, ProtocolTypeRouter, Route, URLRouter, route

__all__ = [
    "AsyncConsumer",
    "ChannelNameRouter",
    "ProtocolTypeRouter",
    "Route",
    "StopConsumer",
    "SyncConsumer",
    "URLRouter",
    "route",
]

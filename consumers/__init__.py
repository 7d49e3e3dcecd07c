"""consumers: Django Channels-shaped consumers and routing over any chanlayers layer.

So far: the generic consumers (AsyncConsumer, SyncConsumer: a message of type 'a.b'
goes to method a_b, from the client and from the consumer's own layer channel at once),
the WebSocket consumers (AsyncWebsocketConsumer, WebsocketConsumer and their JSON
variants) and the routers (ProtocolTypeRouter, URLRouter with route(),
ChannelNameRouter). HTTP consumers, the worker and communicators come later.
"""

from .base import AsyncConsumer, SyncConsumer
from .exceptions import StopConsumer
from .routing import ChannelNameRouter, ProtocolTypeRouter, Route, URLRouter, route
from .websocket import (
    AsyncJsonWebsocketConsumer,
    AsyncWebsocketConsumer,
    JsonWebsocketConsumer,
    WebsocketConsumer,
)

__all__ = [
    "AsyncConsumer",
    "AsyncJsonWebsocketConsumer",
    "AsyncWebsocketConsumer",
    "ChannelNameRouter",
    "JsonWebsocketConsumer",
    "ProtocolTypeRouter",
    "Route",
    "StopConsumer",
    "SyncConsumer",
    "URLRouter",
    "WebsocketConsumer",
    "route",
]

"""consumers: Django Channels-shaped consumers and routing over any chanlayers layer.

The generic consumers (AsyncConsumer, SyncConsumer: a message of type 'a.b' goes to
method a_b, from the client and from the consumer's own layer channel at once), the
WebSocket consumers (AsyncWebsocketConsumer, WebsocketConsumer and their JSON
variants), AsyncHttpConsumer (responses, streaming, long-poll), the routers
(ProtocolTypeRouter, URLRouter with route(), ChannelNameRouter), the Origin checks
(OriginValidator, AllowedHostsOriginValidator), the worker
(consumers.worker, `chanlayers worker`) and the communicators (consumers.testing).
"""

from .base import AsyncConsumer, SyncConsumer
from .exceptions import AcceptConnection, DenyConnection, RouteNotFound, StopConsumer
from .http import AsyncHttpConsumer
from .routing import ChannelNameRouter, ProtocolTypeRouter, Route, URLRouter, route
from .security import AllowedHostsOriginValidator, OriginValidator
from .websocket import (
    AsyncJsonWebsocketConsumer,
    AsyncWebsocketConsumer,
    JsonWebsocketConsumer,
    WebsocketConsumer,
)

__all__ = [
    "AcceptConnection",
    "AllowedHostsOriginValidator",
    "AsyncConsumer",
    "AsyncHttpConsumer",
    "AsyncJsonWebsocketConsumer",
    "AsyncWebsocketConsumer",
    "ChannelNameRouter",
    "DenyConnection",
    "JsonWebsocketConsumer",
    "OriginValidator",
    "ProtocolTypeRouter",
    "Route",
    "RouteNotFound",
    "StopConsumer",
    "SyncConsumer",
    "URLRouter",
    "WebsocketConsumer",
    "route",
]

"""Build layers from CHANNEL_LAYERS dicts and URLs; get_channel_layer(alias)."""

from __future__ import annotations

import importlib
import json
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from .base import ChannelLayer
from .exceptions import BackendNotAvailable, ConfigError
from .options import options_from_query
from .redact import redact_url

__all__ = [
    "BACKENDS",
    "DEFAULT_ALIAS",
    "get_channel_layer",
    "layer_from_config",
    "layer_from_url",
    "load_backend",
    "options_from_query",
    "reset_channel_layers",
]

DEFAULT_ALIAS = "default"


@dataclass(frozen=True)
class Backend:
    """Where a backend lives and what it needs installed."""

    path: str
    extra: str | None = None


_INMEMORY = Backend("layers.inmemory.InMemoryChannelLayer")
_IPC = Backend("layers.ipc.IPCChannelLayer")
_REDIS = Backend("layers.redis.RedisChannelLayer", "redis")
_RABBITMQ = Backend("layers.rabbitmq.RabbitMQChannelLayer", "rabbitmq")

BACKENDS: dict[str, Backend] = {
    "memory": _INMEMORY,
    "inmemory": _INMEMORY,
    "ipc": _IPC,
    "redis": _REDIS,
    "rediss": _REDIS,
    "redis+sentinel": _REDIS,
    "redis+cluster": _REDIS,
    "unix": _REDIS,
    "amqp": _RABBITMQ,
    "amqps": _RABBITMQ,
}
"""URL scheme -> backend. Backends not yet in this version raise BackendNotAvailable."""


def install_hint(extra: str) -> str:
    """How to install an extra, from PyPI and from a source checkout."""
    return f"pip install 'chanlayers[{extra}]', or from a checkout pip install -e '.[{extra}]'"


def load_backend(path: str) -> type[ChannelLayer]:
    """Import a layer class from its dotted path, with a clear error if it is not there."""
    if not isinstance(path, str) or "." not in path:
        raise ConfigError(
            f"BACKEND must be a dotted path like 'layers.redis.RedisChannelLayer', got {path!r}"
        )
    module_name, _, class_name = path.rpartition(".")
    extra = next((b.extra for b in BACKENDS.values() if b.path == path), None)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        missing = exc.name or ""
        if module_name == missing or module_name.startswith(missing + "."):
            raise BackendNotAvailable(
                f"backend {path!r} is not available: module {exc.name!r} does not exist; "
                f"available here: {', '.join(available_backends())}"
            ) from None
        hint = f" ({install_hint(extra)})" if extra else ""
        raise BackendNotAvailable(
            f"backend {path!r} needs {exc.name!r}, which is not installed{hint}"
        ) from None
    cls = getattr(module, class_name, None)
    if not (isinstance(cls, type) and issubclass(cls, ChannelLayer)):
        # Django Channels' own layers are classes too, just not ours: let them through.
        if isinstance(cls, type):
            return cls
        raise BackendNotAvailable(
            f"backend {path!r} is not available: {module_name} has no {class_name}; "
            f"available here: {', '.join(available_backends())}"
        )
    return cls


def available_backends() -> list[str]:
    """The URL schemes whose backend can be loaded in this installation."""
    found = []
    for scheme, backend in BACKENDS.items():
        module_name, _, class_name = backend.path.rpartition(".")
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        if hasattr(module, class_name):
            found.append(f"{scheme}://")
    return found


def layer_from_url(url: str, **overrides: Any) -> ChannelLayer:
    """Build a layer from a URL such as memory://, redis://host:6379/0, amqp://..."""
    if not isinstance(url, str):
        raise ConfigError(f"a channel layer URL must be a str, got {type(url).__name__}")
    scheme = urlsplit(url).scheme.lower()
    backend = BACKENDS.get(scheme)
    if backend is None:
        raise ConfigError(
            f"unknown channel layer URL scheme {scheme!r} in {redact_url(url)!r}; "
            f"known schemes: {', '.join(s + '://' for s in BACKENDS)}"
        )
    cls = load_backend(backend.path)
    from_url = getattr(cls, "from_url", None)
    if from_url is not None:
        layer: ChannelLayer = from_url(url, **overrides)
        return layer
    return cls(**{**options_from_query(urlsplit(url).query), **overrides})


def layer_from_config(config: object) -> ChannelLayer:
    """Build a layer from a CHANNEL_LAYERS entry: a dict with BACKEND and CONFIG, or a URL."""
    if isinstance(config, str):
        return layer_from_url(config)
    if not isinstance(config, Mapping):
        raise ConfigError(f"a channel layer config must be a dict or a URL, got {config!r}")
    if "BACKEND" not in config:
        raise ConfigError(f"channel layer config {dict(config)!r} has no BACKEND")
    options = config.get("CONFIG")
    if options is None:
        options = {}
    if not isinstance(options, Mapping):
        raise ConfigError(f"CONFIG must be a dict, got {type(options).__name__}")
    return load_backend(config["BACKEND"])(**options)


def _django_layers() -> Mapping[str, Any] | None:
    if not os.environ.get("DJANGO_SETTINGS_MODULE"):
        try:
            from django.conf import settings
        except ImportError:
            return None
        if not settings.configured:
            return None
    else:
        from django.conf import settings
    layers = getattr(settings, "CHANNEL_LAYERS", None)
    return layers if isinstance(layers, Mapping) else None


def _env_layers() -> Mapping[str, Any] | None:
    raw = os.environ.get("CHANNEL_LAYERS")
    if not raw:
        return None
    try:
        layers = json.loads(raw)
    except ValueError as exc:
        raise ConfigError(f"the CHANNEL_LAYERS environment variable is not JSON: {exc}") from None
    if not isinstance(layers, dict):
        raise ConfigError("the CHANNEL_LAYERS environment variable must be a JSON object")
    return layers


def _resolve(alias: str) -> ChannelLayer:
    for source, read in (("Django settings", _django_layers), ("$CHANNEL_LAYERS", _env_layers)):
        layers = read()
        if layers is not None:
            if alias not in layers:
                raise ConfigError(
                    f"no channel layer {alias!r} in CHANNEL_LAYERS from {source}; "
                    f"it has {', '.join(map(repr, layers)) or 'none'}"
                )
            return layer_from_config(layers[alias])
    url = os.environ.get("CHANNEL_LAYER_URL")
    if alias != DEFAULT_ALIAS:
        raise ConfigError(
            f"no channel layer {alias!r}: CHANNEL_LAYERS is not set, and CHANNEL_LAYER_URL "
            "and the in-memory fallback only serve the 'default' alias"
        )
    return layer_from_url(url or "memory://")


_layers: dict[str, ChannelLayer] = {}
_layers_lock = threading.Lock()


def _from_channels(alias: str) -> ChannelLayer | None:
    """channels' own cached layer for alias, when Django and channels both hold it."""
    layers = _django_layers()
    if layers is None or alias not in layers:
        return None
    try:
        from channels.layers import channel_layers
    except ImportError:
        return None
    # One object per alias whichever API asks, and channels' cache already follows
    # override_settings; a layer closed by someone is replaced rather than handed out.
    layer: ChannelLayer = channel_layers[alias]
    if getattr(layer, "closed", False):
        layer = channel_layers.make_backend(alias)
        channel_layers.set(alias, layer)
    return layer


def get_channel_layer(alias: str = DEFAULT_ALIAS) -> ChannelLayer:
    """The layer for alias, made once per process from Django, env JSON, env URL or memory."""
    shared = _from_channels(alias)
    if shared is not None:
        return shared
    with _layers_lock:
        layer = _layers.get(alias)
        if layer is None or layer.closed:
            layer = _layers[alias] = _resolve(alias)
        return layer


def reset_channel_layers() -> None:
    """Forget cached layers (tests and configuration reloads)."""
    with _layers_lock:
        _layers.clear()

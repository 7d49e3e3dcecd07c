"""The broker's URL: host or url, TLS settings, and the options in its query."""

from __future__ import annotations

import ssl
from typing import Any
from urllib.parse import urlsplit

from ..exceptions import ConfigError
from ..options import options_from_query
from ..redact import redact_url

__all__ = ["DEFAULT_URL", "check_tls", "resolve_url", "split_query", "ssl_context"]

DEFAULT_URL = "amqp://guest:guest@127.0.0.1:5672/"
# What aiormq (and aio-pika's robust connection) read from an AMQP URL's query; a key
# that is neither theirs nor ours is a typo, which they would ignore without a word.
_CLIENT_URL_OPTIONS = frozenset(
    {"auth", "cadata", "cafile", "capath", "certfile", "heartbeat", "keyfile", "name"}
    | {"no_verify_ssl", "timeout", "fail_fast", "reconnect_interval"}
)


def ssl_context(name: str, value: object) -> ssl.SSLContext | None:
    """The ssl_context option: an ssl.SSLContext or None."""
    if value is not None and not isinstance(value, ssl.SSLContext):
        raise ConfigError(f"{name} must be an ssl.SSLContext, got {value!r}")
    return value


def resolve_url(host: object, url: object) -> str:
    """The URL from the host or url option (a bare host name gets guest credentials)."""
    if host is not None and url is not None:
        raise ConfigError("give either host or url, not both")
    chosen = url if url is not None else host
    if chosen is None:
        return DEFAULT_URL
    if not isinstance(chosen, str) or not chosen:
        raise ConfigError(f"host/url must be a non-empty str, got {chosen!r}")
    if "://" not in chosen:
        return f"amqp://guest:guest@{chosen}/"
    scheme = urlsplit(chosen).scheme
    if scheme not in ("amqp", "amqps"):
        raise ConfigError(
            f"a RabbitMQ URL starts with amqp:// or amqps://, got {redact_url(chosen)!r}"
        )
    return chosen


_TLS_URL_OPTIONS = frozenset({"cafile", "capath", "cadata", "certfile", "keyfile", "no_verify_ssl"})


def check_tls(url: str, ssl_context: object) -> None:
    """Refuse TLS settings on an amqp:// URL, which would connect in plaintext anyway."""
    parts = urlsplit(url)
    if parts.scheme == "amqps":
        return
    given = sorted(
        {p.partition("=")[0] for p in parts.query.split("&") if p} & _TLS_URL_OPTIONS
    ) + (["ssl_context"] if ssl_context is not None else [])
    if given:
        raise ConfigError(
            f"{redact_url(url)!r} is plaintext (amqp://) but TLS settings were given "
            f"({', '.join(given)}): use an amqps:// URL for TLS"
        )


def split_query(url: str, known: set[str]) -> tuple[str, dict[str, Any]]:
    """(url with only aiormq's query options, the layer options known to the layer)."""
    base, _, query = url.partition("?")
    ours: dict[str, Any] = {}
    theirs = []
    for part in filter(None, query.split("&")):
        key = part.partition("=")[0]
        if key in known:
            ours.update(options_from_query(part))
        elif key in _CLIENT_URL_OPTIONS:
            theirs.append(part)
        else:
            raise ConfigError(
                f"unknown option {key!r} in the URL query: not a layer option "
                f"({', '.join(sorted(known))}) nor one of aiormq's or aio-pika's "
                f"({', '.join(sorted(_CLIENT_URL_OPTIONS))})"
            )
    return base + ("?" + "&".join(theirs) if theirs else ""), ours

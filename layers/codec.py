"""Message <-> bytes: validation, msgpack, size limit, optional Fernet encryption."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable, Mapping
from typing import Any, NoReturn

import msgpack
from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from .exceptions import ConfigError, InvalidMessage, MessageTooLarge, UndecodableMessage

__all__ = ["DEFAULT_MAX_MESSAGE_SIZE", "MAX_DEPTH", "Codec", "validate_message"]

DEFAULT_MAX_MESSAGE_SIZE = 1 << 20
MAX_DEPTH = 64
_INT_MIN = -(1 << 63)
_INT_MAX = (1 << 64) - 1
_SCALARS = (str, bytes, bytearray, float, type(None))
Message = dict[str, Any]


def _path(parts: tuple[str | int, ...]) -> str:
    return "message" + "".join(f"[{p!r}]" for p in parts)


def _check_value(value: object, parts: tuple[str | int, ...]) -> None:
    # bool is an int, and both are exact on the wire; only the int range needs a check.
    if isinstance(value, int):
        if not _INT_MIN <= value <= _INT_MAX:
            raise InvalidMessage(f"{_path(parts)} = {value} is outside the 64-bit integer range")
        return
    if isinstance(value, _SCALARS):
        return
    if len(parts) >= MAX_DEPTH:
        raise InvalidMessage(f"{_path(parts[:3])}... nests deeper than {MAX_DEPTH} levels")
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise InvalidMessage(
                    f"{_path(parts)} has a key {key!r} of type {type(key).__name__}; "
                    "keys must be str"
                )
            _check_value(item, (*parts, key))
        return
    if isinstance(value, list | tuple):
        for index, item in enumerate(value):
            _check_value(item, (*parts, index))
        return
    raise InvalidMessage(
        f"{_path(parts)} is of type {type(value).__name__}; allowed are str, bytes, int, "
        "float, bool, None, and lists or dicts of these"
    )


_EXACT_SCALARS = frozenset({str, bytes, float, bool, type(None)})
# Stands for "no key" beside list items; None cannot, since {None: 1} must be refused.
_NO_KEY = object()


def _fast_ok(value: object, depth: int) -> bool:
    """True for the common case of exact builtin types; False means 'look closer'."""
    if depth >= MAX_DEPTH:
        return False
    kind = type(value)
    if kind is dict:
        items: Iterable[tuple[object, object]] = value.items()  # type: ignore[attr-defined]
    elif kind is list or kind is tuple:
        items = ((_NO_KEY, item) for item in value)  # type: ignore[attr-defined]
    else:
        return False
    for key, item in items:
        if key is not _NO_KEY and type(key) is not str:
            return False
        item_kind = type(item)
        if item_kind in _EXACT_SCALARS:
            continue
        if item_kind is int:
            if not _INT_MIN <= item <= _INT_MAX:  # type: ignore[operator]
                return False
        elif not _fast_ok(item, depth + 1):
            return False
    return True


def validate_message(message: object) -> Message:
    """Return message if it can travel over a channel layer, else raise InvalidMessage."""
    if type(message) is dict and type(message.get("type")) is str and _fast_ok(message, 0):
        return message
    # Subclasses (Django's SafeString...) and every error take the careful path.
    if not isinstance(message, dict):
        raise InvalidMessage(f"message must be a dict, got {type(message).__name__}")
    if not isinstance(message.get("type"), str):
        raise InvalidMessage('message must have a "type" key whose value is a str')
    _check_value(message, ())
    return message


def _refuse_ext(code: int, data: bytes) -> NoReturn:
    raise ValueError(f"msgpack ext type {code} is refused")


def _fernet_key(key: str | bytes) -> bytes:
    raw = key.encode() if isinstance(key, str) else key
    if not isinstance(raw, bytes) or not raw:
        raise ConfigError("symmetric_encryption_keys must hold non-empty str or bytes keys")
    # Any secret string works as a key, as in channels_redis: stretch it to a Fernet key.
    return base64.urlsafe_b64encode(hashlib.sha256(raw).digest())


class Codec:
    """Turns messages into bytes and back; the only place that knows the wire format."""

    def __init__(
        self,
        *,
        max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
        symmetric_encryption_keys: Iterable[str | bytes] | None = None,
    ) -> None:
        if isinstance(max_message_size, bool) or not isinstance(max_message_size, int):
            raise ConfigError(f"max_message_size must be an int, got {max_message_size!r}")
        if max_message_size < 64:
            raise ConfigError(f"max_message_size must be at least 64 bytes, got {max_message_size}")
        self.max_message_size = max_message_size
        self._fernet: MultiFernet | None = None
        if symmetric_encryption_keys is not None:
            if isinstance(symmetric_encryption_keys, str | bytes | Mapping):
                raise ConfigError("symmetric_encryption_keys must be a list of keys, not one key")
            keys = [Fernet(_fernet_key(k)) for k in symmetric_encryption_keys]
            if not keys:
                raise ConfigError("symmetric_encryption_keys is empty; omit it to disable")
            # The first key encrypts; any key decrypts, so keys can be rotated in.
            self._fernet = MultiFernet(keys)

    @property
    def encrypted(self) -> bool:
        """True when payloads are encrypted."""
        return self._fernet is not None

    def encode(self, message: object) -> bytes:
        """Validate and encode a message; raise InvalidMessage or MessageTooLarge."""
        data: bytes = msgpack.packb(validate_message(message), use_bin_type=True)
        if self._fernet is not None:
            data = self._fernet.encrypt(data)
        if len(data) > self.max_message_size:
            raise MessageTooLarge(
                f"message of type {message['type']!r} is {len(data)} bytes encoded; "  # type: ignore[index]
                f"max_message_size is {self.max_message_size}"
            )
        return data

    def decode(self, payload: bytes) -> Message:
        """Decode a payload; raise UndecodableMessage for anything foreign or tampered."""
        if self._fernet is not None:
            try:
                payload = self._fernet.decrypt(payload)
            except (InvalidToken, TypeError, ValueError):
                raise UndecodableMessage(
                    "payload failed decryption (wrong key or tampered)"
                ) from None
        try:
            message = msgpack.unpackb(
                payload, raw=False, strict_map_key=True, ext_hook=_refuse_ext, max_ext_len=0
            )
        except (ValueError, TypeError) as exc:
            raise UndecodableMessage(f"payload is not a valid message: {exc}") from None
        if not isinstance(message, dict) or not isinstance(message.get("type"), str):
            raise UndecodableMessage('payload is not a dict with a str "type"')
        return message

"""Message <-> bytes: validation, msgpack, size limit, optional Fernet encryption."""

from __future__ import annotations

import base64
import hashlib
import math
from collections.abc import Iterable, Mapping
from typing import Any, NoReturn

import msgpack
from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from .exceptions import ConfigError, InvalidMessage, MessageTooLarge, UndecodableMessage

__all__ = [
    "CHANNEL",
    "CLOCK_SKEW",
    "DEFAULT_MAX_MESSAGE_SIZE",
    "GROUP",
    "MAX_DEPTH",
    "MIN_SECRET_BYTES",
    "Codec",
    "Destination",
    "validate_message",
]

DEFAULT_MAX_MESSAGE_SIZE = 1 << 20
MIN_SECRET_BYTES = 16
# Ciphertext older than the layer's expiry plus this is refused: no layer delivers a
# message that late, so such a payload can only be a replay. It allows for senders'
# clocks running behind the receiver's.
CLOCK_SKEW = 60.0
MAX_DEPTH = 64
_INT_MIN = -(1 << 63)
_INT_MAX = (1 << 64) - 1
_SCALARS = (str, bytes, bytearray, float, type(None))
Message = dict[str, Any]

CHANNEL, GROUP = "c", "g"
Destination = tuple[str, str]
"""Where an encrypted message was sent: (CHANNEL or GROUP, its name); ("", "") for a
payload sealed without one, which no channel accepts."""
_UNBOUND: Destination = ("", "")
# A kind letter, a name (under 100 characters), the newline.
_LONGEST_HEAD = 128


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
    if len(raw) < MIN_SECRET_BYTES:
        # The key itself is a secret: say how long it is, never what it is.
        raise ConfigError(
            f"symmetric_encryption_keys: a key of {len(raw)} bytes is too short to be a "
            f"secret (at least {MIN_SECRET_BYTES}); use Django's SECRET_KEY, or make one "
            "with: python -c 'import secrets; print(secrets.token_urlsafe(32))'"
        )
    # Any secret string works as a key, as in channels_redis: stretch it to a Fernet key.
    return base64.urlsafe_b64encode(hashlib.sha256(raw).digest())


class Codec:
    """Turns messages into bytes and back; the only place that knows the wire format."""

    def __init__(
        self,
        *,
        max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
        symmetric_encryption_keys: Iterable[str | bytes] | None = None,
        max_age: float | None = None,
    ) -> None:
        if isinstance(max_message_size, bool) or not isinstance(max_message_size, int):
            raise ConfigError(f"max_message_size must be an int, got {max_message_size!r}")
        if max_message_size < 64:
            raise ConfigError(f"max_message_size must be at least 64 bytes, got {max_message_size}")
        self.max_message_size = max_message_size
        # Whole seconds (Fernet's timestamps are), rounded up so nothing legit is refused.
        self._ttl = None if max_age is None else math.ceil(max_age)
        self._fernet: MultiFernet | None = None
        self._last: _Decoded | None = None  # see _Decoded
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

    def encode(
        self, message: object, channel: str | None = None, *, group: str | None = None
    ) -> bytes:
        """Validate and encode a message for channel (or group); raise InvalidMessage or
        MessageTooLarge.

        Encrypted, the destination travels inside the envelope (``c<name>\\n`` or
        ``g<name>\\n`` before the msgpack body), so a receiver can tell a ciphertext
        replayed onto another channel from one sent there (see unseal).
        """
        data: bytes = msgpack.packb(validate_message(message), use_bin_type=True)
        if self._fernet is not None:
            if group is not None:
                head = GROUP + group
            elif channel is not None:
                head = CHANNEL + channel
            else:
                head = "-"
            data = self._fernet.encrypt(head.encode("ascii") + b"\n" + data)
        if len(data) > self.max_message_size:
            raise MessageTooLarge(
                f"message of type {message['type']!r} is {len(data)} bytes encoded; "  # type: ignore[index]
                f"max_message_size is {self.max_message_size}"
            )
        return data

    def encode_for_group(self, message: object, group: str) -> bytes:
        """encode(message, group=group)."""
        return self.encode(message, group=group)

    def decode(self, payload: bytes, now: float | None = None) -> Message:
        """Decode a payload, wherever it was sent; see unseal."""
        return self.unseal(payload, now)[1]

    def unseal(
        self, payload: bytes, now: float | None = None
    ) -> tuple[Destination | None, Message]:
        """Decode a payload into (its destination, the message); raise UndecodableMessage
        for anything foreign or tampered. The destination is None when not encrypted
        (a plaintext one would prove nothing).

        The receiver's own limits apply, whoever wrote the payload (anyone with write
        access to the backend can skip the sender's checks): its size, and the rules
        every sent message meets (str keys, nesting depth, value types). now (the wall
        clock, by default) is what a ciphertext's age is measured against.
        """
        last = self._last
        if last is not None and last.payload is payload and now is None:
            return last.destination, last.again()
        if len(payload) > self.max_message_size:
            raise UndecodableMessage(
                f"payload is {len(payload)} bytes, over max_message_size ({self.max_message_size})"
            )
        destination: Destination | None = None
        plain = payload
        if self._fernet is not None:
            destination, plain = self._open(payload, now)
        try:
            message = _unpack(plain)
        except (ValueError, TypeError, RecursionError) as exc:
            raise UndecodableMessage(f"payload is not a valid message: {exc}") from None
        try:
            checked = validate_message(message)
        except (InvalidMessage, RecursionError) as exc:
            raise UndecodableMessage(f"payload breaks the message rules: {exc}") from None
        self._last = _Decoded(payload, plain, destination)
        return destination, checked

    def _open(self, payload: bytes, now: float | None) -> tuple[Destination, bytes]:
        """Decrypt payload; split the destination off the msgpack body."""
        assert self._fernet is not None
        try:
            if self._ttl is None:
                payload = self._fernet.decrypt(payload)
            elif now is None:
                payload = self._fernet.decrypt(payload, ttl=self._ttl)
            else:
                payload = self._fernet.decrypt_at_time(payload, self._ttl, int(now))
        except (InvalidToken, TypeError, ValueError):
            raise UndecodableMessage(
                "payload failed decryption (wrong key, tampered, or older than "
                "the layer's expiry: a replay)"
            ) from None
        newline = payload.find(b"\n", 0, _LONGEST_HEAD)
        head = payload[:newline].decode("ascii", errors="replace")
        if newline < 0 or head[:1] not in (CHANNEL, GROUP, "-"):
            raise UndecodableMessage("payload names no destination (an unknown format)")
        if head[0] == "-":
            return _UNBOUND, payload[newline + 1 :]
        return (head[0], head[1:]), payload[newline + 1 :]


def _unpack(plain: bytes) -> Any:
    return msgpack.unpackb(
        plain, raw=False, strict_map_key=True, ext_hook=_refuse_ext, max_ext_len=0
    )


_FLAT = _EXACT_SCALARS | {int}


class _Decoded:
    """A payload that passed unseal(), and what unsealing that same object again reuses.

    Every member of a group in one process receives the same payload object: its
    decryption and checks are done once, and each receiver still gets a dict of its own
    (a copy of a template when the message holds only immutable values, else unpacked).
    """

    __slots__ = ("destination", "payload", "plain", "template")

    def __init__(self, payload: bytes, plain: bytes, destination: Destination | None) -> None:
        self.payload = payload
        self.plain = plain
        self.destination = destination
        self.template: dict[str, Any] | None = None

    def again(self) -> Message:
        """A fresh copy of the message, no check repeated."""
        template = self.template
        if template is not None:
            return dict(template)
        message: dict[str, Any] = _unpack(self.plain)
        if all(type(value) in _FLAT for value in message.values()):
            self.template = dict(message)
        return message

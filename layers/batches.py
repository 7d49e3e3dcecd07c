"""Batches of (name, message) items: every item checked and encoded before any is sent."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from .codec import Message
from .exceptions import InvalidMessage

__all__ = ["encode_batch"]


def encode_batch(
    items: Iterable[tuple[str, Message]],
    check: Callable[[str], str],
    encode: Callable[[Message, str], bytes],
    what: str,
) -> list[tuple[str, bytes]]:
    """Validate and encode (encode(message, name)) every (name, message) item before
    anything is sent; an error names the index of the item that caused it."""
    encoded: list[tuple[str, bytes]] = []
    for index, item in enumerate(items):
        if not isinstance(item, tuple | list) or len(item) != 2:
            raise InvalidMessage(
                f"{what} item {index} must be a (name, message) pair, got {item!r:.80}"
            )
        try:
            name = check(item[0])
            encoded.append((name, encode(item[1], name)))
        except (TypeError, ValueError) as exc:
            raise _naming_index(exc, f"{what} item {index}") from None
    return encoded


def _naming_index(exc: Exception, where: str) -> Exception:
    """exc again, its message prefixed with where (same type, so callers catch it alike)."""
    try:
        return type(exc)(f"{where}: {exc}")
    except Exception:  # an exception type whose constructor wants more than a message
        exc.add_note(where)
        return exc

"""A message carrying a secret, and where its plaintext shows in some bytes (wire, storage)."""

from __future__ import annotations

from typing import Any

__all__ = ["MESSAGE", "NEEDLES", "SECRET", "SECRET_KEY_NAME", "plaintext_in"]

SECRET = "4111-1111-1111-1111"
SECRET_KEY_NAME = "card_number"
MESSAGE: dict[str, Any] = {"type": "payment", SECRET_KEY_NAME: SECRET, "raw": SECRET.encode()}
NEEDLES = (SECRET.encode(), SECRET_KEY_NAME.encode(), b"payment")
"""The secret, its key name and the message type: none may show once encrypted."""


def plaintext_in(blob: bytes) -> list[bytes]:
    """The NEEDLES that appear in blob."""
    return [needle for needle in NEEDLES if needle in blob]

"""Secrets out of errors and log lines: passwords in URLs and options are masked.

Every error that shows a server's URL, a hosts entry, or a third-party exception's
text that may quote one passes through here first. Log lines are masked once more, by
a filter on every logger chanlayers writes to (mask_log_lines, called on import of
layers), so a line that quotes an exception needs no care of its own.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Any

__all__ = ["MASK", "mask_log_lines", "redact", "redact_options", "redact_url"]

MASK = "***"
# scheme://user:password@ (greedy up to the netloc's last "@", as urlsplit reads it).
_CREDENTIALS = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.-]*://)(?P<creds>[^/\s?#'\"]*)@")
# password=... in a query string or a repr of options.
_QUERY = re.compile(r"(?P<key>\b(?:password|passwd|pass)=)[^&\s'\",)]*", re.IGNORECASE)
_SECRET_KEYS = ("password", "passwd", "secret", "token", "key")


def _mask_credentials(match: re.Match[str]) -> str:
    user, colon, _ = match["creds"].partition(":")
    return f"{match['head']}{user}:{MASK}@" if colon else match[0]


def redact(text: str) -> str:
    """text with the password of every URL in it, and of password=... pairs, masked."""
    return _QUERY.sub(rf"\g<key>{MASK}", _CREDENTIALS.sub(_mask_credentials, text))


def redact_url(url: str) -> str:
    """url without its password (user and host are kept: they say which server)."""
    return redact(url)


def _secret(key: object) -> bool:
    return isinstance(key, str) and any(word in key.lower() for word in _SECRET_KEYS)


def redact_options(value: Any) -> Any:
    """Options (a hosts entry, a dict of them, a list, a URL) fit to show: secrets masked."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, Mapping):
        return {
            k: MASK if _secret(k) and v is not None else redact_options(v) for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return type(value)(redact_options(v) for v in value)
    return value


# Every logger chanlayers writes to (a logger's filters do not reach its children).
LOGGERS = (
    "layers",
    "layers.ipc",
    "layers.redis",
    "layers.rabbitmq",
    "consumers",
    "consumers.worker",
)


class _Masking(logging.Filter):
    """Masks passwords in a record's message and in its exception's text."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = redact(message)
        if masked != message:
            record.msg, record.args = masked, None
        if record.exc_info and not record.exc_text:
            # Formatters use exc_text when it is set, so the traceback is masked too.
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
        return True


_FILTER = _Masking()


def mask_log_lines() -> None:
    """Put the masking filter on every logger chanlayers writes to (idempotent)."""
    for name in LOGGERS:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)

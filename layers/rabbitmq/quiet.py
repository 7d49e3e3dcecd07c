"""aiormq's log line about a failed first connect, which this layer reports itself.

aiormq logs "error when creating transport" at ERROR and then raises; the layer turns
that error into one ChannelLayerConnectionError, so the log line would only repeat it
on stderr around the clear message. Reconnects of a connection that once worked run
in aio-pika's own tasks after the first connect ended: those failures still show.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
from collections.abc import Iterator

__all__ = ["first_connect"]

_TRANSPORT_FAILED = "error when creating transport: %r"


class _Attempt:
    """One first connect; tasks it starts share this object, so ending it ends theirs."""

    active = True


_ATTEMPT: contextvars.ContextVar[_Attempt | None] = contextvars.ContextVar(
    "chanlayers_rabbitmq_first_connect", default=None
)


class _ReportedByTheLayer(logging.Filter):
    """Demote aiormq's failed-transport error to debug while the layer's connect raises it."""

    def filter(self, record: logging.LogRecord) -> bool:
        attempt = _ATTEMPT.get()
        if record.msg == _TRANSPORT_FAILED and attempt is not None and attempt.active:
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return True


logging.getLogger("aiormq.connection").addFilter(_ReportedByTheLayer())


@contextlib.contextmanager
def first_connect() -> Iterator[None]:
    """Inside: a failed transport is the caller's error to report, not aiormq's to log."""
    attempt = _Attempt()
    token = _ATTEMPT.set(attempt)
    try:
        yield
    finally:
        attempt.active = False
        _ATTEMPT.reset(token)

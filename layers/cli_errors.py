"""The command line's errors: what each one's exit status is, and its one line."""

from __future__ import annotations

from .exceptions import InvalidChannelName, InvalidMessage
from .redact import redact

__all__ = ["CommandError", "CommandFailed", "UsageError", "error_line", "exit_status"]


class CommandError(Exception):
    """A command failed in a way already explained by its message; status is the exit code."""

    status = 1

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        if status is not None:
            self.status = status


class UsageError(CommandError):
    """Bad arguments or input (exit status 2)."""

    status = 2


class CommandFailed(CommandError):
    """The command ran but did not do what was asked (exit status 1)."""


def exit_status(exc: BaseException) -> int:
    """2 for bad input (usage, JSON, names, messages), else 1."""
    if isinstance(exc, CommandError):
        return exc.status
    return 2 if isinstance(exc, InvalidChannelName | InvalidMessage) else 1


def error_line(exc: BaseException) -> str:
    """What went wrong, as the one line after 'chanlayers: ' (passwords masked)."""
    if isinstance(exc, CommandError):
        return redact(str(exc))
    return redact(f"{type(exc).__name__}: {exc}")

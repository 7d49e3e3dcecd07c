"""What the chanlayers subcommands do: layer selection, the JSON form of messages, commands."""

from __future__ import annotations

import argparse
import base64
import binascii
import contextlib
import importlib
import json
import math
import os
import sys
import time
from collections.abc import Iterator
from typing import Any, TextIO
from urllib.parse import urlsplit, urlunsplit

from .exceptions import ChannelLayerError, InvalidChannelName, InvalidMessage
from .naming import check_channel, check_group
from .sync import SyncChannelLayer

__all__ = [
    "COMMANDS",
    "CommandError",
    "CommandFailed",
    "UsageError",
    "error_line",
    "exit_status",
    "from_json",
    "positive_count",
    "positive_seconds",
    "to_json",
    "use_settings",
]


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
    """What went wrong, as the one line after 'chanlayers: '."""
    if isinstance(exc, CommandError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


# -- the JSON form of messages ---------------------------------------------------------

BYTES_KEY = "$bytes"
DICT_KEY = "$dict"
_RESERVED = frozenset({BYTES_KEY, DICT_KEY})


def to_json(value: Any) -> Any:
    """A message value as JSON-able data: bytes become {"$bytes": "<base64>"}.

    A dict that would read back as one of the special forms (its only key is
    "$bytes" or "$dict") is wrapped as {"$dict": {...}}, so from_json(to_json(m)) == m.
    """
    if isinstance(value, bytes | bytearray):
        return {BYTES_KEY: base64.b64encode(value).decode("ascii")}
    if isinstance(value, dict):
        plain = {key: to_json(item) for key, item in value.items()}
        if len(plain) == 1 and next(iter(plain)) in _RESERVED:
            return {DICT_KEY: plain}
        return plain
    if isinstance(value, list | tuple):
        return [to_json(item) for item in value]
    return value


def from_json(value: Any, path: str = "message") -> Any:
    """Undo to_json: {"$bytes": "<base64>"} becomes bytes, {"$dict": {...}} a plain dict."""
    if isinstance(value, dict):
        if len(value) == 1:
            key, item = next(iter(value.items()))
            if key == BYTES_KEY:
                if not isinstance(item, str):
                    raise UsageError(f'{path} = {{"$bytes": ...}} needs a base64 string')
                try:
                    return base64.b64decode(item, validate=True)
                except (binascii.Error, ValueError):
                    raise UsageError(f"{path}: {item[:40]!r} is not valid base64") from None
            if key == DICT_KEY:
                if not isinstance(item, dict):
                    raise UsageError(f'{path} = {{"$dict": ...}} needs a JSON object')
                return {k: from_json(v, f"{path}[{k!r}]") for k, v in item.items()}
        return {k: from_json(v, f"{path}[{k!r}]") for k, v in value.items()}
    if isinstance(value, list):
        return [from_json(item, f"{path}[{i}]") for i, item in enumerate(value)]
    return value


def parse_message(text: str, where: str) -> dict[str, Any]:
    """One message from its JSON text; where says what to blame ('stdin line 3')."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(f"{where}: not JSON: {exc.msg} at column {exc.colno}") from None
    except RecursionError:
        raise UsageError(f"{where}: the JSON nests too deeply") from None
    if not isinstance(value, dict):
        raise UsageError(f"{where}: a message must be a JSON object, got {type(value).__name__}")
    try:
        message: dict[str, Any] = from_json(value)
    except UsageError as exc:
        raise UsageError(str(exc) if where == "message" else f"{where}: {exc}") from None
    return message


def dump_message(message: dict[str, Any]) -> str:
    """One message as one line of JSON (bytes as {"$bytes": "<base64>"})."""
    return json.dumps(to_json(message))


# -- which layer -------------------------------------------------------------------------


def _redact(url: str) -> str:
    """url without its password."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rpartition("@")[2]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


def _use_settings(module: str) -> None:
    """Point Django at module (imported from the current directory or PYTHONPATH)."""
    try:
        import django
    except ImportError:
        raise UsageError(
            "--settings needs Django, which is not installed (pip install 'chanlayers[django]')"
        ) from None
    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name and (module == exc.name or module.startswith(exc.name + ".")):
            raise UsageError(f"--settings: no module named {module!r}") from None
        raise CommandFailed(f"--settings: importing {module!r} failed: {exc}") from None
    except Exception as exc:
        raise CommandFailed(
            f"--settings: importing {module!r} failed: {type(exc).__name__}: {exc}"
        ) from None
    os.environ["DJANGO_SETTINGS_MODULE"] = module
    try:
        django.setup()
    except Exception as exc:
        raise CommandFailed(f"--settings {module}: {type(exc).__name__}: {exc}") from None


use_settings = _use_settings


def describe_layer(args: argparse.Namespace) -> str:
    """Which layer the arguments and the environment select, in words (no passwords)."""
    if args.layer is not None:
        return _redact(args.layer)
    alias = args.alias or "default"
    settings = args.settings or os.environ.get("DJANGO_SETTINGS_MODULE")
    if settings:
        return f"channel layer {alias!r} of Django settings {settings}"
    if os.environ.get("CHANNEL_LAYERS"):
        return f"channel layer {alias!r} of $CHANNEL_LAYERS"
    url = os.environ.get("CHANNEL_LAYER_URL")
    if url and alias == "default":
        return f"{_redact(url)} (from $CHANNEL_LAYER_URL)"
    return f"the in-memory channel layer {alias!r} of this process"


@contextlib.contextmanager
def open_layer(args: argparse.Namespace) -> Iterator[SyncChannelLayer]:
    """The SyncChannelLayer the --layer, --alias and --settings options select."""
    if args.layer is not None and "://" not in args.layer:
        raise UsageError(
            f"--layer takes a URL such as redis://host:6379 or memory://, got {args.layer!r}"
            " (to name an alias of CHANNEL_LAYERS, use --alias)"
        )
    if args.settings:
        _use_settings(args.settings)
    with SyncChannelLayer(args.layer or args.alias) as layer:
        yield layer


# -- the commands ------------------------------------------------------------------------


def _stdin_messages(stdin: TextIO) -> Iterator[tuple[str, dict[str, Any]]]:
    """(where, message) for each JSON line of stdin; blank lines are skipped."""
    for number, line in enumerate(stdin, 1):
        if line.strip():
            where = f"stdin line {number}"
            yield where, parse_message(line.strip(), where)


def _send_all(args: argparse.Namespace, group: bool) -> None:
    target = check_group(args.group) if group else check_channel(args.channel)
    single = None if args.json == "-" else parse_message(args.json, "message")
    with open_layer(args) as layer:
        send = layer.group_send if group else layer.send
        if single is not None:
            send(target, single)
            return
        sent = 0
        where = "stdin"
        try:
            for line, message in _stdin_messages(sys.stdin):
                where = line
                send(target, message)
                sent += 1
        except (ChannelLayerError, CommandError) as exc:
            # Name the line, and say what already went out.
            told = str(exc) if isinstance(exc, UsageError) else f"{where}: {error_line(exc)}"
            raise CommandError(
                f"{told} ({sent} message(s) sent before it)", exit_status(exc)
            ) from None


def cmd_send(args: argparse.Namespace) -> None:
    _send_all(args, group=False)


def cmd_group_send(args: argparse.Namespace) -> None:
    _send_all(args, group=True)


def cmd_receive(args: argparse.Namespace) -> None:
    channel = check_channel(args.channel)
    deadline = None if args.timeout is None else time.monotonic() + args.timeout
    got = 0
    with open_layer(args) as layer:
        while got < args.count:
            remaining = None if deadline is None else deadline - time.monotonic()
            try:
                if remaining is not None and remaining <= 0:
                    raise TimeoutError
                message = layer.receive(channel, timeout=remaining)
            except TimeoutError:
                raise CommandFailed(
                    f"timed out after {args.timeout:g} s: {got} of {args.count} message(s) "
                    f"arrived on {channel!r}"
                ) from None
            print(dump_message(message), flush=True)
            got += 1


def cmd_group_add(args: argparse.Namespace) -> None:
    group, channel = check_group(args.group), check_channel(args.channel)
    with open_layer(args) as layer:
        layer.group_add(group, channel)


def cmd_group_discard(args: argparse.Namespace) -> None:
    group, channel = check_group(args.group), check_channel(args.channel)
    with open_layer(args) as layer:
        layer.group_discard(group, channel)


def _confirm(question: str) -> bool:
    sys.stderr.write(f"{question} [y/N] ")
    sys.stderr.flush()
    answer = sys.stdin.readline()
    return answer.strip().lower() in {"y", "yes"}


def cmd_flush(args: argparse.Namespace) -> None:
    what = describe_layer(args)
    if not args.yes:
        if not sys.stdin.isatty():
            raise UsageError(
                f"flush asks before removing every message and group of {what}, but stdin "
                "is not a terminal; pass --yes to flush without asking"
            )
        if not _confirm(f"Flush every message and group of {what}?"):
            raise CommandFailed("nothing flushed")
    with open_layer(args) as layer:
        layer.flush()
    print(f"flushed {what}")


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, str | int | bool) or value is None:
        return str(value)
    return json.dumps(to_json(value), default=str)


def cmd_stats(args: argparse.Namespace) -> None:
    with open_layer(args) as layer:
        stats = layer.stats()
    if args.json:
        print(json.dumps(to_json(stats), default=str))
        return
    width = max((len(key) for key in stats), default=0)
    for key, value in stats.items():
        print(f"{key:<{width}}  {_cell(value)}")


COMMANDS = {
    "send": cmd_send,
    "group-send": cmd_group_send,
    "receive": cmd_receive,
    "group-add": cmd_group_add,
    "group-discard": cmd_group_discard,
    "flush": cmd_flush,
    "stats": cmd_stats,
}


def positive_count(text: str) -> int:
    """argparse type: an int >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def positive_seconds(text: str) -> float:
    """argparse type: a finite number of seconds > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not (value > 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, got {text}")
    return value

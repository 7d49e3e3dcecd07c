"""What the chanlayers subcommands do: layer selection and the commands."""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import math
import os
import sys
import time
from collections.abc import Iterator
from typing import Any

from .cli_errors import (
    CommandError,
    CommandFailed,
    UsageError,
    error_line,
    exit_status,
)
from .cli_json import dump_message, from_json, parse_message, to_json
from .cli_stats import figures_table, watch
from .cli_stdin import item_index, stdin_chunks
from .config import install_hint
from .exceptions import (
    ChannelLayerConnectionError,
    ChannelLayerError,
)
from .figures import prometheus_text
from .naming import check_channel, check_group
from .redact import redact_url
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


# -- which layer -------------------------------------------------------------------------


def _use_settings(module: str) -> None:
    """Point Django at module (imported from the current directory or PYTHONPATH)."""
    try:
        import django
    except ImportError:
        raise UsageError(
            f"--settings needs Django, which is not installed ({install_hint('django')})"
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


def _configured_layer(args: argparse.Namespace) -> str | None:
    """Which layer the arguments and the environment name, in words; None if none does."""
    if args.layer is not None:
        return redact_url(args.layer)
    alias = args.alias or "default"
    settings = args.settings or os.environ.get("DJANGO_SETTINGS_MODULE")
    if settings:
        return f"channel layer {alias!r} of Django settings {settings}"
    if os.environ.get("CHANNEL_LAYERS"):
        return f"channel layer {alias!r} of $CHANNEL_LAYERS"
    url = os.environ.get("CHANNEL_LAYER_URL")
    if url and alias == "default":
        return f"{redact_url(url)} (from $CHANNEL_LAYER_URL)"
    return None


def describe_layer(args: argparse.Namespace) -> str:
    """Which layer the arguments and the environment select, in words (no passwords)."""
    return require_layer(args)


def require_layer(args: argparse.Namespace) -> str:
    """describe_layer(args), or a UsageError where no layer is named at all.

    Without one, a command would use a process-private in-memory layer: a send would
    report success and the message would go nowhere.
    """
    named = _configured_layer(args)
    if named is None:
        raise UsageError(
            "no channel layer is configured, and this process's own in-memory layer "
            "reaches no other process: name one with --layer URL (e.g. "
            "redis://localhost:6379, or memory:// on purpose), --alias with --settings, "
            "or set CHANNEL_LAYER_URL or CHANNEL_LAYERS"
        )
    return named


@contextlib.contextmanager
def open_layer(args: argparse.Namespace) -> Iterator[SyncChannelLayer]:
    """The SyncChannelLayer the --layer, --alias and --settings options select."""
    if args.layer is not None and "://" not in args.layer:
        raise UsageError(
            f"--layer takes a URL such as redis://host:6379 or memory://, got {args.layer!r}"
            " (to name an alias of CHANNEL_LAYERS, use --alias)"
        )
    require_layer(args)
    if args.settings:
        _use_settings(args.settings)
    with SyncChannelLayer(args.layer or args.alias) as layer:
        yield layer


# -- the commands ------------------------------------------------------------------------


def _send_all(args: argparse.Namespace, group: bool) -> None:
    target = check_group(args.group) if group else check_channel(args.channel)
    single = None if args.json == "-" else parse_message(args.json, "message")
    with open_layer(args) as layer:
        if single is not None:
            (layer.group_send if group else layer.send)(target, single)
            return
        send_many = layer.group_send_many if group else layer.send_many
        sent = 0
        for chunk in stdin_chunks(sys.stdin):
            messages: list[tuple[str, dict[str, Any]]] = []
            failed: tuple[int, BaseException] | None = None
            for number, text in chunk:
                try:
                    messages.append((target, parse_message(text, f"stdin line {number}")))
                except UsageError as exc:
                    failed = (number, exc)
                    break
            try:
                results = send_many(messages)
            except ChannelLayerError as exc:
                # Raised before anything of this chunk was sent: a bad message, say.
                index = item_index(exc)
                failed = (chunk[index][0] if index is not None else chunk[0][0], exc)
                results = []
            errors = [i for i, result in enumerate(results) if result is not None]
            if errors:
                error = results[errors[0]]
                assert error is not None
                failed = (chunk[errors[0]][0], error)
                after = len(results) - errors[0] - 1 - (len(errors) - 1)
                sent += errors[0]
            else:
                sent += len(results)
                after = 0
            if failed is not None:
                _fail(*failed, sent, after)


def _fail(number: int, exc: BaseException, sent: int, after: int) -> None:
    """Stop, naming the line, and say what already went out."""
    if isinstance(exc, UsageError):
        told = str(exc)
    else:
        text = str(exc).split(": ", 1)[1] if item_index(exc) is not None else str(exc)
        told = f"stdin line {number}: {type(exc).__name__}: {text}"
    also = f", {after} after it" if after else ""
    raise CommandError(
        f"{told} ({sent} message(s) sent before it{also})", exit_status(exc)
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
        # A receive only waits: without this round trip, a server that is not there
        # would show as a wait for ever (and the reader's reconnect warnings).
        _reach(layer, args, deadline)
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


def _reach(layer: SyncChannelLayer, args: argparse.Namespace, deadline: float | None) -> None:
    """One round trip to the layer's server; with --retry, try again every 2 s."""
    while True:
        try:
            layer.group_channels("chanlayers-cli-probe")
            return
        except ChannelLayerConnectionError as exc:
            if not args.retry or (deadline is not None and time.monotonic() >= deadline):
                raise
            told = error_line(exc).rstrip(".")
            print(f"chanlayers: {told} (retrying in 2 s)", file=sys.stderr, flush=True)
            time.sleep(2)


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


def cmd_stats(args: argparse.Namespace) -> None:
    with open_layer(args) as layer:
        if args.watch is not None:
            watch(layer, args.top, args.watch)
            return
        figures = layer.figures(args.top)
    if args.json:
        print(json.dumps(figures.as_dict()))
    elif args.prometheus:
        sys.stdout.write(prometheus_text([figures]))
    else:
        print("\n".join(figures_table(figures, None)))


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

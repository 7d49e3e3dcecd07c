"""The chanlayers command line."""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import sys
import textwrap
from collections.abc import Sequence
from typing import NoReturn

from .cli_commands import (
    COMMANDS,
    CommandError,
    error_line,
    exit_status,
    positive_count,
    positive_seconds,
)
from .cli_plugins import Command, load_commands
from .config import BACKENDS, available_backends
from .exceptions import ChannelLayerError
from .redact import redact

EPILOG = """\
examples:
  chanlayers demo                      the chat demo: a WebSocket chat on http://localhost:8000/
  chanlayers demo --console            the one-process chat demo, printed
  chanlayers worker jobs --app myapp.jobs:router --layer redis://localhost:6379
  chanlayers backends                  which layer URLs this installation serves
  chanlayers send jobs '{"type": "job.run", "id": 7}' --layer redis://localhost:6379
  chanlayers receive jobs --count 10 --timeout 5 --layer redis://localhost:6379
  chanlayers receive jobs --layer redis://a:6379 | chanlayers send jobs - --layer redis://b:6379

Every layer command takes --layer URL, or --alias NAME (with --settings MODULE for
Django), or else uses the CHANNEL_LAYERS / CHANNEL_LAYER_URL environment variables.
'chanlayers COMMAND --help' shows each command's options and examples.
"""

MESSAGES = """\
messages are JSON objects with a "type" string. JSON has no bytes, so a bytes
value is written {"$bytes": "<base64>"} (standard alphabet, padded): receive
prints bytes that way and send reads it back, so receive | send copies messages
exactly. (A dict whose only key is "$bytes" or "$dict" is written {"$dict": {...}}.)
"""

EXIT = """\
exit status: 0 done; 1 layer error (ChannelFull, MessageTooLarge, connection,
configuration, a receive that timed out); 2 usage error or bad input (bad JSON,
an invalid channel or group name, an invalid message).
"""

# (name, help, description, usage examples)
LAYER_COMMANDS: list[tuple[str, str, str, str]] = [
    (
        "send",
        "send a message to a channel",
        "Send a JSON message to CHANNEL; with '-' instead of JSON, send each JSON line "
        "of stdin in turn (blank lines are skipped).",
        """\
  chanlayers send jobs '{"type": "job.run", "id": 7}' --layer redis://localhost:6379
  printf '{"type": "a"}\\n{"type": "b"}\\n' | chanlayers send jobs - --alias default
  chanlayers send blobs '{"type": "blob", "data": {"$bytes": "AAEC"}}'""",
    ),
    (
        "group-send",
        "send a message to every channel of a group",
        "Send a JSON message to every member of GROUP (a full member is skipped); "
        "with '-' instead of JSON, send each JSON line of stdin in turn.",
        """\
  chanlayers group-send room-42 '{"type": "chat.message", "text": "hi"}'
  tail -f events.jsonl | chanlayers group-send room-42 - --layer redis://localhost:6379""",
    ),
    (
        "receive",
        "print messages of a channel as JSON lines",
        "Wait for --count messages on CHANNEL and print each as one line of JSON. With "
        "--timeout, give up after that many seconds in all: what arrived is printed, and "
        "the exit status is 1.",
        """\
  chanlayers receive jobs --layer redis://localhost:6379
  chanlayers receive jobs --count 100 --timeout 10 --alias default > jobs.jsonl
  chanlayers receive jobs --count 5 --layer redis://a:6379 | chanlayers send jobs - --layer redis://b:6379""",
    ),
    (
        "group-add",
        "add a channel to a group",
        "Add CHANNEL to GROUP, or renew its membership for the layer's group_expiry.",
        """\
  chanlayers group-add room-42 audit-log --layer redis://localhost:6379
  chanlayers group-add room-42 audit-log --settings mysite.settings""",
    ),
    (
        "group-discard",
        "remove a channel from a group",
        "Remove CHANNEL from GROUP; a channel that is not a member is no error.",
        """\
  chanlayers group-discard room-42 audit-log --layer redis://localhost:6379""",
    ),
    (
        "flush",
        "remove every message and group of a layer",
        "Remove every message and group under the layer's prefix. It asks first; "
        "without a terminal to ask on, it needs --yes. Any answer but y leaves the "
        "layer as it was and exits 1.",
        """\
  chanlayers flush --layer 'redis://localhost:6379?prefix=myapp'
  chanlayers flush --yes --alias default --settings mysite.settings""",
    ),
    (
        "stats",
        "show the whole deployment's figures",
        "Show what every process of the layer's prefix sent, delivered and dropped (by "
        "rule), what waits now, the deepest channels and the largest groups, as read "
        "from the layer's backend (where it keeps no shared counters, the figures say "
        "so). --watch redraws them with rates, --json and --prometheus are for machines.",
        """\
  chanlayers stats --layer redis://localhost:6379
  chanlayers stats --watch --layer ipc://chat
  chanlayers stats --json --alias default
  chanlayers stats --prometheus --layer redis://localhost:6379 > chanlayers.prom""",
    ),
]


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are one line on stderr, with status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"chanlayers: {message} (see '{self.prog} --help')\n")


def _add_layer_options(command: argparse.ArgumentParser) -> None:
    group = command.add_argument_group(
        "which layer (default: alias default of Django settings, $CHANNEL_LAYERS, "
        "$CHANNEL_LAYER_URL or in-memory)"
    )
    choice = group.add_mutually_exclusive_group()
    choice.add_argument(
        "--layer", metavar="URL", help="a layer URL: memory://, redis://host:6379?prefix=app, ..."
    )
    choice.add_argument(
        "--alias",
        metavar="NAME",
        help="a CHANNEL_LAYERS alias, from Django settings or $CHANNEL_LAYERS (default: default)",
    )
    group.add_argument(
        "--settings",
        metavar="MODULE",
        help="the Django settings module with CHANNEL_LAYERS, imported from the current "
        "directory or PYTHONPATH (sets DJANGO_SETTINGS_MODULE)",
    )


def _add_layer_commands(commands: argparse._SubParsersAction[_Parser]) -> None:
    for name, summary, description, examples in LAYER_COMMANDS:
        epilog = f"examples:\n{examples}\n\n"
        if name in {"send", "group-send", "receive"}:
            epilog += MESSAGES + "\n"
        epilog += EXIT
        command = commands.add_parser(
            name,
            help=summary,
            description=textwrap.fill(description, 79),
            epilog=epilog,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        if name in {"send", "group-send"}:
            target = "CHANNEL" if name == "send" else "GROUP"
            command.add_argument(target.lower(), metavar=target)
            command.add_argument(
                "json",
                metavar="JSON",
                help="the message as a JSON object, or - for JSON lines on stdin",
            )
        elif name == "receive":
            command.add_argument("channel", metavar="CHANNEL")
            command.add_argument(
                "--count", type=positive_count, default=1, metavar="N", help="how many (default 1)"
            )
            command.add_argument(
                "--timeout",
                type=positive_seconds,
                metavar="S",
                help="give up after S seconds in all (default: wait for ever)",
            )
            command.add_argument(
                "--retry",
                action="store_true",
                help="if the layer's server does not answer, keep trying (a line each time) "
                "instead of failing at once",
            )
        elif name in {"group-add", "group-discard"}:
            command.add_argument("group", metavar="GROUP")
            command.add_argument("channel", metavar="CHANNEL")
        elif name == "flush":
            command.add_argument("-y", "--yes", action="store_true", help="do not ask first")
        elif name == "stats":
            form = command.add_mutually_exclusive_group()
            form.add_argument("--json", action="store_true", help="print one JSON object")
            form.add_argument(
                "--prometheus",
                action="store_true",
                help="print Prometheus' text exposition format",
            )
            form.add_argument(
                "--watch",
                type=positive_seconds,
                nargs="?",
                const=2.0,
                metavar="S",
                help="redraw every S seconds (default 2), with rates per second, like top",
            )
            command.add_argument(
                "--top",
                type=positive_count,
                default=10,
                metavar="N",
                help="how many of the deepest channels and largest groups (default 10)",
            )
        _add_layer_options(command)


def _version() -> str:
    try:
        return importlib.metadata.version("chanlayers")
    except importlib.metadata.PackageNotFoundError:  # run from a checkout, not installed
        return "(not installed)"


def _parser(plugins: dict[str, Command]) -> argparse.ArgumentParser:
    parser = _Parser(
        prog="chanlayers",
        description="Channel layers for ASGI and Django Channels.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"chanlayers {_version()}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    for plugin in plugins.values():
        plugin.add_parser(commands, _add_layer_options)
    commands.add_parser(
        "backends",
        help="list layer URL schemes and whether they are available",
        description="List every layer URL scheme and whether this installation can use it.",
        epilog="example:\n  chanlayers backends",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_layer_commands(commands)
    return parser


def _run(argv: list[str]) -> int:
    plugins = load_commands(running=argv[0] if argv else None)
    plugin = plugins.get(argv[0]) if argv else None
    if plugin is not None and plugin.own_arguments:
        # Its own parser takes every option (argparse's REMAINDER would not).
        return plugin.run(argparse.Namespace(command=argv[0], arguments=argv[1:])) or 0
    parser = _parser(plugins)
    args = parser.parse_args(argv)
    if args.command in plugins:
        return plugins[args.command].run(args) or 0
    if args.command == "backends":
        available = set(available_backends())
        for scheme, backend in BACKENDS.items():
            state = "available" if f"{scheme}://" in available else "not available"
            print(f"{scheme + '://':<18} {backend.path:<40} {state}")
    elif args.command in COMMANDS:
        COMMANDS[args.command](args)
    else:
        parser.print_help()
        return 2
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the chanlayers console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        return _run(argv)
    except (ChannelLayerError, CommandError) as exc:
        print(f"chanlayers: {error_line(exc)}", file=sys.stderr)
        return exit_status(exc)
    except KeyboardInterrupt:
        print("chanlayers: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader of stdout went away (| head): stop quietly, and keep Python's
        # own flush at exit from complaining again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except Exception as exc:
        if os.environ.get("CHANLAYERS_TRACEBACK"):
            raise
        print(
            f"chanlayers: unexpected {type(exc).__name__}: {redact(str(exc))} "
            "(set CHANLAYERS_TRACEBACK=1 to see where)",
            file=sys.stderr,
        )
        return 1

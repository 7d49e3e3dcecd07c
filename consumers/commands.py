"""The `chanlayers demo` and `chanlayers worker` subcommands (parsers and runners)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import textwrap
from typing import Any

from layers import get_channel_layer, layer_from_url
from layers.cli_commands import UsageError, require_layer, use_settings
from layers.cli_plugins import AddLayerOptions, Command
from layers.config import reset_channel_layers
from layers.demo import run_demo

from .asgi import ASGIApp

__all__ = [
    "DEMO",
    "WORKER",
    "add_demo_parser",
    "add_worker_parser",
    "run_demo_command",
    "run_worker_command",
]

CONSOLE_LAYER = 'memory://?channel_capacity={"thumbnails":2}'

DEMO_EPILOG = """\
examples:
  chanlayers demo                              the chat server on http://localhost:8000/
  chanlayers demo --workers 2 --layer redis://localhost:6379
  chanlayers group-send room.lobby '{"type": "chat.message", "text": "hi", "user": "ops"}' \\
      --layer redis://localhost:6379          (shows in every browser in room lobby)
  chanlayers demo --console --clients 5        the old one-process demo, printed

The layer is --layer, else $CHANNEL_LAYER_URL, else ipc://chanlayers-demo where the
ipc backend is installed, else memory:// (one worker: memory:// is one process).
"""

WORKER_EPILOG = """\
examples:
  chanlayers worker thumbnails --app myapp.jobs:router --layer redis://localhost:6379
  chanlayers worker emails sms --app myapp.jobs:application --settings mysite.settings

--app names a ChannelNameRouter, an ASGI app or a consumer class (as module:attribute,
imported from the current directory or PYTHONPATH). Each message on a CHANNEL runs a
new instance with scope {"type": "channel", "channel": CHANNEL}; the messages of one
channel run one at a time, in order. SIGINT or SIGTERM stops taking messages and lets
running jobs finish (a second one cancels them); waiting messages stay on the layer.
"""


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 0 < value < 65536:
        raise argparse.ArgumentTypeError(f"a port is 1-65535, got {value}")
    return value


def _workers(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if not 1 <= value <= 64:
        raise argparse.ArgumentTypeError(f"--workers is 1-64, got {value}")
    return value


def add_demo_parser(
    commands: argparse._SubParsersAction[Any], add_layer_options: AddLayerOptions | None = None
) -> None:
    """The demo subcommand: the chat server, or --console for the printed demo.

    It takes --layer only (a URL), so add_layer_options is not used.
    """
    demo = commands.add_parser(
        "demo",
        help="run the chat demo (a WebSocket chat server)",
        description=textwrap.fill(
            "Serve a one-page WebSocket chat with uvicorn; rooms are groups room.<name>. "
            "With --console, run the printed one-process demo instead.",
            79,
        ),
        epilog=DEMO_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    demo.add_argument("--layer", metavar="URL", help="layer URL (default: see below)")
    demo.add_argument("--host", default="127.0.0.1", help="address to serve on (127.0.0.1)")
    demo.add_argument("--port", type=_port, default=8000, help="port to serve on (8000)")
    demo.add_argument(
        "--workers", type=_workers, default=2, metavar="N", help="uvicorn worker processes (2)"
    )
    demo.add_argument(
        "--console", action="store_true", help="print a chat room run in this process instead"
    )
    demo.add_argument(
        "--clients",
        type=int,
        choices=range(1, 6),
        metavar="1-5",
        help="--console: how many chat clients (default 3; implies --console)",
    )


def add_worker_parser(
    commands: argparse._SubParsersAction[Any],
    add_layer_options: AddLayerOptions,
) -> None:
    """The worker subcommand."""
    worker = commands.add_parser(
        "worker",
        help="run consumers on normal channels (background jobs)",
        description=textwrap.fill(
            "Receive on each CHANNEL and run the --app application for every message, "
            "like Django Channels' runworker.",
            79,
        ),
        epilog=WORKER_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    worker.add_argument("channels", nargs="+", metavar="CHANNEL", help="normal channel names")
    worker.add_argument(
        "--app", required=True, metavar="MODULE:ATTR", help="the application to run"
    )
    add_layer_options(worker)


async def _console(url: str, clients: int) -> None:
    async with layer_from_url(url) as layer:
        await run_demo(layer, clients=clients)


def run_demo_command(args: argparse.Namespace) -> None:
    """Run `chanlayers demo` as its arguments say."""
    if args.console or args.clients is not None:
        asyncio.run(_console(args.layer or CONSOLE_LAYER, args.clients or 3))
        return
    from .demo.serve import serve

    serve(args.host, args.port, args.workers, args.layer)


def run_worker_command(args: argparse.Namespace) -> None:
    """Run `chanlayers worker` until SIGINT/SIGTERM."""
    from .worker import check_channels, load_application

    require_layer(args)
    if args.layer is not None:
        if "://" not in args.layer:
            raise UsageError(f"--layer takes a URL such as redis://host:6379, got {args.layer!r}")
        # The consumers' own 'default' layer must be this one too: one layer per process.
        os.environ["CHANNEL_LAYER_URL"] = args.layer
        os.environ.pop("CHANNEL_LAYERS", None)
        reset_channel_layers()
    if args.settings:
        use_settings(args.settings)
    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        channels = check_channels(args.channels)
        application = load_application(args.app)
    except (ValueError, TypeError) as error:
        raise UsageError(str(error)) from None
    # Failed jobs are logged with their traceback; show them on stderr.
    logging.basicConfig(level=logging.INFO, format="chanlayers worker: %(levelname)s %(message)s")
    asyncio.run(_work(application, channels, args.alias or "default"))


async def _work(application: ASGIApp, channels: list[str], alias: str) -> None:
    from .worker import run_worker

    layer = get_channel_layer(alias)
    try:
        say(f"receiving on {', '.join(channels)} ({type(layer).__name__}); Ctrl-C stops")
        worker = await run_worker(application, channels, layer)
    finally:
        await layer.close()
    stats = worker.stats
    say(f"stopped: {', '.join(f'{count} {what}' for what, count in stats.items())}")


def say(line: str) -> None:
    """One status line of the worker, on stderr (stdout is the jobs' own)."""
    print(f"chanlayers worker: {line}", file=sys.stderr, flush=True)


DEMO = Command("demo", add_demo_parser, run_demo_command)
"""`chanlayers demo` (the entry point of that name in group chanlayers.commands)."""
WORKER = Command("worker", add_worker_parser, run_worker_command)
"""`chanlayers worker` (the entry point of that name in group chanlayers.commands)."""

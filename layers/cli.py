"""The chanlayers command line."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence

from .config import BACKENDS, available_backends, layer_from_url
from .demo import run_demo
from .exceptions import ChannelLayerError

EPILOG = """\
examples:
  chanlayers demo                      the chat demo on the in-memory layer
  chanlayers demo --layer memory://    the same, naming the layer by URL
  chanlayers backends                  which layer URLs this installation serves
"""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="chanlayers",
        description="Channel layers for ASGI and Django Channels.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    demo = commands.add_parser(
        "demo",
        help="run the chat demo",
        description="Run a chat room on a channel layer and print what every client sees.",
        epilog="example:\n  chanlayers demo --clients 5",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    demo.add_argument(
        "--layer",
        default='memory://?channel_capacity={"thumbnails":2}',
        help="layer URL (default: in-memory)",
    )
    demo.add_argument(
        "--clients",
        type=int,
        default=3,
        choices=range(1, 6),
        metavar="1-5",
        help="how many chat clients (default 3)",
    )
    commands.add_parser(
        "backends",
        help="list layer URL schemes and whether they are available",
        description="List every layer URL scheme and whether this installation can use it.",
    )
    return parser


async def _demo(url: str, clients: int) -> None:
    async with layer_from_url(url) as layer:
        await run_demo(layer, clients=clients)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the chanlayers console script."""
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "demo":
            asyncio.run(_demo(args.layer, args.clients))
        elif args.command == "backends":
            available = set(available_backends())
            for scheme, backend in BACKENDS.items():
                state = "available" if f"{scheme}://" in available else "not available"
                print(f"{scheme + '://':<18} {backend.path:<40} {state}")
        else:
            parser.print_help()
            return 2
    except ChannelLayerError as exc:
        print(f"chanlayers: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    return 0

"""`chanlayers bench`: python -m bench as a subcommand of the chanlayers command line.

It is the entry point ``bench`` of the group ``chanlayers.commands`` (pyproject.toml).
bench/ ships with the source, not the wheel: the command line finds it when run from
the checkout's root.
"""

from __future__ import annotations

import argparse
from typing import Any

from layers.cli_plugins import AddLayerOptions, Command

__all__ = ["BENCH"]


def _add_parser(commands: argparse._SubParsersAction[Any], _: AddLayerOptions) -> None:
    bench = commands.add_parser(
        "bench",
        help="run the benchmark suite (bench/ of a source checkout)",
        description="Run python -m bench: workloads W1-W5 against our layers and the peers.",
        epilog="examples:\n  chanlayers bench --quick\n  chanlayers bench --only W1,W3",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    bench.add_argument("options", nargs="*", help="python -m bench's options (see its --help)")


def _run(args: argparse.Namespace) -> int:
    # Imported when run: the workloads and peers are heavy, and --help needs none of them.
    from .__main__ import main

    return main(args.arguments)


BENCH = Command("bench", _add_parser, _run, own_arguments=True)

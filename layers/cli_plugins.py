"""Subcommands that other packages add to the chanlayers command line.

The packages built on layers (consumers: demo, worker; bench: bench) declare theirs as
entry points of the group ``chanlayers.commands`` in pyproject.toml, each naming a
:class:`Command`, the way pytest and flask find their plugins. layers itself never
imports them: dependencies point down.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from typing import Any, TypeAlias

from .cli_commands import CommandError

__all__ = ["ENTRY_POINT_GROUP", "AddLayerOptions", "Command", "load_commands"]

ENTRY_POINT_GROUP = "chanlayers.commands"

AddLayerOptions = Callable[[argparse.ArgumentParser], None]
"""Adds --layer, --alias and --settings to a subcommand's parser."""
SubParsers: TypeAlias = "argparse._SubParsersAction[Any]"


@dataclass(frozen=True)
class Command:
    """A chanlayers subcommand: how to add its parser, and how to run it."""

    name: str
    add_parser: Callable[[SubParsers, AddLayerOptions], None]
    run: Callable[[argparse.Namespace], int | None]
    """Runs the parsed command; its result (None for 0) is the exit status."""
    own_arguments: bool = False
    """The command parses its arguments itself: run gets them as args.arguments."""


def load_commands(running: str | None = None) -> dict[str, Command]:
    """Every installed subcommand by name; one that cannot be loaded says why when run.

    Only the command being run (running) is also looked for in the current directory.
    """
    found: dict[str, Command] = {}
    for entry in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        if entry.name not in found:
            found[entry.name] = _load(entry, entry.name == running)
    return found


def _load(entry: EntryPoint, from_here: bool) -> Command:
    try:
        try:
            command = entry.load()
        except ModuleNotFoundError as exc:
            # A command that ships with a source checkout rather than the wheel (bench/)
            # is found from the checkout's root, as python -m would find it; only when
            # asked for, so that no other command runs code from wherever it is run.
            here = os.getcwd()
            if not from_here or exc.name != entry.module.partition(".")[0] or here in sys.path:
                raise
            sys.path.append(here)
            command = entry.load()
    except Exception as exc:
        return _unavailable(entry, f"{type(exc).__name__}: {exc}")
    if not isinstance(command, Command) or command.name != entry.name:
        return _unavailable(entry, f"{entry.value} is not a Command named {entry.name!r}")
    return command


def _unavailable(entry: EntryPoint, reason: str) -> Command:
    """A stand-in that is listed in --help and fails with the reason when run."""
    message = (
        f"the {entry.name!r} command is not available here: {reason} (from {entry.value}; "
        "a command that ships with a source checkout runs from the checkout's root)"
    )

    def add_parser(commands: SubParsers, add_layer_options: AddLayerOptions) -> None:
        commands.add_parser(entry.name, help="(cannot be loaded here: run it to see why)")

    def run(args: argparse.Namespace) -> int:
        raise CommandError(message)

    return Command(entry.name, add_parser, run, own_arguments=True)

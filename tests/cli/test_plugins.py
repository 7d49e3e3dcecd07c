"""Subcommands found through the chanlayers.commands entry points."""

from __future__ import annotations

import argparse
import sys
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest

from layers import cli_plugins
from layers.cli_commands import CommandError
from layers.cli_plugins import ENTRY_POINT_GROUP, Command, load_commands


def entries(*pairs: tuple[str, str]) -> list[EntryPoint]:
    return [EntryPoint(name, value, ENTRY_POINT_GROUP) for name, value in pairs]


@pytest.fixture
def installed(monkeypatch: pytest.MonkeyPatch) -> list[EntryPoint]:
    """The entry points load_commands() sees: those a test adds, no others."""
    found: list[EntryPoint] = []
    monkeypatch.setattr(cli_plugins, "entry_points", lambda group: list(found))
    return found


def test_the_installed_commands_are_found() -> None:
    commands = load_commands()
    assert {"demo", "worker", "bench"} <= set(commands)
    assert all(isinstance(command, Command) for command in commands.values())
    assert commands["bench"].own_arguments


def test_a_command_that_cannot_be_imported_says_why_when_run(installed: list[EntryPoint]) -> None:
    installed += entries(("ghost", "no_such_module_here.cmd:GHOST"))
    ghost = load_commands()["ghost"]
    parser = argparse.ArgumentParser()
    ghost.add_parser(parser.add_subparsers(), lambda _: None)  # listed in --help
    with pytest.raises(CommandError, match="'ghost' command is not available here") as caught:
        ghost.run(argparse.Namespace(command="ghost", arguments=[]))
    assert "No module named 'no_such_module_here'" in str(caught.value)


def test_an_entry_point_that_is_not_a_command_is_refused(installed: list[EntryPoint]) -> None:
    installed += entries(("demo", "consumers.commands:WORKER"), ("odd", "layers.cli:main"))
    commands = load_commands()
    with pytest.raises(CommandError, match="is not a Command named 'demo'"):
        commands["demo"].run(argparse.Namespace())
    with pytest.raises(CommandError, match="layers.cli:main is not a Command named 'odd'"):
        commands["odd"].run(argparse.Namespace())


def test_only_the_command_being_run_is_looked_for_in_the_current_directory(
    installed: list[EntryPoint], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    package = tmp_path / "cwd_only_command"
    package.mkdir()
    (package / "__init__.py").write_text(
        "from layers.cli_plugins import Command\n"
        "HERE = Command('here', lambda commands, options: None, lambda args: 7)\n"
    )
    installed += entries(("here", "cwd_only_command:HERE"))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    monkeypatch.delitem(sys.modules, "cwd_only_command", raising=False)
    with pytest.raises(CommandError, match="'here' command is not available here"):
        load_commands(running="send")["here"].run(argparse.Namespace())
    assert load_commands(running="here")["here"].run(argparse.Namespace()) == 7
    monkeypatch.delitem(sys.modules, "cwd_only_command", raising=False)

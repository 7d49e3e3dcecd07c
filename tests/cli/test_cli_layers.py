"""The layer subcommands (send, group-send, receive, group-add, group-discard, flush, stats).

Real subprocesses where processes matter (a message crossing from one process to
another, pipes, no TTY); layers.cli.main in-process elsewhere, for speed.
"""

from __future__ import annotations

import io
import json
import os
import re
import secrets
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from prometheus_client.parser import text_string_to_metric_families

from layers.cli import main
from layers.cli_commands import from_json, to_json
from layers.sync import SyncChannelLayer
from tests.helpers import CROSS_PROCESS_BACKENDS, cross_process_config

CLEAN_ENV = {
    k: v
    for k, v in os.environ.items()
    if k not in {"CHANNEL_LAYERS", "CHANNEL_LAYER_URL", "DJANGO_SETTINGS_MODULE"}
}


def run(
    *args: str,
    stdin: str | None = None,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """python -m layers ARGS in a fresh process; stdin is /dev/null unless given."""
    return subprocess.run(
        [sys.executable, "-m", "layers", *args],
        input=stdin,
        stdin=subprocess.DEVNULL if stdin is None else None,
        capture_output=True,
        text=True,
        timeout=30,
        env={**CLEAN_ENV, **(env or {})},
        cwd=cwd,
    )


class Result:
    """What an in-process main() call printed and returned."""

    def __init__(self, code: int, out: str, err: str) -> None:
        self.code, self.out, self.err = code, out, err

    @property
    def messages(self) -> list[dict[str, object]]:
        return [json.loads(line) for line in self.out.splitlines()]


Cli = Callable[..., Result]


class _TTY(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Cli:
    """Call layers.cli.main in this process: cli(*args, stdin=..., tty=...) -> Result."""

    def call(*args: str, stdin: str = "", tty: bool = False) -> Result:
        capsys.readouterr()
        monkeypatch.setattr(sys, "stdin", (_TTY if tty else io.StringIO)(stdin))
        try:
            code = main(list(args))
        except SystemExit as exc:  # argparse: --help and usage errors
            code = int(exc.code or 0)
        out, err = capsys.readouterr()
        return Result(code, out, err)

    return call


@pytest.fixture(params=CROSS_PROCESS_BACKENDS)
def shared(request: pytest.FixtureRequest) -> tuple[dict[str, Any], str]:
    """(CHANNEL_LAYERS entry, URL) of one layer shared across processes, own prefix."""
    return cross_process_config(request, request.param, f"tcli{secrets.token_hex(4)}")


@pytest.fixture
def url(shared: tuple[dict[str, Any], str]) -> Iterator[str]:
    """The shared layer's URL; flushed afterwards."""
    layer_url = shared[1]
    yield layer_url
    with SyncChannelLayer(layer_url) as layer:
        layer.flush()


def shown(url: str) -> str:
    """url as the CLI prints it: a password replaced by ***."""
    password = urlsplit(url).password
    return url.replace(f":{password}@", ":***@") if password else url


def with_option(url: str, option: str) -> str:
    return f"{url}&{option}"


def one_line(err: str) -> str:
    assert err.endswith("\n"), err
    assert err.count("\n") == 1, err
    assert "Traceback" not in err
    assert err.startswith("chanlayers: ")
    return err


# -- send and receive -------------------------------------------------------------------


def test_send_then_receive_in_another_process(url: str) -> None:
    message = {"type": "job.run", "id": 7, "tags": ["a", "b"], "ok": True, "none": None}
    sent = run("send", "jobs", json.dumps(message), "--layer", url)
    assert sent.returncode == 0, sent.stderr
    assert sent.stdout == sent.stderr == ""
    got = run("receive", "jobs", "--timeout", "5", "--layer", url)
    assert got.returncode == 0, got.stderr
    assert [json.loads(line) for line in got.stdout.splitlines()] == [message]


def test_group_add_group_send_receive_group_discard(cli: Cli, url: str) -> None:
    for channel in ("inbox-a", "inbox-b"):
        assert cli("group-add", "room-42", channel, "--layer", url).code == 0
    hello = {"type": "chat.message", "text": "hi"}
    assert cli("group-send", "room-42", json.dumps(hello), "--layer", url).code == 0
    for channel in ("inbox-a", "inbox-b"):
        got = cli("receive", channel, "--timeout", "5", "--layer", url)
        assert (got.code, got.messages) == (0, [hello])
    assert cli("group-discard", "room-42", "inbox-b", "--layer", url).code == 0
    assert cli("group-discard", "room-42", "not-a-member", "--layer", url).code == 0
    assert cli("group-send", "room-42", '{"type": "second"}', "--layer", url).code == 0
    assert cli("receive", "inbox-a", "--timeout", "5", "--layer", url).messages == [
        {"type": "second"}
    ]
    assert cli("receive", "inbox-b", "--timeout", "0.2", "--layer", url).code == 1


def test_stdin_pipeline_of_100_lines_then_receive_count_100(url: str) -> None:
    lines = "".join(json.dumps({"type": "n", "seq": i}) + "\n" for i in range(100))
    sent = run("send", "numbers", "-", "--layer", url, stdin=lines)
    assert sent.returncode == 0, sent.stderr
    got = run("receive", "numbers", "--count", "100", "--timeout", "10", "--layer", url)
    assert got.returncode == 0, got.stderr
    assert [json.loads(line)["seq"] for line in got.stdout.splitlines()] == list(range(100))


def test_stdin_goes_out_in_send_many_chunks(
    cli: Cli, url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    chunks: list[int] = []
    real = SyncChannelLayer.send_many

    def counting(self: SyncChannelLayer, items: Any) -> list[BaseException | None]:
        chunks.append(len(items))
        return real(self, items)

    monkeypatch.setattr(SyncChannelLayer, "send_many", counting)
    lines = "".join(json.dumps({"type": "n", "seq": i}) + "\n" for i in range(2500))
    roomy = with_option(url, "capacity=5000")
    sent = cli("send", "chunked", "-", "--layer", roomy, stdin=lines)
    assert sent.code == 0, sent.err
    assert sum(chunks) == 2500
    assert max(chunks) <= 1000
    assert len(chunks) < 250, chunks  # batched, not a call per line
    got = cli("receive", "chunked", "--count", "2500", "--timeout", "10", "--layer", roomy)
    assert [m["seq"] for m in got.messages] == list(range(2500))


def test_a_streamed_line_goes_out_before_stdin_ends(url: str) -> None:
    sender = subprocess.Popen(
        [sys.executable, "-m", "layers", "send", "live", "-", "--layer", url],
        stdin=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=CLEAN_ENV,
    )
    assert sender.stdin is not None
    try:
        sender.stdin.write('{"type": "first"}\n')
        sender.stdin.flush()
        with SyncChannelLayer(url) as layer:
            assert layer.receive("live", timeout=15) == {"type": "first"}
    finally:
        _, err = sender.communicate(timeout=15)
    assert sender.returncode == 0, err


def test_group_send_reads_stdin_too(cli: Cli, url: str) -> None:
    assert cli("group-add", "feed", "reader", "--layer", url).code == 0
    sent = cli("group-send", "feed", "-", "--layer", url, stdin='{"type": "a"}\n\n{"type": "b"}\n')
    assert sent.code == 0, sent.err
    got = cli("receive", "reader", "--count", "2", "--timeout", "5", "--layer", url)
    assert got.messages == [{"type": "a"}, {"type": "b"}]


def test_receive_with_timeout_and_nothing_exits_1_quickly(url: str) -> None:
    start = time.monotonic()
    got = run("receive", "empty", "--timeout", "0.3", "--layer", url)
    assert time.monotonic() - start < 5
    assert got.returncode == 1
    assert got.stdout == ""
    assert "0 of 1 message(s) arrived on 'empty'" in one_line(got.stderr)


def test_receive_prints_what_arrived_before_the_timeout(cli: Cli, url: str) -> None:
    cli("send", "few", "-", "--layer", url, stdin='{"type": "a"}\n{"type": "b"}\n')
    got = cli("receive", "few", "--count", "3", "--timeout", "0.5", "--layer", url)
    assert got.code == 1
    assert got.messages == [{"type": "a"}, {"type": "b"}]
    assert "timed out after 0.5 s: 2 of 3 message(s) arrived on 'few'" in one_line(got.err)


def test_send_to_memory_works_though_the_message_dies_with_the_process(cli: Cli) -> None:
    got = cli("send", "jobs", '{"type": "t"}', "--layer", "memory://")
    assert (got.code, got.out, got.err) == (0, "", "")


# -- bytes ---------------------------------------------------------------------------------


def test_bytes_round_trip_through_receive_and_send(url: str) -> None:
    raw = bytes(range(256))
    with SyncChannelLayer(url) as layer:
        layer.send("blobs", {"type": "blob", "data": raw, "nested": [{"k": b""}]})
    got = run("receive", "blobs", "--timeout", "5", "--layer", url)
    assert got.returncode == 0, got.stderr
    printed = json.loads(got.stdout)
    assert printed["nested"] == [{"k": {"$bytes": ""}}]
    # What receive printed, send takes back: the copy has bytes again.
    copied = run("send", "copies", "-", "--layer", url, stdin=got.stdout)
    assert copied.returncode == 0, copied.stderr
    with SyncChannelLayer(url) as layer:
        copy = layer.receive("copies", timeout=5)
    assert copy == {"type": "blob", "data": raw, "nested": [{"k": b""}]}
    assert isinstance(copy["data"], bytes)


def test_the_json_form_of_bytes_and_lookalike_dicts() -> None:
    message = {
        "type": "t",
        "b": b"\x00\xff",
        "lookalike": {"$bytes": "not bytes"},
        "deeper": {"$dict": {"$bytes": b"x"}},
        "two_keys": {"$bytes": "AA==", "other": 1},
    }
    encoded = to_json(message)
    assert encoded["b"] == {"$bytes": "AP8="}
    assert encoded["lookalike"] == {"$dict": {"$bytes": "not bytes"}}
    assert encoded["two_keys"] == {"$bytes": "AA==", "other": 1}
    assert from_json(json.loads(json.dumps(encoded))) == message


def test_bad_base64_is_bad_input(cli: Cli) -> None:
    got = cli("send", "x", '{"type": "t", "b": {"$bytes": "%%%"}}', "--layer", "memory://")
    assert got.code == 2
    assert "message['b']: '%%%' is not valid base64" in one_line(got.err)
    lines = '{"type": "t"}\n{"type": "t", "b": [{"$bytes": 1}]}\n'
    got = cli("send", "x", "-", "--layer", "memory://", stdin=lines)
    assert got.code == 2
    assert "stdin line 2: message['b'][0] = {\"$bytes\": ...} needs a base64 string" in got.err


# -- bad input and layer errors -------------------------------------------------------------


def test_bad_json_on_stdin_exits_2_naming_the_line(cli: Cli, url: str) -> None:
    lines = '{"type": "a"}\n\n{"type": "b",}\n{"type": "c"}\n'
    got = cli("send", "lines", "-", "--layer", url, stdin=lines)
    assert got.code == 2
    err = one_line(got.err)
    assert "stdin line 3: not JSON" in err
    assert "(1 message(s) sent before it)" in err
    # The line before the bad one went out; the one after did not.
    assert cli("receive", "lines", "--count", "2", "--timeout", "0.3", "--layer", url).messages == [
        {"type": "a"}
    ]


def test_bad_json_argument_and_non_objects_exit_2(cli: Cli) -> None:
    got = cli("send", "x", "{type: 1}", "--layer", "memory://")
    assert got.code == 2
    assert "message: not JSON" in one_line(got.err)
    got = cli("send", "x", "-", "--layer", "memory://", stdin='{"type": "a"}\n[1, 2]\n')
    assert got.code == 2
    assert "stdin line 2: a message must be a JSON object, got list" in one_line(got.err)
    got = cli("send", "x", '{"no": "type"}', "--layer", "memory://")
    assert got.code == 2
    assert "InvalidMessage" in one_line(got.err)


def test_channel_full_exits_1_with_one_line(url: str) -> None:
    full = with_option(url, "capacity=1")
    assert run("send", "narrow", '{"type": "t"}', "--layer", full).returncode == 0
    got = run("send", "narrow", '{"type": "t"}', "--layer", full)
    assert got.returncode == 1
    assert "ChannelFull: channel 'narrow' is at its capacity of 1" in one_line(got.stderr)


def test_channel_full_on_stdin_names_the_line(cli: Cli, url: str) -> None:
    full = with_option(url, "capacity=2")
    got = cli("send", "narrow", "-", "--layer", full, stdin='{"type": "t"}\n' * 3)
    assert got.code == 1
    assert "stdin line 3: ChannelFull:" in one_line(got.err)
    assert "(2 message(s) sent before it)" in got.err


@pytest.mark.parametrize(
    ("args", "name"),
    [
        (("send", "bad name", '{"type": "t"}'), "'bad name'"),
        (("receive", "caf\u00e9", "--timeout", "1"), "'caf\u00e9'"),
        (("group-add", "room!1", "chan"), "'room!1'"),
        (("group-send", "a/b", '{"type": "t"}'), "'a/b'"),
    ],
)
def test_an_invalid_name_is_bad_input(cli: Cli, args: tuple[str, ...], name: str) -> None:
    got = cli(*args, "--layer", "redis://127.0.0.1:1")  # rejected before any connection
    assert got.code == 2
    err = one_line(got.err)
    assert "InvalidChannelName" in err
    assert name in err


@pytest.mark.parametrize("layer", ["redis://127.0.0.1:1", "amqp://guest:guest@127.0.0.1:1/"])
def test_an_unreachable_server_exits_1_with_one_line_and_nothing_else(layer: str) -> None:
    got = run("send", "jobs", '{"type": "t"}', "--layer", layer)
    assert got.returncode == 1
    assert "ChannelLayerConnectionError" in one_line(got.stderr)  # no client library's log


@pytest.mark.parametrize(
    "args",
    [
        ("send", "jobs"),
        ("receive", "jobs", "--count", "0"),
        ("receive", "jobs", "--timeout", "-1"),
        ("receive", "jobs", "--layer", "memory://", "--alias", "default"),
        ("send", "jobs", '{"type": "t"}', "--layer", "default"),
        ("stats", "--layer", "memory://", "--nope"),
    ],
)
def test_usage_errors_exit_2_with_one_line(cli: Cli, args: tuple[str, ...]) -> None:
    got = cli(*args)
    assert got.code == 2
    one_line(got.err)


# -- flush and stats ----------------------------------------------------------------------------


def test_flush_without_yes_and_no_tty_refuses(url: str) -> None:
    assert run("send", "kept", '{"type": "t"}', "--layer", url).returncode == 0
    got = run("flush", "--layer", url)
    assert got.returncode == 2
    err = one_line(got.stderr)
    assert "stdin is not a terminal; pass --yes" in err
    with SyncChannelLayer(url) as layer:
        assert layer.receive("kept", timeout=5) == {"type": "t"}


def test_flush_yes_removes_messages_and_groups(cli: Cli, url: str) -> None:
    cli("send", "gone", '{"type": "t"}', "--layer", url)
    cli("group-add", "room", "member", "--layer", url)
    got = cli("flush", "--yes", "--layer", url)
    assert got.code == 0, got.err
    assert got.out == f"flushed {shown(url)}\n"
    assert cli("receive", "gone", "--timeout", "0.2", "--layer", url).code == 1
    with SyncChannelLayer(url) as layer:
        assert layer.group_channels("room") == []


def test_flush_asks_on_a_tty(cli: Cli, url: str) -> None:
    cli("send", "asked", '{"type": "t"}', "--layer", url)
    no = cli("flush", "--layer", url, stdin="\n", tty=True)
    assert no.code == 1
    assert no.err.startswith(f"Flush every message and group of {shown(url)}? [y/N] ")
    assert no.err.endswith("chanlayers: nothing flushed\n")
    yes = cli("flush", "--layer", url, stdin="y\n", tty=True)
    assert yes.code == 0, yes.err
    assert cli("receive", "asked", "--timeout", "0.2", "--layer", url).code == 1


def test_flush_prompt_hides_the_password(cli: Cli) -> None:
    got = cli("flush", "--layer", "redis://user:secret@127.0.0.1:1/0?prefix=x")
    assert got.code == 2
    assert "secret" not in got.err
    assert "redis://user:***@127.0.0.1:1/0?prefix=x" in got.err


def test_stats_table_and_json(cli: Cli, url: str, shared: tuple[dict[str, Any], str]) -> None:
    backend = shared[0]["BACKEND"].rpartition(".")[2]
    table = cli("stats", "--layer", url)
    assert table.code == 0, table.err
    assert table.out.splitlines()[0].split() == ["backend", backend]
    as_json = cli("stats", "--json", "--layer", url)
    assert as_json.code == 0, as_json.err
    figures = json.loads(as_json.out)
    assert figures["backend"] == backend
    assert figures["scope"] == "deployment"  # every backend keeps shared figures
    assert figures["counters"]["sent"] >= 0
    exposition = cli("stats", "--prometheus", "--layer", url)
    assert exposition.code == 0, exposition.err
    names = {f.name for f in text_string_to_metric_families(exposition.out)}
    assert {"chanlayers_sent", "chanlayers_delivered", "chanlayers_dropped"} <= names


# -- which layer ------------------------------------------------------------------------------


def test_layer_from_environment_variables(url: str) -> None:
    by_url = run("send", "env-url", '{"type": "a"}', env={"CHANNEL_LAYER_URL": url})
    assert by_url.returncode == 0, by_url.stderr
    layers = json.dumps({"other": url})
    by_alias = run(
        "send", "env-alias", '{"type": "b"}', "--alias", "other", env={"CHANNEL_LAYERS": layers}
    )
    assert by_alias.returncode == 0, by_alias.stderr
    with SyncChannelLayer(url) as layer:
        assert layer.receive("env-url", timeout=5) == {"type": "a"}
        assert layer.receive("env-alias", timeout=5) == {"type": "b"}
    missing = run("send", "x", '{"type": "b"}', "--alias", "nope", env={"CHANNEL_LAYERS": layers})
    assert missing.returncode == 1
    assert "no channel layer 'nope'" in one_line(missing.stderr)


def test_layer_from_django_settings(
    url: str, shared: tuple[dict[str, Any], str], tmp_path: Path
) -> None:
    module = f"tcli_settings_{secrets.token_hex(4)}"
    entry = shared[0]
    (tmp_path / f"{module}.py").write_text(
        f"SECRET_KEY = 'x'\nCHANNEL_LAYERS = {{'default': {entry!r}}}\n"
    )
    sent = run("send", "from-django", '{"type": "d"}', "--settings", module, cwd=tmp_path)
    assert sent.returncode == 0, sent.stderr
    with SyncChannelLayer(url) as layer:
        assert layer.receive("from-django", timeout=5) == {"type": "d"}
    missing = run("stats", "--settings", "no_such_settings_module", cwd=tmp_path)
    assert missing.returncode == 2
    assert "no module named 'no_such_settings_module'" in one_line(missing.stderr)


# -- help -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "command",
    [
        "send",
        "group-send",
        "receive",
        "group-add",
        "group-discard",
        "flush",
        "stats",
        "demo",
        "backends",
    ],
)
def test_every_subcommand_has_help_with_examples(cli: Cli, command: str) -> None:
    got = cli(command, "--help")
    assert got.code == 0
    assert "example" in got.out
    assert f"chanlayers {command}" in got.out


def test_help_documents_the_bytes_form_and_exit_status(cli: Cli) -> None:
    for command in ("send", "receive"):
        out = cli(command, "--help").out
        assert '{"$bytes": "<base64>"}' in out
        assert "exit status" in out


# -- no layer, unreachable servers, non-JSON numbers, --version ------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ("send", "jobs", '{"type": "t"}'),
        ("group-send", "room", '{"type": "t"}'),
        ("receive", "jobs", "--timeout", "1"),
        ("group-add", "room", "jobs"),
        ("group-discard", "room", "jobs"),
        ("flush", "--yes"),
        ("stats",),
        ("worker", "jobs", "--app", "json:loads"),
    ],
)
def test_no_layer_configured_is_refused_with_a_hint(
    cli: Cli, monkeypatch: pytest.MonkeyPatch, args: tuple[str, ...]
) -> None:
    # A process-private in-memory layer would report success and deliver nowhere.
    for name in ("CHANNEL_LAYERS", "CHANNEL_LAYER_URL", "DJANGO_SETTINGS_MODULE"):
        monkeypatch.delenv(name, raising=False)
    got = cli(*args)
    assert got.code == 2
    err = one_line(got.err)
    assert "no channel layer is configured" in err
    assert "--layer URL" in err
    assert "memory://" in err
    assert "CHANNEL_LAYER_URL" in err


def test_receive_from_a_server_that_is_not_there_fails_at_once(cli: Cli) -> None:
    started = time.monotonic()
    got = cli("receive", "jobs", "--layer", "redis://127.0.0.1:1")
    assert got.code == 1
    assert "ChannelLayerConnectionError" in one_line(got.err)
    assert time.monotonic() - started < 20  # not waiting for ever


def test_receive_retry_keeps_trying_visibly_until_the_timeout(cli: Cli) -> None:
    got = cli("receive", "jobs", "--retry", "--timeout", "3", "--layer", "redis://127.0.0.1:1")
    assert got.code == 1
    lines = got.err.splitlines()
    assert len(lines) >= 2
    assert all(line.startswith("chanlayers: ") for line in lines)
    assert "(retrying in 2 s)" in lines[0]


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinity_are_not_json(cli: Cli, constant: str) -> None:
    got = cli("send", "x", f'{{"type": "t", "f": {constant}}}', "--layer", "memory://")
    assert got.code == 2
    assert f"{constant} is not JSON" in one_line(got.err)
    got = cli("send", "x", "-", "--layer", "memory://", stdin=f'{{"type": "t", "f": {constant}}}')
    assert got.code == 2
    assert f"stdin line 1: {constant} is not JSON" in one_line(got.err)


def test_version(cli: Cli) -> None:
    got = cli("--version")
    assert got.code == 0
    assert re.fullmatch(r"chanlayers \d+\.\d+\.\d+\S*\n", got.out)

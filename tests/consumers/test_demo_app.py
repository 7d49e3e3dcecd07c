"""The chat demo's application under the communicators, its layer choice, --console."""

from __future__ import annotations

import os
import secrets
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from consumers.demo import serve
from consumers.demo.app import allowed_hosts, make_app
from consumers.testing import ApplicationCommunicator, HttpCommunicator, WebsocketCommunicator
from layers import ChannelLayer

# The page's own origin, as a browser on this machine sends it.
LOCAL = [(b"origin", b"http://localhost:8000")]


async def joined(path: str = "/ws/lobby") -> tuple[WebsocketCommunicator, dict[str, Any]]:
    comm = WebsocketCommunicator(make_app(), path, headers=LOCAL)
    assert (await comm.connect())[0] is True
    welcome = await comm.receive_json_from()
    return comm, welcome


async def next_chat(comm: WebsocketCommunicator) -> dict[str, Any]:
    while True:
        frame = await comm.receive_json_from()
        if frame["type"] in {"message", "error"}:
            return dict(frame)


async def test_the_page_is_one_self_contained_html_file() -> None:
    response = await HttpCommunicator(make_app(), "GET", "/").get_response()
    assert response["status"] == 200
    assert (b"content-type", b"text/html; charset=utf-8") in response["headers"]
    page = response["body"]
    assert b"new WebSocket(" in page
    assert b"/ws/" in page
    # No CDN, no external script, style or font.
    assert b"src=" not in page
    assert b"<link" not in page
    assert b"https://" not in page
    missing = await HttpCommunicator(make_app(), "GET", "/nope").get_response()
    assert missing["status"] == 404
    icon = await HttpCommunicator(make_app(), "GET", "/favicon.ico").get_response()
    assert icon["status"] == 200
    assert (b"content-type", b"image/svg+xml") in icon["headers"]
    assert icon["body"].startswith(b"<svg")


async def test_two_clients_in_a_room_and_a_group_send_from_outside(layer: ChannelLayer) -> None:
    first, welcome = await joined()
    assert welcome["type"] == "welcome"
    assert welcome["room"] == "lobby"
    assert welcome["pid"] == os.getpid()
    second, _ = await joined()
    assert len(await layer.group_channels("room.lobby")) == 2

    await first.send_json_to({"user": "ann", "text": "hi all"})
    for comm in (first, second):
        assert await next_chat(comm) == {
            "type": "message",
            "user": "ann",
            "text": "hi all",
            "pid": os.getpid(),
        }
    await layer.group_send("room.lobby", {"type": "chat.message", "text": "hi", "user": "ops"})
    for comm in (first, second):
        assert await next_chat(comm) == {
            "type": "message",
            "user": "ops",
            "text": "hi",
            "pid": None,
        }

    elsewhere, _ = await joined("/ws/kitchen")
    await elsewhere.send_json_to({"text": "only here"})
    assert (await next_chat(elsewhere))["user"] == "anonymous"
    assert await first.receive_nothing() is True

    await first.send_json_to({"text": "   "})
    assert await next_chat(first) == {
        "type": "error",
        "error": "'text' must be a non-empty string",
    }
    await first.send_json_to(["not", "an", "object"])
    assert (await next_chat(first))["type"] == "error"
    for comm in (first, second, elsewhere):
        await comm.disconnect()
    assert await layer.group_channels("room.lobby") == []


async def test_a_room_that_cannot_be_a_group_is_refused(layer: ChannelLayer) -> None:
    comm = WebsocketCommunicator(make_app(), "/ws/no%20spaces", headers=LOCAL)
    assert await comm.connect() == (False, 1000)
    await comm.disconnect()
    long_room = WebsocketCommunicator(make_app(), "/ws/" + "x" * 100, headers=LOCAL)
    assert (await long_room.connect())[0] is False
    await long_room.disconnect()


@pytest.mark.parametrize(
    "headers",
    [
        [(b"origin", b"https://evil.example")],
        [(b"origin", b"http://localhost.evil.example:8000")],
        [],  # no Origin: as in Channels, refused unless "*" is allowed
    ],
)
async def test_another_sites_page_cannot_join_a_room(
    layer: ChannelLayer, headers: list[tuple[bytes, bytes]]
) -> None:
    comm = WebsocketCommunicator(make_app(), "/ws/lobby", headers=headers)
    assert await comm.connect() == (False, 1000)
    await comm.disconnect()
    assert await layer.group_channels("room.lobby") == []


def test_the_demo_allows_this_machine_and_what_it_is_told() -> None:
    assert allowed_hosts({}) == ["localhost", "127.0.0.1", "[::1]"]
    assert allowed_hosts({"CHANLAYERS_DEMO_ALLOWED_HOSTS": "a.example, .b.example"}) == [
        "a.example",
        ".b.example",
    ]


async def test_lifespan_closes_the_layer_at_shutdown(layer: ChannelLayer) -> None:
    comm = ApplicationCommunicator(make_app(), {"type": "lifespan"})
    await comm.send_input({"type": "lifespan.startup"})
    assert await comm.receive_output() == {"type": "lifespan.startup.complete"}
    await comm.send_input({"type": "lifespan.shutdown"})
    assert await comm.receive_output() == {"type": "lifespan.shutdown.complete"}
    await comm.wait()
    assert layer.closed


def test_layer_choice(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(serve, "available_backends", lambda: ["memory://"])
    chosen = serve.plan(None, 2, environ={})
    assert (chosen.layer, chosen.workers) == ("memory://", 1)
    assert "for chat across worker processes use --layer ipc://" in chosen.notes[0]
    monkeypatch.setattr(serve, "available_backends", lambda: ["memory://", "ipc://"])
    assert serve.plan(None, 2, environ={}) == serve.DemoPlan("ipc://chanlayers-demo", 2, ())
    from_env = serve.plan(None, 3, environ={"CHANNEL_LAYER_URL": "redis://h:6379"})
    assert from_env == serve.DemoPlan("redis://h:6379", 3, ())
    assert serve.plan("redis://x:1", 2, environ={"CHANNEL_LAYER_URL": "memory://"}).layer == (
        "redis://x:1"
    )


def test_console_demo_is_still_there() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "layers", "demo", "--console"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "chat demo on InMemoryChannelLayer: 3 clients in room-42" in result.stdout
    bad = subprocess.run(
        [sys.executable, "-m", "layers", "demo", "--port", "70000"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 2
    assert "a port is 1-65535" in bad.stderr


async def test_join_and_leave_lines_name_the_user(layer: ChannelLayer) -> None:
    watcher, _ = await joined("/ws/hall")
    assert (await watcher.receive_json_from())["user"] == "anonymous"  # its own join
    ann, _ = await joined("/ws/hall?user=ann")
    frame = await watcher.receive_json_from()
    assert (frame["type"], frame["event"], frame["user"]) == ("presence", "joined", "ann")
    await ann.disconnect()
    frame = await watcher.receive_json_from()
    assert (frame["event"], frame["user"]) == ("left", "ann")
    await watcher.disconnect()


def test_the_printed_group_send_command_works_in_a_new_shell(tmp_path: Path) -> None:
    # A new shell has no venv on PATH: the hint names the script (or python) in full.
    hint = serve.group_send_hint(f"ipc://hint{secrets.token_hex(3)}")
    assert os.path.isabs(shlex.split(hint)[0])
    done = subprocess.run(
        ["/bin/sh", "-c", hint],
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr

"""The chanlayers console script, run as a real subprocess."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "layers", *args], capture_output=True, text=True, timeout=60
    )


def test_demo_runs_the_chat_room_in_memory() -> None:
    result = run("demo", "--clients", "4")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "chat demo on InMemoryChannelLayer: 4 clients in room-42" in out
    assert out.count("<- alice: hello, room 42") == 4
    assert "every client got [3, 3, 3, 3] lines; room-42 now has 0 members" in out
    assert "job 2 refused: channel 'thumbnails' is at its capacity of 2 messages" in out
    assert "worker took job 1" in out
    assert "groups=0" in out


def test_backends_lists_memory_as_available() -> None:
    result = run("backends")
    assert result.returncode == 0
    line = next(x for x in result.stdout.splitlines() if x.startswith("memory://"))
    assert line.endswith(" available")


def test_layer_errors_exit_1_with_one_line() -> None:
    result = run("demo", "--layer", "mqtt://nowhere")
    assert result.returncode == 1
    assert result.stderr.strip().count("\n") == 0
    assert "ConfigError: unknown channel layer URL scheme 'mqtt'" in result.stderr
    assert "Traceback" not in result.stderr


def test_help_and_usage() -> None:
    assert "chanlayers demo" in run("--help").stdout
    assert "--clients" in run("demo", "--help").stdout
    assert run().returncode == 2
    assert run("demo", "--clients", "9").returncode == 2


def test_bench_runs_from_the_checkout(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "layers",
            "bench",
            "--quick",
            "--only",
            "W1",
            "--layers",
            "ours",
            "--json",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    assert out.exists()
    elsewhere = subprocess.run(
        [sys.executable, "-m", "layers", "bench", "--quick"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert elsewhere.returncode == 1
    assert "the 'bench' command is not available here" in elsewhere.stderr
    assert "runs from the checkout's root" in elsewhere.stderr

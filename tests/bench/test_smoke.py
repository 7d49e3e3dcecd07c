"""The benchmark runs, checks delivery, and reports a failing layer as FAIL, never a number."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bench.model import RunContext, WorkloadFailed
from bench.workloads import p2p_throughput
from layers.inmemory import InMemoryChannelLayer

ROOT = Path(__file__).resolve().parents[2]


# Our layers and one peer, each workload once (.ci/run then runs every target, peers and
# ceilings included): longer than one test usually takes.
@pytest.mark.timeout(150)
def test_quick_run_reports_every_workload(tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    layers = "ours,channels,ours-ipc,ours-redis,ours-rabbitmq"
    result = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--layers", layers, "--json", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=140,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ours/channels" in result.stdout
    report = json.loads(out.read_text())
    assert report["settings"]["quick"] is True
    ours = [r for r in report["results"] if r["target"] == "ours"]
    by_case = {r["case"]: r for r in ours}
    for case in ("W1", "W2", "W3 G=100"):
        assert by_case[case]["status"] == "ok", by_case[case]
        assert all(v["median"] > 0 for v in by_case[case]["figures"].values())
    assert any(r["status"] == "n/a" and r["reason"] for r in ours)


class DropsOne(InMemoryChannelLayer):
    """A layer that silently loses its 10th message."""

    sent = 0

    async def send(self, channel: str, message: dict[str, Any]) -> None:
        self.sent += 1
        if self.sent != 10:
            await super().send(channel, message)


def test_a_layer_that_loses_a_message_fails_the_run() -> None:
    ctx = RunContext(lambda: DropsOne(capacity=1000), stall_seconds=1, limit_seconds=10)
    with pytest.raises(WorkloadFailed, match="lost|stalled|missing|gap"):
        asyncio.run(p2p_throughput(ctx, 100, False))


def test_quick_run_reports_the_memory_probe(tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    argv = ["--quick", "--only", "RSS", "--layers", "ours,channels", "--json", str(out)]
    result = subprocess.run(
        [sys.executable, "-m", "bench", *argv],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1,000 idle new_channel() receivers in 10 groups" in result.stdout
    memory = {m["target"]: m for m in json.loads(out.read_text())["memory"]}
    assert set(memory) == {"ours", "channels"}
    for figures in memory.values():
        assert figures["failure"] == "", figures
        assert figures["peak_mib"] >= figures["baseline_mib"] > 0

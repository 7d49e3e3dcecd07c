"""Peak RSS of a receiver holding many idle process-local channels in a few groups.

``python -m bench.memory '<json spec>'`` is the child: it builds one target's layer, makes
``channels`` channels with ``new_channel()``, adds each to one of ``groups`` groups, and
parks one pending ``receive()`` per channel (an idle WebSocket consumer each). Then it
sends one group message per group and checks that every channel got exactly one, so an
idle layer that silently dropped its receivers cannot look small. It reports its peak
RSS (``VmHWM``) before the layer was made and at the end, as one JSON line.

Each target runs in a fresh process, so imports and the allocator's history of one
target never count against another.
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import secrets
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .catalogue import all_targets
from .targets import Target

__all__ = ["MemoryResult", "measure_memory", "render_memory"]

_ROOT = Path(__file__).resolve().parent.parent
_CHILD_SECONDS = 300.0
MEMORY_TARGETS = (
    "ours",
    "channels",
    "ours-ipc",
    "ours-redis",
    "cr-core",
    "cr-pubsub",
    "ours-rabbitmq",
    "channels-rabbitmq",
)
"""Layers measured, when available: ours against the peer of each family."""


@dataclass(frozen=True)
class MemoryResult:
    """One target's figures, or why it failed."""

    target: str
    channels: int
    groups: int
    baseline_mib: float = 0.0
    peak_mib: float = 0.0
    seconds: float = 0.0
    failure: str = ""

    @property
    def held_mib(self) -> float:
        """Peak RSS above the process's RSS before the layer existed."""
        return self.peak_mib - self.baseline_mib


def _peak_mib() -> float:
    # VmHWM is this address space's own peak. ru_maxrss is not: Linux carries the
    # parent's peak into a child started with vfork and exec (as subprocess does).
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


async def _hold(target: Target, prefix: str, channels: int, groups: int) -> dict[str, Any]:
    assert target.factory is not None
    baseline = _peak_mib()
    started = time.perf_counter()
    layer = target.factory(prefix)
    try:
        names = [await layer.new_channel() for _ in range(channels)]
        for i, name in enumerate(names):
            await layer.group_add(f"g{i % groups}", name)
        waiting = [asyncio.ensure_future(layer.receive(name)) for name in names]
        await asyncio.sleep(0.5)  # let every receive() park, and the layer settle, idle
        for g in range(groups):
            await layer.group_send(f"g{g}", {"type": "bench.wake", "group": g})
        done, pending = await asyncio.wait(waiting, timeout=60)
        for task in pending:
            task.cancel()
        got = sum(1 for task in done if not task.cancelled() and task.exception() is None)
        if got != channels:
            return {"failure": f"only {got} of {channels} idle channels got their group message"}
        return {
            "baseline_mib": baseline,
            "peak_mib": _peak_mib(),
            "seconds": time.perf_counter() - started,
        }
    finally:
        await layer.close()


def _child(spec: dict[str, Any]) -> None:
    target = {t.key: t for t in all_targets()}[spec["target"]]
    prefix = f"bm{secrets.token_hex(4)}"
    try:
        result = asyncio.run(_hold(target, prefix, spec["channels"], spec["groups"]))
    finally:
        if target.cleanup is not None:  # outside the loop: a cleanup may run its own
            target.cleanup(prefix)
    sys.stdout.write(json.dumps(result) + "\n")


def _run_one(target: Target, channels: int, groups: int) -> MemoryResult:
    spec = {"target": target.key, "channels": channels, "groups": groups}
    path = os.pathsep.join(p for p in (str(_ROOT), os.environ.get("PYTHONPATH")) if p)
    base = MemoryResult(target.key, channels, groups)
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "bench.memory", json.dumps(spec)],
            capture_output=True,
            text=True,
            timeout=_CHILD_SECONDS,
            env={**os.environ, "PYTHONPATH": path},
            check=False,
        )
    except subprocess.TimeoutExpired:
        return MemoryResult(**{**base.__dict__, "failure": f"took over {_CHILD_SECONDS:.0f}s"})
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return MemoryResult(**{**base.__dict__, "failure": f"exit {proc.returncode}: {tail}"})
    return MemoryResult(**{**base.__dict__, **json.loads(lines[-1])})


def measure_memory(
    targets: list[Target], channels: int = 10_000, groups: int = 10
) -> list[MemoryResult]:
    """Run the idle-channel memory probe for each available target in MEMORY_TARGETS."""
    chosen = [t for t in targets if t.key in MEMORY_TARGETS and t.factory is not None]
    return [_run_one(t, channels, groups) for t in chosen]


def render_memory(results: list[MemoryResult]) -> str:
    """A small table: peak RSS and RSS held by the layer, with ratios to the family's peer."""
    if not results:
        return ""
    first = results[0]
    lines = [
        f"Peak RSS, {first.channels:,} idle new_channel() receivers in {first.groups} groups"
        " (lower is better)",
        f"{'target':<12} {'peak MiB':>9} {'held MiB':>9} {'held/peer':>10}",
    ]
    peers = {"ours": "channels", "ours-redis": "cr-core", "ours-rabbitmq": "channels-rabbitmq"}
    held = {r.target: r.held_mib for r in results if not r.failure}
    for r in results:
        if r.failure:
            lines.append(f"{r.target:<12} FAIL: {r.failure}")
            continue
        peer = peers.get(r.target)
        ratio = f"{r.held_mib / held[peer]:.2f}x" if peer in held and held[peer] > 0 else ""
        lines.append(f"{r.target:<12} {r.peak_mib:>9.1f} {r.held_mib:>9.1f} {ratio:>10}")
    return "\n".join(lines)


if __name__ == "__main__":
    _child(json.loads(sys.argv[1]))

"""async_to_sync from sync code, the way Django views call a layer, in a process of its own."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from tests.contract.conftest import Layers

ROOT = Path(__file__).parents[2]
# A hang is what this catches; a healthy run takes a second or two.
LIMIT = 30.0


def test_sequential_async_to_sync_calls_then_a_prompt_exit(make_layer: Layers) -> None:
    layer = make_layer()  # its prefix, flushed at teardown, is the child's
    variant = make_layer.variant
    options = {**variant.options, "prefix": layer.prefix}
    factory = f"{variant.factory.__module__}:{variant.factory.__qualname__}"
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "tests.contract.async_to_sync_child", factory, json.dumps(options)],
        capture_output=True,
        text=True,
        timeout=LIMIT,
        cwd=ROOT,
    )
    took = time.monotonic() - started
    assert done.returncode == 0, done.stderr
    expected = [0, 1, 2, 10, 11, 12]
    assert json.loads(done.stdout) == {"main": expected, "pool": expected}
    # Nothing on stderr: no traceback from a loop's shutdown, no warning of a slow one.
    assert done.stderr == ""
    assert took < LIMIT / 2, f"the script took {took:.1f}s"

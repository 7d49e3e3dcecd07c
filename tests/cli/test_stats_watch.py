"""`chanlayers stats --watch` in a pseudo-terminal: frames redrawn in place, with rates
that follow what the deployment does (an IPC region other processes write to)."""

from __future__ import annotations

import os
import pty
import re
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

from layers.sync import SyncChannelLayer

ROOT = Path(__file__).resolve().parents[2]
CLEAR = "\x1b[H\x1b[2J"


def sent_rates(text: str) -> list[float]:
    """The rate on the 'sent' line of every complete frame in text."""
    frames = text.split(CLEAR)[1:-1]  # the last may still be being written
    found = [re.search(r"^sent\s+[\d,]+\s+([\d,.]+)/s", f, re.MULTILINE) for f in frames]
    return [float(m.group(1).replace(",", "")) for m in found if m]


def read_until(fd: int, seen: list[str], done: object, limit: float) -> str:
    """Read the terminal until done(text) or limit seconds; the text so far."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        try:
            chunk = os.read(fd, 65536)
        except BlockingIOError:
            time.sleep(0.05)
            continue
        seen.append(chunk.decode(errors="replace"))
        if done("".join(seen)):  # type: ignore[operator]
            break
    return "".join(seen)


def test_watch_redraws_in_place_with_rates_that_change() -> None:
    name = f"watch-{secrets.token_hex(4)}"
    url = f"ipc://{name}"
    writer = SyncChannelLayer(url)
    master, slave = pty.openpty()
    os.set_blocking(master, False)
    proc = subprocess.Popen(
        [sys.executable, "-m", "layers", "stats", "--watch", "0.5", "--layer", url],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        cwd=ROOT,
        env={**os.environ, "TERM": "xterm"},
    )
    os.close(slave)
    seen: list[str] = []
    try:
        assert read_until(master, seen, lambda t: len(sent_rates(t)) >= 1, 20)
        # Busy: messages go out while the watcher redraws.
        busy_until = time.monotonic() + 2.5
        i = 0
        while time.monotonic() < busy_until:
            writer.send_many([("work", {"type": "w", "i": i + k}) for k in range(20)])
            for _ in range(20):
                writer.receive("work", timeout=5)
            i += 20
            time.sleep(0.02)
        busy = sent_rates(read_until(master, seen, lambda t: False, 0.6))
        assert max(busy) > 0, busy
        # Idle again: the rate falls back to 0.
        idle = read_until(master, seen, lambda t: sent_rates(t)[-2:] == [0.0, 0.0], 20)
        rates = sent_rates(idle)
        assert rates[-2:] == [0.0, 0.0], rates
        assert len(set(rates)) >= 2, "the rates never changed"
        assert CLEAR in idle  # redrawn in place, not scrolled
        proc.send_signal(signal.SIGINT)
        assert proc.wait(10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
        writer.flush()
        writer.close()

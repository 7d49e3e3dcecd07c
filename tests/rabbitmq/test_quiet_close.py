"""close() during the first connect: one clear error for the call it cut, nothing on stderr."""

from __future__ import annotations

import secrets
import subprocess
import sys
from pathlib import Path

from tests.rabbitmq.conftest import MakeLayer

ROOT = Path(__file__).parents[2]


def test_close_while_connecting_is_one_clear_error_and_quiet(
    amqp_url: str, rabbit: MakeLayer
) -> None:
    prefix = f"t{secrets.token_hex(4)}"
    rabbit(prefix=prefix)  # flushes what the tries left, at teardown
    done = subprocess.run(
        [sys.executable, "-m", "tests.rabbitmq.close_while_connecting", amqp_url, prefix],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    outcomes = done.stdout.splitlines()
    assert len(outcomes) == 10
    for outcome in outcomes:
        assert outcome == "sent" or outcome.startswith("ChannelLayerClosed: "), outcome
    assert any(outcome != "sent" for outcome in outcomes)  # some close did cut a connect

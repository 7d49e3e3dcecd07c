"""A script that never closes its SyncChannelLayer still exits cleanly."""

from __future__ import annotations

import secrets
import subprocess
import sys
import textwrap

import pytest

from layers import ConfigError, SyncChannelLayer
from tests.helpers import with_prefix

SCRIPT = textwrap.dedent(
    """
    import sys
    from layers import SyncChannelLayer
    layer = SyncChannelLayer(sys.argv[1])
    channel = layer.new_channel()
    layer.send(channel, {"type": "t", "n": 1})
    assert layer.receive(channel, timeout=5) == {"type": "t", "n": 1}
    layer.group_add("g", channel)
    layer.group_send("g", {"type": "t"})
    print("done")
    # no close(): interpreter exit must close it without a warning
    """
)


@pytest.mark.parametrize("scheme", ["memory", "ipc", "redis", "amqp"])
def test_exit_without_close_is_clean(scheme: str, request: pytest.FixtureRequest) -> None:
    name = f"exit{secrets.token_hex(3)}"
    if scheme == "memory":
        url = "memory://"
    elif scheme == "ipc":
        url = f"ipc://{name}"
    else:
        url = with_prefix(request.getfixturevalue(f"{scheme}_url"), name)
    result = subprocess.run(
        [sys.executable, "-X", "dev", "-W", "error", "-c", SCRIPT, url],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "done"
    assert result.stderr == ""


def test_an_address_without_scheme_gets_a_hint() -> None:
    with pytest.raises(ConfigError, match=r"neither a layer URL .* redis://localhost:6379"):
        SyncChannelLayer("localhost:6379")

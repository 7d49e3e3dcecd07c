"""`chanlayers worker` as a real subprocess on the real Redis: jobs in, replies out, SIGTERM."""

from __future__ import annotations

import asyncio
import secrets
import signal
from pathlib import Path

from layers import ChannelLayer, layer_from_url
from tests.consumers.conftest import cli_process

JOBS = """
import asyncio
from consumers import AsyncConsumer, ChannelNameRouter


class Resize(AsyncConsumer):
    async def image_resize(self, message):
        if message.get("wait"):
            await self.channel_layer.send(message["reply_to"], {"type": "started"})
            await asyncio.sleep(message["wait"])
        size = message["width"] // 2
        await self.channel_layer.send(
            message["reply_to"], {"type": "resized", "id": message["id"], "width": size}
        )


router = ChannelNameRouter({"resize": Resize.as_asgi()})
"""


async def next_line(process: asyncio.subprocess.Process) -> str:
    assert process.stdout is not None
    return (await asyncio.wait_for(process.stdout.readline(), timeout=20)).decode()


async def test_worker_runs_jobs_and_stops_cleanly_on_sigterm(
    redis_layer_url: str, tmp_path: Path
) -> None:
    module = f"jobs_{secrets.token_hex(4)}"
    (tmp_path / f"{module}.py").write_text(JOBS)
    layer: ChannelLayer = layer_from_url(redis_layer_url)
    async with layer:
        args = ("worker", "resize", "--app", f"{module}:router", "--layer", redis_layer_url)
        async with cli_process(*args, cwd=str(tmp_path)) as worker:
            assert "receiving on resize" in await next_line(worker)
            for job in range(5):
                await layer.send(
                    "resize",
                    {"type": "image.resize", "id": job, "width": 100 * job, "reply_to": "out"},
                )
            replies = [await asyncio.wait_for(layer.receive("out"), timeout=10) for _ in range(5)]
            assert replies == [
                {"type": "resized", "id": job, "width": 50 * job} for job in range(5)
            ]

            # SIGTERM while a job runs: it finishes, the next one stays queued.
            slow = {"type": "image.resize", "id": 9, "width": 8, "wait": 0.3, "reply_to": "out"}
            await layer.send("resize", slow)
            assert (await asyncio.wait_for(layer.receive("out"), timeout=10))["type"] == "started"
            queued = {"type": "image.resize", "id": 10, "width": 2, "reply_to": "out"}
            await layer.send("resize", queued)
            worker.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(worker.wait(), timeout=20) == 0
            rest = await asyncio.wait_for(worker.stdout.read(), timeout=5)  # type: ignore[union-attr]
            assert "SIGTERM: finishing running jobs" in rest.decode()
            assert "stopped: 6 handled, 0 failed, 0 cancelled" in rest.decode()
            done = await asyncio.wait_for(layer.receive("out"), timeout=5)
            assert done == {"type": "resized", "id": 9, "width": 4}
            assert await asyncio.wait_for(layer.receive("resize"), timeout=5) == queued


async def test_worker_usage_errors_exit_2_with_one_line() -> None:
    cases = [
        (("jobs!local",), "json:loads", "'jobs!local' is process-local"),
        (("jobs",), "no_such_jobs_module:app", "no module named 'no_such_jobs_module'"),
        (("jobs",), "json", "--app takes 'module:attribute'"),
    ]
    for channels, app, expected in cases:
        args = ("worker", *channels, "--app", app, "--layer", "memory://")
        async with cli_process(*args) as worker:
            assert await asyncio.wait_for(worker.wait(), timeout=20) == 2
            out = (await worker.stdout.read()).decode()  # type: ignore[union-attr]
            assert expected in out
            assert out.strip().count("\n") == 0

"""The worker: a new instance per message, order, failures, clean stop; in-process on memory://."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from consumers import AsyncConsumer, ChannelNameRouter, SyncConsumer
from consumers.worker import Worker, check_channels, load_application
from layers import ChannelLayer, ChannelLayerClosed, InvalidChannelName, get_channel_layer
from layers.config import reset_channel_layers
from tests.redis_procs import RedisProcess


class Thumbnails(AsyncConsumer):
    """Replies to message['reply_to'] with the job id, its scope and its own identity."""

    async def thumbnail_make(self, message: dict[str, Any]) -> None:
        assert self.channel_layer is not None
        if message.get("fail"):
            raise RuntimeError(f"job {message['id']} failed on purpose")
        if message.get("wait"):
            await self.channel_layer.send(message["reply_to"], {"type": "started"})
            await asyncio.sleep(message["wait"])
        reply = {"type": "done", "id": message["id"], "scope": dict(self.scope), "me": id(self)}
        await self.channel_layer.send(message["reply_to"], reply)


class Mail(SyncConsumer):
    def mail_send(self, message: dict[str, Any]) -> None:
        from asgiref.sync import async_to_sync

        assert self.channel_layer is not None
        async_to_sync(self.channel_layer.send)(message["reply_to"], {"type": "sent", "to": "x"})


ROUTER = ChannelNameRouter({"thumbs": Thumbnails.as_asgi(), "mail": Mail.as_asgi()})


async def started(layer: ChannelLayer) -> tuple[Worker, asyncio.Task[None]]:
    worker = Worker(ROUTER, ["thumbs", "mail"], layer)
    return worker, asyncio.create_task(worker.run())


async def reply(layer: ChannelLayer, channel: str = "results") -> dict[str, Any]:
    return await asyncio.wait_for(layer.receive(channel), timeout=2)


async def test_each_message_gets_a_new_instance_in_order(layer: ChannelLayer) -> None:
    worker, task = await started(layer)
    for job in range(5):
        await layer.send("thumbs", {"type": "thumbnail.make", "id": job, "reply_to": "results"})
    await layer.send("mail", {"type": "mail.send", "reply_to": "mail-results"})
    replies = [await reply(layer) for _ in range(5)]
    assert [r["id"] for r in replies] == [0, 1, 2, 3, 4]
    assert replies[0]["scope"] == {"type": "channel", "channel": "thumbs"}
    assert (await reply(layer, "mail-results"))["type"] == "sent"
    worker.stop()
    await asyncio.wait_for(task, timeout=2)
    assert worker.stats == {"handled": 6, "failed": 0, "cancelled": 0}


async def test_a_failed_job_is_logged_and_the_next_runs(
    layer: ChannelLayer, caplog: pytest.LogCaptureFixture
) -> None:
    worker, task = await started(layer)
    await layer.send("thumbs", {"type": "thumbnail.make", "id": 1, "fail": True})
    await layer.send("thumbs", {"type": "thumbnail.make", "id": 2, "reply_to": "results"})
    assert (await reply(layer))["id"] == 2
    worker.stop()
    await asyncio.wait_for(task, timeout=2)
    assert worker.stats["failed"] == 1
    [record] = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert "'thumbnail.make' on channel 'thumbs' failed" in record.getMessage()
    assert record.exc_info is not None
    assert "failed on purpose" in str(record.exc_info[1])


async def test_stop_lets_the_running_job_finish_and_leaves_the_rest(layer: ChannelLayer) -> None:
    worker, task = await started(layer)
    slow = {"type": "thumbnail.make", "id": 1, "wait": 0.2, "reply_to": "results"}
    await layer.send("thumbs", slow)
    assert (await reply(layer))["type"] == "started"
    waiting = {"type": "thumbnail.make", "id": 2, "reply_to": "results"}
    await layer.send("thumbs", waiting)
    worker.stop()
    await asyncio.wait_for(task, timeout=2)
    assert (await reply(layer))["id"] == 1
    assert worker.stats == {"handled": 1, "failed": 0, "cancelled": 0}
    # Never taken: still on the channel for the next worker.
    assert await reply(layer, "thumbs") == waiting


async def test_forced_stop_cancels_the_running_job(layer: ChannelLayer) -> None:
    worker, task = await started(layer)
    await layer.send("thumbs", {"type": "thumbnail.make", "id": 1, "wait": 30, "reply_to": "r"})
    assert (await reply(layer, "r"))["type"] == "started"
    worker.stop(force=True)
    await asyncio.wait_for(task, timeout=2)
    assert worker.stats == {"handled": 0, "failed": 0, "cancelled": 1}


def test_bad_channels_and_apps_are_refused_clearly() -> None:
    with pytest.raises(ValueError, match="'jobs!local' is process-local"):
        check_channels(["jobs", "jobs!local"])
    with pytest.raises(InvalidChannelName, match="'bad name'"):
        check_channels(["bad name"])
    with pytest.raises(ValueError, match="at least one channel"):
        check_channels([])
    assert check_channels(["a", "b", "a"]) == ["a", "b"]
    with pytest.raises(ValueError, match="'module:attribute'"):
        load_application("no_colon")
    with pytest.raises(ValueError, match="no module named 'no_such_mod'"):
        load_application("no_such_mod:app")
    with pytest.raises(ValueError, match="has no attribute 'NOPE'"):
        load_application(f"{__name__}:NOPE")
    with pytest.raises(ValueError, match="is not an ASGI application"):
        load_application("json:__doc__")
    assert load_application(f"{__name__}:ROUTER") is ROUTER
    assert load_application(f"{__name__}:Thumbnails").consumer_class is Thumbnails  # type: ignore[attr-defined]


async def test_the_worker_outlives_a_redis_restart(
    own_redis: RedisProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The consumers' 'default' layer is the worker's own, as `chanlayers worker` sets it up.
    monkeypatch.setenv("CHANNEL_LAYER_URL", own_redis.url)
    reset_channel_layers()
    async with get_channel_layer() as layer:
        worker = Worker(ROUTER, ["thumbs"], layer)
        task = asyncio.create_task(worker.run())
        job = {"type": "thumbnail.make", "id": 1, "reply_to": "results"}
        await layer.send("thumbs", job)
        assert (await reply(layer))["id"] == 1
        await asyncio.to_thread(own_redis.kill)
        await asyncio.sleep(0.3)  # the worker's receive meets the dead server
        await asyncio.to_thread(own_redis.restart)
        await layer.send("thumbs", {**job, "id": 2})
        assert (await asyncio.wait_for(layer.receive("results"), timeout=20))["id"] == 2
        assert not task.done()
        worker.stop()
        await asyncio.wait_for(task, timeout=5)


async def test_a_layer_error_ends_every_channel(layer: ChannelLayer) -> None:
    _, task = await started(layer)
    await asyncio.sleep(0.01)
    await layer.close()
    with pytest.raises(ChannelLayerClosed):
        await asyncio.wait_for(task, timeout=2)
    assert [t for t in asyncio.all_tasks() if t is not asyncio.current_task()] == []

"""The ceiling: redis-py alone moving the same messages, no channel layer in between.

The sender pipelines RPUSH in batches of 100 on one list (or, for the second ceiling,
awaits each RPUSH alone: the most a sender can do that hears back from the server for
every message before it sends the next, as a layer's send() must to raise errors); the
receiver takes LPOP key 100 and blocks in BLPOP only when the list is empty. Each
message is the benchmark payload encoded with msgpack, and the receiver decodes and
checks every one, as a layer would.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Mapping
from typing import Any

import msgpack
from redis.asyncio import Redis

from .crossproc import Child, start_children
from .harness import Progress, SeqChecker, payload, run_all
from .model import Measurement, RunContext, WorkloadFailed

__all__ = ["BATCH", "raw_cross_process", "raw_p2p", "raw_receive", "raw_send"]

BATCH = 100


async def raw_send(client: Redis, key: str, n: int, batch: int = BATCH) -> None:
    """RPUSH seq 0..n-1, batch commands per pipeline round trip (1: each awaited alone)."""
    packb = msgpack.packb
    if batch == 1:
        for seq in range(n):
            await client.rpush(key, packb(payload(seq)))
        return
    for first in range(0, n, batch):
        pipe = client.pipeline(transaction=False)
        for seq in range(first, min(first + batch, n)):
            pipe.rpush(key, packb(payload(seq)))
        await pipe.execute()


async def raw_receive(
    client: Redis, key: str, n: int, checker: SeqChecker, progress: Progress
) -> None:
    """Take n messages off the list, BATCH per LPOP, checking each in order."""
    unpackb, check = msgpack.unpackb, checker.check
    got = 0
    while got < n:
        items: Any = await client.lpop(key, BATCH)
        if not items:
            popped: Any = await client.blpop([key], timeout=1)
            items = [popped[1]] if popped else []
        for item in items:
            check(unpackb(item))
        got += len(items)
        progress.count += len(items)


async def raw_p2p(
    ctx: RunContext, params: Mapping[str, int], *, url: str, batch: int = BATCH
) -> Measurement:
    """W1 ceiling: sender and receiver in this process, each with its own connection."""
    n, key = params["n"], f"{ctx.prefix}:raw"
    sender, receiver = Redis.from_url(url), Redis.from_url(url)
    try:
        await asyncio.gather(sender.ping(), receiver.ping())
        progress = Progress(n)
        rx = asyncio.ensure_future(raw_receive(receiver, key, n, SeqChecker("receiver"), progress))
        await asyncio.sleep(0)
        start = time.perf_counter()
        await run_all([rx, raw_send(sender, key, n, batch)], progress, ctx)
        elapsed = time.perf_counter() - start
        if await receiver.llen(key):
            raise WorkloadFailed("duplicate: a message was left over after all N arrived")
        return {"rate": n / elapsed}
    finally:
        await sender.aclose()
        await receiver.aclose()


async def raw_cross_process(
    ctx: RunContext, params: Mapping[str, int], *, url: str, batch: int = BATCH
) -> Measurement:
    """W4 ceiling: the receiver in another process, as in W4."""
    n, key = params["n"], f"{ctx.prefix}:raw:{secrets.token_hex(6)}"
    progress = Progress(n)
    spec = {"role": "raw", "url": url, "channel": key, "n": n, "limit": ctx.limit_seconds}
    child = Child("receiver process", spec, progress)
    sender = Redis.from_url(url)
    try:
        await sender.ping()
        await start_children([child], None)
        start = time.monotonic()
        await run_all([raw_send(sender, key, n, batch), child.finished()], progress, ctx)
        return {"rate": n / (child.result.result()["last"] - start)}
    finally:
        await child.stop()
        await sender.aclose()

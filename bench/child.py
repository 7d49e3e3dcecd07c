"""The receiving side of the cross-process workloads, in its own OS process.

``python -m bench.child '<json spec>'``, started by bench.crossproc. It reports on stdout,
one JSON object per line:

- ``{"event": "listening"}``: it waits for a bench.hello message (the parent then sends
  hellos until every process has seen one: a pub/sub subscriber may join late);
- ``{"event": "ready"}``: it saw a hello;
- ``{"event": "progress", "count": n}``: a few times a second while messages arrive;
- ``{"event": "done", "count": n, "last": t, ...}``: t is time.monotonic() at the last
  receipt (CLOCK_MONOTONIC: one clock for every process of the host);
- ``{"event": "fail", "reason": "..."}``: a lost, duplicated or reordered message.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

from .catalogue import all_targets
from .harness import HELLO, STOP, Progress, SeqChecker, StridedChecker, leftovers
from .model import Layer, WorkloadFailed

__all__ = ["emit", "main"]

Spec = dict[str, Any]
_HELLO, _STOP = HELLO["type"], STOP["type"]


def emit(event: str, **fields: Any) -> None:
    """Report one event to the parent."""
    sys.stdout.write(json.dumps({"event": event, **fields}) + "\n")
    sys.stdout.flush()


def _layer(spec: Spec) -> Layer:
    factory = {t.key: t for t in all_targets()}[spec["target"]].factory
    assert factory is not None, f"{spec['target']} is not a layer"
    return factory(spec["prefix"])


async def _hello(layer: Layer, channel: str) -> None:
    emit("listening")
    first = await layer.receive(channel)
    if first.get("type") != _HELLO:  # nothing but hellos is sent before every process is ready
        raise WorkloadFailed(f"got {first!r:.60} before the first hello")
    emit("ready")


async def _receive(spec: Spec, progress: Progress) -> dict[str, Any]:
    """W4: receive n messages on a named normal channel, in order, then nothing more."""
    layer, channel, n = _layer(spec), spec["channel"], spec["n"]
    try:
        await _hello(layer, channel)
        senders = spec.get("senders", 1)
        checker = (
            StridedChecker("receiver process", senders)
            if senders > 1
            else SeqChecker("receiver process")
        )
        receive, check = layer.receive, checker.check
        while progress.count < n:
            message = await receive(channel)
            if message.get("type") != _HELLO:  # the parent may have sent more than one
                check(message)
                progress.count += 1
        last = time.monotonic()
        if await leftovers(layer, [channel], wait=0.05):
            raise WorkloadFailed("duplicate: a message was left over after all N arrived")
        return {"count": n, "last": last}
    finally:
        await layer.close()


async def _compete(spec: Spec, progress: Progress) -> dict[str, Any]:
    """W4 competing: take messages until a stop; the parent checks the shares add up."""
    layer, channel = _layer(spec), spec["channel"]
    seqs: list[int] = []
    last = 0.0
    try:
        await _hello(layer, channel)
        while True:
            message = await layer.receive(channel)
            kind = message.get("type")
            if kind == _STOP:
                break
            if kind == _HELLO:
                continue
            seq = message.get("seq")
            if not isinstance(seq, int) or (seqs and seq <= seqs[-1]):
                after = seqs[-1] if seqs else None
                raise WorkloadFailed(f"reordered or duplicate: seq {seq!r} after seq {after}")
            seqs.append(seq)
            last = time.monotonic()
            progress.count += 1
        return {"count": len(seqs), "last": last, "seqs": seqs}
    finally:
        await layer.close()


async def _members(spec: Spec, progress: Progress) -> dict[str, Any]:
    """W5: this process's share of the group; every member gets every group_send in order."""
    layer, group, sends = _layer(spec), spec["group"], spec["sends"]
    try:
        channels = [await layer.new_channel() for _ in range(spec["members"])]
        for channel in channels:
            await layer.group_add(group, channel)
        hello = asyncio.Event()

        async def member(i: int, channel: str) -> None:
            check, got = SeqChecker(f"process {spec['index']} member {i}").check, 0
            while got < sends:
                message = await layer.receive(channel)
                if message.get("type") == _HELLO:
                    hello.set()
                    continue
                check(message)
                got += 1
                progress.count += 1

        async def announce() -> None:
            await hello.wait()
            emit("ready")

        emit("listening")
        await asyncio.gather(announce(), *(member(i, c) for i, c in enumerate(channels)))
        last = time.monotonic()
        extra = await leftovers(layer, channels, wait=0.05)
        if extra:
            raise WorkloadFailed(f"duplicate: {extra} member(s) had a message left over")
        return {"count": progress.count, "last": last}
    finally:
        await layer.close()


async def _raw(spec: Spec, progress: Progress) -> dict[str, Any]:
    """W4 ceiling: raw redis-py on one list."""
    from redis.asyncio import Redis

    from .raw import raw_receive

    client = Redis.from_url(spec["url"])
    try:
        await client.ping()
        emit("listening")
        emit("ready")
        await raw_receive(client, spec["channel"], spec["n"], SeqChecker("receiver"), progress)
        last = time.monotonic()
        if await client.llen(spec["channel"]):
            raise WorkloadFailed("duplicate: a message was left over after all N arrived")
        return {"count": spec["n"], "last": last}
    finally:
        await client.aclose()


ROLES: dict[str, Callable[[Spec, Progress], Awaitable[dict[str, Any]]]] = {
    "receive": _receive,
    "compete": _compete,
    "members": _members,
    "raw": _raw,
}


async def _ticker(progress: Progress) -> None:
    reported = -1
    while True:
        if progress.count != reported:
            reported = progress.count
            emit("progress", count=reported)
        await asyncio.sleep(0.1)


async def _main(spec: Spec) -> int:
    progress = Progress(0)
    ticker = asyncio.ensure_future(_ticker(progress))
    try:
        # The parent kills a stalled child; this bounds an orphan.
        result = await asyncio.wait_for(ROLES[spec["role"]](spec, progress), spec["limit"] + 30)
    except WorkloadFailed as exc:
        emit("fail", reason=str(exc))
        return 1
    except Exception as exc:
        emit("fail", reason=f"error: {type(exc).__name__}: {exc}")
        return 1
    finally:
        ticker.cancel()
    emit("done", **result)
    return 0


def main(argv: list[str]) -> int:
    """Run the role the spec names."""
    return asyncio.run(_main(json.loads(argv[0])))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

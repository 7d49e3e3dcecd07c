"""A participant in another process, driven by the multi-process tests.

Usage: python -m tests.ipc.child <mode> <region name> [args]. It reports on stdout,
one line per event, and flushes each line so the parent can follow it.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import json
import mmap
import os
import signal
import sys
from typing import Any

from layers.ipc import IPCChannelLayer
from layers.ipc.region import Region
from layers.ipc.state import State
from layers.ipc.wakeup import Notifier


def say(*words: object) -> None:
    """One line to the parent."""
    print(*words, flush=True)


def body(run: int, seq: int, size: int) -> str:
    """A payload whose every byte depends on (run, seq): a torn one cannot pass check()."""
    unit = hashlib.sha256(f"{run}:{seq}".encode()).hexdigest()
    return (unit * (size // len(unit) + 1))[:size]


async def member(layer: IPCChannelLayer, group: str) -> None:
    """Join group with a new local channel, report it, then report one message."""
    channel = await layer.new_channel()
    await layer.group_add(group, channel)
    say("ready", channel)
    message = await layer.receive(channel)
    say(json.dumps(message))


async def compete(layer: IPCChannelLayer, channel: str) -> None:
    """Receive channel until a stop message; report every seq, one per line."""
    say("ready")
    while True:
        message = await layer.receive(channel)
        if message["type"] == "stop":
            return
        say(message["seq"])


def _mark_writes(path: str, die_at: int = -1) -> None:
    """Keep byte 0 of the file at path at 1 from a send's first heap write to its commit.

    The parent reads it after kill -9 to tell that the kill landed inside a write. With
    die_at >= 0 the process kills itself right after heap write number die_at (counted
    from 0), inside that send, before its commit.
    """
    with open(path, "r+b") as file:
        phase = mmap.mmap(file.fileno(), 1)
    push, push_local, commit = State.push, State.push_local, Region._commit
    writes = itertools.count()

    def written(done: bool) -> bool:
        if next(writes) == die_at:
            os.kill(os.getpid(), signal.SIGKILL)
        return done

    def marked_push(self: State, *args: Any, **options: Any) -> bool:
        phase[0] = 1
        return written(push(self, *args, **options))

    def marked_push_local(self: State, *args: Any, **options: Any) -> bool:
        phase[0] = 1
        return written(push_local(self, *args, **options))

    def marked_commit(self: Region, state: State) -> None:
        commit(self, state)
        phase[0] = 0

    State.push = marked_push  # type: ignore[method-assign]
    State.push_local = marked_push_local  # type: ignore[method-assign]
    Region._commit = marked_commit  # type: ignore[method-assign]


async def spam(
    layer: IPCChannelLayer, run: str, size: str, phase: str, limit: str, die_at: str = "-1"
) -> None:
    """Send numbered, self-checking messages to 'crash' and group 'crashers', up to limit
    (or until heap write number die_at, see _mark_writes).

    The limit keeps the region from filling: a full region makes group_send skip a
    member (a documented, counted drop), which would look like a lost message.
    """
    n = int(size)
    _mark_writes(phase, int(die_at))
    say("ready")
    seq = 0
    while seq < int(limit):
        message: dict[str, Any] = {
            "type": "crash.test",
            "run": int(run),
            "seq": seq,
            "body": body(int(run), seq, n),
        }
        try:
            await layer.send("crash", message)
            await layer.group_send("crashers", message)
        except layer.ChannelFull:
            await asyncio.sleep(0.001)
            continue
        seq += 1
    await asyncio.sleep(3600)  # to be killed


async def send_and_exit(layer: IPCChannelLayer, channel: str) -> None:
    """Send one message, then leave without closing (as a crashing script would)."""
    await layer.send(channel, {"type": "from.child", "pid": os.getpid()})
    say("sent")


async def die_holding_the_lock(layer: IPCChannelLayer, channel: str) -> None:
    """Queue a message (its node written and linked in the heap), die before the commit."""
    with layer.region.transaction() as txn:
        assert txn.state.push(channel, 1e12, b"torn" * 250)
        txn.changed = True
        say("holding")
        os.kill(os.getpid(), signal.SIGKILL)


async def die_waking(layer: IPCChannelLayer, channel: str) -> None:
    """Send one message and die at the moment it would wake the receivers."""

    def killed(self: Notifier, idents: Any) -> None:
        os.kill(os.getpid(), signal.SIGKILL)

    Notifier.wake = killed  # type: ignore[method-assign]
    say("ready")
    await layer.send(channel, {"type": "from.child", "seq": 1})


async def hold_channel(layer: IPCChannelLayer, group: str) -> None:
    """Join group with a local channel, report it, then wait to be killed."""
    channel = await layer.new_channel()
    await layer.group_add(group, channel)
    await layer.send(channel, {"type": "never.read"})
    say("ready", channel)
    await asyncio.sleep(3600)


async def steps(layer: IPCChannelLayer, *todo: str) -> None:
    """Run steps in order, then close; a last step 'hold' waits to be killed instead.

    Steps: send:CHANNEL:SEQ, group_add:GROUP:CHANNEL, group_send:GROUP:SEQ,
    receive:CHANNEL (reports the message), local:GROUP (a local channel of this layer
    joins GROUP and gets one message, left queued; reports the channel).
    """
    for step in todo:
        op, *args = step.split(":")
        if op == "send":
            await layer.send(args[0], {"type": "test.message", "seq": int(args[1])})
        elif op == "group_add":
            await layer.group_add(args[0], args[1])
        elif op == "group_send":
            await layer.group_send(args[0], {"type": "test.message", "seq": int(args[1])})
        elif op == "receive":
            say(json.dumps(await layer.receive(args[0])))
        elif op == "local":
            # Named by hand, so no reader of this process takes its message: it stays queued.
            channel = f"specific.{layer.client_id}!{len(todo)}"
            await layer.group_add(args[0], channel)
            await layer.send(channel, {"type": "never.read"})
            say("local", channel)
        elif op == "hold":
            say("holding")
            await asyncio.sleep(3600)
        else:
            raise ValueError(f"unknown step {step!r}")
    say("done")


MODES = {
    "member": member,
    "compete": compete,
    "spam": spam,
    "send_and_exit": send_and_exit,
    "die_holding_the_lock": die_holding_the_lock,
    "die_waking": die_waking,
    "hold_channel": hold_channel,
    "steps": steps,
}


async def main(mode: str, name: str, *args: str) -> None:
    """Open the region called name and run mode in it."""
    options = json.loads(os.environ.get("IPC_CHILD_OPTIONS", "{}"))
    layer = IPCChannelLayer(name=name, **options)
    await MODES[mode](layer, *args)  # type: ignore[operator]
    if mode != "send_and_exit":
        await layer.close()


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:]))

"""The demo: a chat room on a channel layer, run in one process with no server."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from .base import ChannelLayer
from .exceptions import ChannelFull

Say = Callable[[str], None]


async def _join(layer: ChannelLayer, name: str, room: str, say: Say) -> str:
    """What a consumer does on connect: get a channel and join the room."""
    channel = await layer.new_channel()
    await layer.group_add(room, channel)
    say(f"  {name:<6} joined {room} as {channel}")
    return channel


async def _client(
    layer: ChannelLayer, channel: str, name: str, room: str, lines: int, say: Say
) -> int:
    """A client's consumer: print what arrives, then leave the room."""
    got = 0
    try:
        while got < lines:
            message = await layer.receive(channel)
            got += 1
            say(f"  {name:<6} <- {message['user']}: {message['text']}")
    finally:
        await layer.group_discard(room, channel)
    return got


async def run_demo(layer: ChannelLayer, say: Say = print, clients: int = 3) -> dict[str, object]:
    """Run the chat demo on layer and return its stats."""
    room = "room-42"
    script = [("alice", "hello, room 42"), ("bob", "hi alice"), ("alice", "bye!")]
    say(f"chat demo on {type(layer).__name__}: {clients} clients in {room}")
    names = ["alice", "bob", "carol", "dave", "erin"][:clients]
    channels = [await _join(layer, name, room, say) for name in names]
    tasks = [
        asyncio.create_task(_client(layer, channel, name, room, len(script), say))
        for name, channel in zip(names, channels, strict=True)
    ]
    for user, text in script:
        say(f"{user} says {text!r} to {room}")
        await layer.group_send(room, {"type": "chat.message", "user": user, "text": text})
        await asyncio.sleep(0.01)
    delivered = await asyncio.gather(*tasks)
    say(
        f"every client got {delivered} lines; {room} now has "
        f"{len(await layer.group_channels(room))} members"
    )

    say("a worker channel with capacity 2 gets 3 jobs:")
    for job in range(3):
        try:
            await layer.send("thumbnails", {"type": "thumbnail.make", "job": job})
            say(f"  job {job} queued")
        except ChannelFull as exc:
            say(f"  job {job} refused: {exc}")
    for _ in range(2):
        say(f"  worker took job {(await layer.receive('thumbnails'))['job']}")
    stats = layer.stats()
    say("stats: " + ", ".join(f"{k}={v}" for k, v in stats.items()))
    return stats

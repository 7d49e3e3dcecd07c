"""A second process for test_two_processes: joins a group, prints its channel, reports what it got.

Run as ``python -m tests.rabbitmq.member_process <url> <prefix> <group> [expiry]``. It
prints ``{"channel": ...}`` once it has joined, then ``{"got": seq}`` for one message.
"""

from __future__ import annotations

import asyncio
import json
import sys

from layers.rabbitmq import RabbitMQChannelLayer


async def main(url: str, prefix: str, group: str, expiry: float) -> None:
    async with RabbitMQChannelLayer(url=url, prefix=prefix, expiry=expiry) as layer:
        channel = await layer.new_channel()
        await layer.group_add(group, channel)
        print(json.dumps({"channel": channel}), flush=True)
        async with asyncio.timeout(20):
            message = await layer.receive(channel)
        print(json.dumps({"got": message["seq"]}), flush=True)
        await layer.group_discard(group, channel)


if __name__ == "__main__":
    expiry = float(sys.argv[4]) if len(sys.argv) > 4 else 60.0
    asyncio.run(main(*sys.argv[1:4], expiry))

"""A receiving process for the prefetch tests: python -m tests.redis.receiver_process URL
PREFIX CHANNEL [HOLD]. Prints one JSON line per message received ({"seq": n}) and stops at
a message of type "stop"; with HOLD it prints "held" after the first message and waits.
CHANNEL "new" receives on a new_channel() of its own, printed as {"channel": name}."""

from __future__ import annotations

import asyncio
import json
import sys

from layers.redis import RedisChannelLayer


async def main(url: str, prefix: str, channel: str, hold: bool) -> None:
    layer = RedisChannelLayer(hosts=[url], prefix=prefix, socket_timeout=0.5)
    if channel == "new":
        channel = await layer.new_channel()
        print(json.dumps({"channel": channel}), flush=True)
    print(json.dumps({"ready": True}), flush=True)
    while True:
        message = await layer.receive(channel)
        if message["type"] == "stop":
            break
        print(json.dumps({"seq": message["seq"]}), flush=True)
        if hold:
            print(json.dumps({"held": True}), flush=True)
            await asyncio.sleep(3600)  # killed meanwhile, holding its prefetched batch
    await layer.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], len(sys.argv) > 4))

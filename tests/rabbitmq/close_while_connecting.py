"""close() while a send is still connecting, at several moments; for test_quiet_close.

Run as ``python -m tests.rabbitmq.close_while_connecting <url> <prefix>``. Prints one
line per try: "sent", or the error's class and message.
"""

from __future__ import annotations

import asyncio
import sys

from layers.rabbitmq import RabbitMQChannelLayer

DELAYS = [0, 0.002, 0.004, 0.006, 0.008, 0.01, 0.012, 0.015, 0.02, 0.03]


async def attempt(url: str, prefix: str, delay: float) -> str:
    layer = RabbitMQChannelLayer(url=url, prefix=prefix)
    sending = asyncio.ensure_future(layer.send("c", {"type": "t"}))
    await asyncio.sleep(delay)
    await layer.close()
    try:
        await sending
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    return "sent"


async def main(url: str, prefix: str) -> None:
    for delay in DELAYS:
        print(await attempt(url, prefix, delay), flush=True)


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:3]))

"""The RabbitMQ ceiling: aio-pika alone moving the same messages, no channel layer between.

One queue; the sender publishes each msgpack-encoded payload and awaits its publisher
confirm (what a layer's send must do to report ChannelFull); a consumer on its own
connection acks and decodes every message, checking the order.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping

import aio_pika
import msgpack

from .harness import Progress, SeqChecker, payload, run_all
from .model import Measurement, RunContext, WorkloadFailed

__all__ = ["raw_amqp_p2p"]

PREFETCH = 100


async def raw_amqp_p2p(ctx: RunContext, params: Mapping[str, int], *, url: str) -> Measurement:
    """W1 ceiling: sender and receiver in this process, each with its own connection."""
    n, name = params["n"], f"{ctx.prefix}.raw"
    sending = await aio_pika.connect(url)
    receiving = await aio_pika.connect(url)
    try:
        tx = await sending.channel(publisher_confirms=True)
        rx = await receiving.channel()
        await rx.set_qos(prefetch_count=PREFETCH)
        queue = await rx.declare_queue(name, auto_delete=True)
        progress, check = Progress(n), SeqChecker("receiver").check
        done = asyncio.get_running_loop().create_future()

        async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            await message.ack()
            try:
                check(msgpack.unpackb(message.body))
            except WorkloadFailed as exc:  # a callback's exception would only be logged
                if not done.done():
                    done.set_exception(exc)
                return
            progress.count += 1
            if progress.count == n and not done.done():
                done.set_result(None)

        await queue.consume(on_message)

        async def send_all() -> None:
            publish, packb = tx.default_exchange.publish, msgpack.packb
            for seq in range(n):
                await publish(aio_pika.Message(packb(payload(seq))), routing_key=name)

        start = time.perf_counter()
        await run_all([send_all(), done], progress, ctx)
        return {"rate": n / (time.perf_counter() - start)}
    finally:
        await sending.close()
        await receiving.close()

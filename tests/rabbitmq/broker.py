"""Looking at the broker directly, without the management plugin."""

from __future__ import annotations

import aiormq


async def queue_exists(url: str, name: str) -> bool:
    """True if the broker has a queue of that name (a passive declare, nothing created)."""
    return await _exists(url, "queue_declare", name)


async def exchange_exists(url: str, name: str) -> bool:
    """True if the broker has an exchange of that name."""
    return await _exists(url, "exchange_declare", name)


async def _exists(url: str, declare: str, name: str) -> bool:
    connection = await aiormq.connect(url)
    try:
        channel = await connection.channel()
        try:
            await getattr(channel, declare)(name, passive=True)
        except aiormq.exceptions.ChannelNotFoundEntity:
            return False
        return True
    finally:
        await connection.close()


async def delete_queue(url: str, name: str) -> None:
    """Delete a queue from outside the layer (as a broker restart would lose it)."""
    connection = await aiormq.connect(url)
    try:
        channel = await connection.channel()
        await channel.queue_delete(name)
    finally:
        await connection.close()

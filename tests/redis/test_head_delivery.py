"""An idle inbox reader hands over the head its blocking wait returned, before popping it.

The link to the receiver's server runs through the fault proxy with a fixed delay per
chunk, so round trips are long and countable: delivery on the wait's reply takes one
delayed reply; waiting for a pop first would take two more.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from layers.redis import RedisChannelLayer
from tests.faults.proxy import TcpProxy
from tests.helpers import msg, nothing, recv
from tests.redis_procs import RedisProcess

DELAY = 0.3


@pytest.fixture
def slow_link(own_redis: RedisProcess) -> Iterator[TcpProxy]:
    with TcpProxy("127.0.0.1", own_redis.port) as proxy:
        yield proxy


class Idle:
    """A receiver behind the slow link, idle on a warm channel, and a direct sender."""

    def __init__(self, server: RedisProcess, proxy: TcpProxy) -> None:
        prefix = f"t{secrets.token_hex(4)}"
        self.receiver = RedisChannelLayer(hosts=[f"redis://127.0.0.1:{proxy.port}"], prefix=prefix)
        self.sender = RedisChannelLayer(hosts=[server.url], prefix=prefix)
        self.channel = ""

    async def start(self, proxy: TcpProxy) -> asyncio.Future[dict[str, Any]]:
        """Warm both of the reader's connections, slow the link, park a receive()."""
        self.channel = await self.receiver.new_channel()
        await self.sender.send(self.channel, msg(0))
        assert (await recv(self.receiver, self.channel))["seq"] == 0
        await asyncio.sleep(0.2)
        proxy.delay = DELAY
        waiting = asyncio.ensure_future(recv(self.receiver, self.channel, 10))
        await asyncio.sleep(4 * DELAY)  # the reader's empty pop is done; it blocks now
        return waiting

    async def close(self) -> None:
        await self.receiver.flush()
        await asyncio.gather(self.receiver.close(), self.sender.close())


@pytest.fixture
async def idle(own_redis: RedisProcess, slow_link: TcpProxy) -> AsyncIterator[Idle]:
    state = Idle(own_redis, slow_link)
    yield state
    # The tests time the slow link; the flush and close after them need not crawl too.
    slow_link.delay = 0
    await state.close()


async def test_a_message_to_an_idle_reader_costs_no_extra_round_trip(
    idle: Idle, slow_link: TcpProxy
) -> None:
    waiting = await idle.start(slow_link)
    started = time.monotonic()
    await idle.sender.send(idle.channel, msg(1))
    assert (await waiting)["seq"] == 1
    # One delayed reply (the blocking wait's); a pop first would add two more delays.
    assert time.monotonic() - started < 2 * DELAY


async def test_a_head_delivered_before_a_lost_pop_is_not_delivered_again(
    idle: Idle, slow_link: TcpProxy, own_redis: RedisProcess
) -> None:
    waiting = await idle.start(slow_link)
    await idle.sender.send(idle.channel, msg(1))
    assert (await waiting)["seq"] == 1
    # The pop that would remove the delivered head is still in the slow link: cut it.
    assert slow_link.cut() >= 1
    slow_link.delay = 0
    await idle.sender.send(idle.channel, msg(2))
    assert (await recv(idle.receiver, idle.channel, 10))["seq"] == 2  # not 1 again
    await nothing(idle.receiver, idle.channel, 0.5)
    inbox = idle.receiver.keys.inbox(idle.channel.split("!")[0] + "!")
    assert own_redis.command("LLEN", inbox) == 0

"""Deployment figures on RabbitMQ: each process's snapshot queue, read by a fresh process."""

from __future__ import annotations

import asyncio
import secrets

from tests.helpers import figures_elsewhere, msg, recv, with_prefix
from tests.rabbitmq.conftest import MakeLayer


async def test_a_fresh_process_reads_the_counts_of_others(rabbit: MakeLayer, amqp_url: str) -> None:
    prefix = f"t{secrets.token_hex(4)}"
    one, two = rabbit(prefix=prefix), rabbit(prefix=prefix)
    mine = await one.new_channel()
    await one.group_add("room", mine)
    await one.group_add("room", "jobs")
    await two.group_add("hall", "jobs")
    await two.group_send("room", msg(1))  # confirmed: counted once by its sender
    await two.send("jobs", msg(2))
    assert (await recv(one, mine))["seq"] == 1
    await asyncio.sleep(1.5)  # a snapshot every second
    url = with_prefix(amqp_url, prefix)
    figures = await figures_elsewhere(url, top=3)
    assert figures["scope"] == "deployment"
    counters = figures["counters"]
    assert counters["sent"] == 2
    assert counters["group_sends"] == 1
    assert counters["delivered"] == 1
    assert counters["dropped_full"] == counters["dropped_dead_owner"] == 0
    assert figures["deepest"] == {"jobs": 2}  # the group's copy and the send, unread
    assert figures["queued"] == 2
    assert (figures["groups"], figures["members"]) == (2, 3)
    assert figures["largest_groups"] == {"room": 2, "hall": 1}
    # The reader took everything it read back to the queues: a second reading agrees.
    again = await one.figures(top=3)
    assert dict(again.counters) == counters
    assert (again.queued, again.groups, again.members) == (2, 2, 3)
    # A process that closes takes its counts out of the sum (its snapshot queue goes).
    await two.close()
    assert (await one.figures()).counters["sent"] == 0

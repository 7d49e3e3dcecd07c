"""The deployment's figures kept in the region: a fresh process reads what others counted."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.helpers import figures_elsewhere, msg, recv


async def test_a_fresh_process_reads_the_counts_of_others(
    open_layer: Any, region_name: str
) -> None:
    one, two = open_layer(capacity=2), open_layer(capacity=2)
    mine = await one.new_channel()
    await one.group_add("room", mine)
    await one.group_add("room", "jobs")
    await two.group_add("hall", "jobs")
    for i in range(3):
        await two.group_send("room", msg(i))  # the third finds both members full
    await two.send("other", msg(9))
    assert (await recv(one, "jobs"))["seq"] == 0
    assert (await recv(one, mine))["seq"] == 0
    gone = open_layer()
    dead = await gone.new_channel()
    await gone.close()
    await two.send(dead, msg(7))  # its owner closed: dropped, counted
    await asyncio.sleep(0.5)  # the last counts reach the region within SYNC_DELAY
    figures = await figures_elsewhere(f"ipc://{region_name}", top=2)
    assert figures["scope"] == "deployment"
    counters = figures["counters"]
    # 2 group deliveries to "jobs" (the region refused its third), 3 to one's inbox (one's
    # own buffer refused the third: issue 14's rule), and two sends: the one to a closed
    # owner returned, so its sender counted it, and it counts as dropped too.
    assert counters["sent"] == 7
    assert counters["group_sends"] == 3
    assert counters["delivered"] == 2
    assert counters["dropped_full"] == 2
    assert counters["dropped_dead_owner"] == 1
    assert counters["dropped_expired"] == counters["dropped_undecodable"] == 0
    # One left in "jobs" and one in "other"; the group message left in one's buffer for
    # `mine` is one's to count (the region never counted it).
    assert figures["queued"] == 2
    assert (figures["groups"], figures["members"]) == (2, 3)
    assert figures["deepest"] == {"jobs": 1, "other": 1}  # ties by name
    assert figures["largest_groups"] == {"room": 2, "hall": 1}
    # The counters outlive a flush (Prometheus counters only grow), the contents do not.
    await one.flush()
    after = await two.figures()
    assert after.counters["sent"] == 7
    assert (after.queued, after.groups, after.members) == (0, 0, 0)


async def test_expired_messages_are_counted_for_the_deployment(open_layer: Any) -> None:
    one = open_layer(expiry=0.05)
    await one.send("late", msg(1))
    await asyncio.sleep(0.1)
    other = open_layer(expiry=10)
    await other.send("late", msg(2))  # purges the expired one first
    await asyncio.sleep(0.5)  # other's counts reach the region within SYNC_DELAY
    figures = await one.figures()
    assert figures.counters["dropped_expired"] == 1
    assert figures.counters["sent"] == 2

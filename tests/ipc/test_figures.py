"""The deployment's figures kept in the region: a fresh process reads what others counted."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.helpers import check_filled_figures, figures_elsewhere, fill_for_figures, msg


async def test_a_fresh_process_reads_the_counts_of_others(
    open_layer: Any, region_name: str
) -> None:
    one, two = open_layer(capacity=2), open_layer(capacity=2)
    await fill_for_figures(one, two)
    gone = open_layer()
    dead = await gone.new_channel()
    await gone.close()
    await two.send(dead, msg(7))  # its owner closed: dropped, counted
    await asyncio.sleep(0.5)  # the last counts reach the region within SYNC_DELAY
    # The send to a closed owner returned, so its sender counted it as sent, and it
    # counts as dropped too.
    check_filled_figures(
        await figures_elsewhere(f"ipc://{region_name}", top=2), sent=7, dead_owner=1
    )
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

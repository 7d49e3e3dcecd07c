"""The deployment's figures as the region holds them: counters every user adds to,
and the queues and groups themselves."""

from __future__ import annotations

from ..figures import SHARED_COUNTERS, Figures, Tally, add_counts, top
from .region import Txn
from .state import State

__all__ = ["SYNC_DELAY", "fold_counts", "region_figures"]

SYNC_DELAY = 0.2
"""Seconds after a transaction within which this process's later counts reach the
region, if no other transaction carries them sooner."""


def fold_counts(tally: Tally, txn: Txn) -> None:
    """Add what this process counted since the last fold to the region's counters, in
    txn (which then commits; txn.counted says what to give back if it fails)."""
    deltas = tally.take()
    if deltas:
        add_counts(txn.state.c, deltas)
        add_counts(txn.counted, deltas)
        txn.changed = True


def region_figures(backend: str, prefix: str, state: State, now: float, limit: int) -> Figures:
    """What the region holds now: counters, depths (a process-local channel counts the
    direct messages its owner has not taken yet: group messages in its buffers are
    the owner's, never the region's), groups and members."""
    depths = {channel: queue[2] for channel, queue in state.q.items() if not channel.endswith("!")}
    depths.update(state.dp)
    sizes = {group: len(state.groups.members(group, now)) for group in state.groups.where}
    sizes = {group: size for group, size in sizes.items() if size}
    return Figures(
        backend=backend,
        prefix=prefix,
        scope="deployment",
        counters={name: int(state.c.get(name, 0)) for name in SHARED_COUNTERS},
        queued=sum(depths.values()),
        groups=len(sizes),
        members=sum(sizes.values()),
        deepest=top(depths, limit),
        largest_groups=top(sizes, limit),
        notes=(
            "a process killed without closing loses what it counted in its last "
            f"{SYNC_DELAY:g} s; the counters start again when the region is removed; "
            "depths leave out group messages already in their owner process's buffers "
            "(that process's stats() has them)",
        ),
    )

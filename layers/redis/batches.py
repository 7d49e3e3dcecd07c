"""send_many and group_send_many over Redis: one pipelined round trip per shard and step.

Each shard's scripts run in item order over its one connection, so the order of a
channel's messages is kept. A shard that fails gives its error to every item it did not
answer; the other shards' items are not affected (see ChannelLayer.send_many).
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Sequence
from typing import Any, Protocol

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from ..base import BatchResult, GroupSendResult
from ..capacity import CapacityRules, channel_full
from ..counters import Counters
from ..exceptions import ChannelLayerConnectionError, ChannelLayerError
from ..inbox import HEADER
from . import scripts
from .connections import Connections
from .counting import Scripted, SharedCounts
from .groups import GroupPlans
from .keys import Keys
from .ring import HashRing

__all__ = ["Batching", "group_send_many", "send_many"]

# Per shard: (item index, keys, args) of each script call, in item order.
_Calls = dict[int, list[tuple[int, list[str], list[Any]]]]


class Batching(Protocol):
    """What send_many and group_send_many use of a RedisChannelLayer."""

    connections: Connections
    shard_names: list[str]
    capacity_rules: CapacityRules
    counters: Counters
    ring: HashRing
    keys: Keys
    group_plans: GroupPlans
    scripted: Scripted
    counts: SharedCounts

    def delivers_here(self, channel: str) -> bool:
        """True for the layer's own process-local channels: they skip Redis."""

    def deliver_here(self, members: list[tuple[str, int]], payload: bytes) -> int:
        """Put a message into (channel, capacity) pairs of the layer's own channels;
        return how many were full."""

    def group_send_args(self, payload: bytes, keys: list[str], plan: list[Any]) -> list[Any]:
        """group_send.lua's ARGV for one of a GroupPlan's calls (its keys and args)."""

    def deliver_group_here(self, channels: list[str], payload: bytes) -> int:
        """Put a group message into the layer's own channels; return how many were full."""

    def send_call(self, channel: str, capacity: int) -> tuple[int, list[str], list[Any]]:
        """(shard, keys, ARGV before the payloads) of send.lua for a channel; ARGV[2] is
        its local part, "" for a normal channel."""


async def _run(layer: Batching, script: scripts.Script, calls: _Calls) -> dict[int, list[Any]]:
    """Every shard's calls, pipelined, the shards concurrently: replies per shard, each
    reply a result or the ChannelLayerError that stands for it."""
    clients = await layer.connections.here()

    async def one(shard: int) -> list[Any]:
        batch = [(keys, args) for _, keys, args in calls[shard]]
        try:
            replies = await script.many(clients.scripting(shard), batch)
        except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
            replies = [exc] * len(batch)
        return [_error(layer, shard, r) if isinstance(r, Exception) else r for r in replies]

    shards = list(calls)
    return dict(zip(shards, await asyncio.gather(*(one(s) for s in shards)), strict=True))


def _error(layer: Batching, shard: int, exc: Exception) -> ChannelLayerError:
    where = layer.shard_names[shard]
    if isinstance(exc, RedisConnectionError | RedisTimeoutError | OSError):
        return ChannelLayerConnectionError(f"Redis at {where} did not answer: {exc}")
    return ChannelLayerError(f"Redis at {where} refused the command: {exc}")


async def send_many(layer: Batching, items: Sequence[tuple[str, bytes]]) -> BatchResult:
    """The Redis send_many: this layer's own channels in-process, the rest with one
    send script per channel (it queues what there is room for, in order), pipelined."""
    results: BatchResult = [None] * len(items)
    # Per channel sent to through Redis: its item indexes, and its script call's args.
    channels: dict[str, tuple[list[int], list[Any]]] = {}
    calls: _Calls = {}
    for index, (channel, payload) in enumerate(items):
        known = channels.get(channel)
        if known is None:
            capacity = layer.capacity_rules(channel)
            if layer.delivers_here(channel):
                if layer.deliver_here([(channel, capacity)], payload):
                    results[index] = channel_full(channel, capacity)
                continue
            shard, keys, args = layer.send_call(channel, capacity)
            calls.setdefault(shard, []).append((index, keys, args))
            known = channels[channel] = ([], args)
        known[0].append(index)
        # An inbox entry carries the entry header before its payload (layers/inbox.py).
        known[1].append(payload if known[1][2] == "" else HEADER + payload)
    queued = expired = 0
    for shard, replies in (await _run(layer, scripts.SEND, calls)).items():
        for (first, _, call), reply in zip(calls[shard], replies, strict=True):
            indexes = channels[items[first][0]][0]
            if isinstance(reply, Exception):
                for index in indexes:
                    results[index] = reply
                continue
            queued += reply[0]
            expired += reply[1]
            for index in indexes[reply[0] :]:
                results[index] = channel_full(items[index][0], call[1])
    layer.counters.dropped_expired += expired
    layer.scripted.sent += queued
    layer.scripted.dropped_expired += expired
    return results


async def group_send_many(
    layer: Batching, items: Sequence[tuple[str, bytes]]
) -> list[GroupSendResult | BaseException]:
    """The Redis group_send_many: every group's members read in one round trip per
    shard, then every delivery in one more."""
    # Per group, how many group_sends: members.lua counts them.
    groups = collections.Counter(group for group, _ in items)
    names = list(groups)
    reads: _Calls = {}
    for index, group in enumerate(names):
        key = layer.keys.group(group)
        counts = layer.keys.counts(key)
        reads.setdefault(layer.ring.index(group), []).append(
            (index, [key, counts], [groups[group], layer.counts.lifetime(counts)])
        )
    members: dict[str, Any] = {}
    for shard, replies in (await _run(layer, scripts.MEMBERS, reads)).items():
        for (index, _, _), reply in zip(reads[shard], replies, strict=True):
            members[names[index]] = reply
    results: list[GroupSendResult | BaseException] = []
    sends: _Calls = {}
    for index, (group, payload) in enumerate(items):
        found = members[group]
        if isinstance(found, Exception):
            results.append(found)
            continue
        plan = layer.group_plans.plan(found)
        full = layer.deliver_group_here(plan.here, payload) if plan.here else 0
        results.append((len(plan.here) - full + plan.handed, full))
        for shard, keys, args in plan.calls:
            call = (index, keys, layer.group_send_args(payload, keys, args))
            sends.setdefault(shard, []).append(call)
    # Per item, its group_send.lua replies from every shard.
    by_item: dict[int, list[Any]] = collections.defaultdict(list)
    for shard, got in (await _run(layer, scripts.GROUP_SEND, sends)).items():
        for (index, _, _), reply in zip(sends[shard], got, strict=True):
            by_item[index].append(reply)
    expired = 0
    for index, done in enumerate(results):
        if isinstance(done, BaseException):
            continue
        got = by_item.get(index, [])
        failed = [reply for reply in got if isinstance(reply, Exception)]
        if failed:
            # As group_send raises when one of its shards fails; what the others'
            # scripts counted stays in Redis as they counted it.
            results[index] = failed[0]
            continue
        # Counted by the base class now: no longer this process's to carry.
        layer.scripted.group_sends += 1
        reached, full, dropped = layer.scripted.group_sent(got)
        results[index] = (done[0] + reached, done[1] + full)
        expired += dropped
    layer.counters.dropped_expired += expired
    return results

"""The deployment's counters on Redis, kept by the scripts that move messages.

Each script that stores, takes or drops messages adds what it did to a counters hash
in the same call, one HINCRBY by n per counter (scripts/counting.lua): send.lua counts
what it queued and the expired heads it dropped, group_send.lua the members reached,
the full and the expired, members.lua the group_sends, pop.lua and fetch.lua the
expired and oversized entries, fetch.lua a dead reader's batch (dead_owner), and
requeue.lua the entries a fetcher gives back that expired meanwhile. The
hash is ``<prefix>:f`` on each shard; on a cluster, one per slot in use
(``<prefix>:f:{tag}``, Keys.counts), so that it is in the slot of the keys the script
touches. The reader sums them all (figures.py).

What only a process sees (a delivery to one of its receivers, a message its buffers
drop as full, expired or undecodable, a message it sent to its own channels without
Redis) rides along with a pop, ack, fetch or requeue as one more argument, at most one every
CARRY_EVERY seconds (taking and packing the counts costs a few microseconds, too much
for every call of a busy reader): Scripted
records what the scripts' replies said they counted, and the process's own counters
minus that is what is left to carry. Scripted takes a reply's counts only where the
process counts the same event (not those of a group_send that failed on another
shard, nor of a reply that never came), so Redis ends up with what the scripts did
plus what only processes saw, each once. A process whose counts no script carried within
SYNC_EVERY seconds (it only sends to its own channels, or went idle) adds them with
count.lua, as it does before its own reading of the figures and when it closes.
A call that failed may have run in Redis all the same: what it carried is carried
again, counted twice rather than lost (as the depth acks it carries are released).

A counters hash lapses when nothing counted in it for the layer's group_expiry (or
twice the expiry and a second, the life of a channel's list, if that is longer), so a
prefix nobody uses any more leaves nothing behind: every script that adds to it gets
that TTL as an argument (SharedCounts.lifetime), and gives it to a hash it makes (a
counter equal to what the call added is new). Each process renews each hash it counts
in with its next call once RENEW_EVERY seconds (or a quarter of the TTL) have passed
since it last did: one PEXPIRE in a script now and then, none per send, so a hash lasts
between the TTL less that and the TTL after the last count.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
import weakref
from typing import Any, Protocol

from redis.exceptions import RedisError

from ..counters import Counters
from ..exceptions import ChannelLayerConnectionError
from ..figures import Tally
from .connections import Connections
from .keys import Keys
from .ring import HashRing
from .scripts import COUNT

__all__ = [
    "CARRY_EVERY",
    "RENEW_EVERY",
    "SYNC_EVERY",
    "Carried",
    "CountingLayer",
    "Scripted",
    "SharedCounts",
    "packed",
]

log = logging.getLogger("layers.redis")
SYNC_EVERY = 0.5
"""Seconds after which counts that no script carried are added with count.lua."""
CARRY_EVERY = 0.1
"""Seconds at least between two script calls that carry a process's own counts."""
RENEW_EVERY = 60.0
"""Seconds at most between a process's renewals of a counters hash it counts in (a
quarter of the hash's TTL if that is shorter)."""

Carried = dict[str, int] | None
"""Counts a script call carries (None: nothing to carry)."""


class CountingLayer(Protocol):
    """What the counters use of a RedisChannelLayer."""

    prefix: str
    expiry: float
    group_expiry: float
    counters: Counters
    keys: Keys
    ring: HashRing
    connections: Connections
    shard_names: list[str]

    @property
    def closed(self) -> bool:
        """True once the layer is closed."""


class Scripted:
    """What this layer's scripts counted in Redis, as their replies said."""

    __slots__ = (
        "dropped_dead_owner",
        "dropped_expired",
        "dropped_full",
        "dropped_undecodable",
        "group_sends",
        "sent",
    )

    def __init__(self) -> None:
        self.sent = self.group_sends = self.dropped_full = self.dropped_expired = 0
        self.dropped_undecodable = self.dropped_dead_owner = 0

    def group_sent(self, replies: list[Any]) -> tuple[int, int, int]:
        """Count what group_send.lua's replies say it counted; return the normal channels
        it reached, the full ones and the expired messages it dropped."""
        reached = full = expired = handed = 0
        for reply in replies:
            reached += reply[0]
            full += reply[1]
            expired += reply[2]
            handed += reply[3]
        self.sent += reached + handed
        self.dropped_full += full
        self.dropped_expired += expired
        return reached, full, expired

    def values(self) -> tuple[int, ...]:
        """The counts in figures.SHARED_COUNTERS order (no script counts deliveries)."""
        return (
            self.sent,
            0,
            self.group_sends,
            self.dropped_full,
            self.dropped_expired,
            self.dropped_undecodable,
            self.dropped_dead_owner,
        )


def packed(carried: Carried) -> str:
    """Counts as the scripts take them: "name=n,name=-n" ("" for none); names are
    counters, or local parts for depth counts."""
    return ",".join([f"{name}={n}" for name, n in carried.items()]) if carried else ""


class SharedCounts:
    """This layer's share of the prefix's counters: what its scripts counted, and what
    only it saw, carried by its next script call or added now and then."""

    def __init__(self, layer: CountingLayer) -> None:
        self.layer = layer
        self.scripted = Scripted()
        counters, scripted = layer.counters, self.scripted
        self.tally = Tally(
            lambda: tuple(
                mine - theirs
                for mine, theirs in zip(counters.shared(), scripted.values(), strict=True)
            )
        )
        # True once a script call carried counts since the periodic task last looked.
        self.carried = False
        # Loops in other threads carry too: one take must not overlap another.
        self._lock = threading.Lock()
        self._next_carry = 0.0
        self._task: asyncio.Task[None] | None = None
        self.ttl_ms = int(1000 * max(layer.group_expiry, 2 * layer.expiry + 1))
        self._renew_every = min(RENEW_EVERY, self.ttl_ms / 4000)
        # Per counters hash, when this process renews it next (monotonic seconds).
        self._renew_at: dict[str, float] = {}

    def lifetime(self, key: str) -> int:
        """The TTL argument of a script call that adds to the counters hash key: the TTL
        in ms when this process is due to renew key, else its negative (the script
        then gives it only to a hash it makes)."""
        now = time.monotonic()
        if now < self._renew_at.get(key, 0.0):
            return -self.ttl_ms
        self._renew_at[key] = now + self._renew_every
        return self.ttl_ms

    def carry(self) -> Carried:
        """What only this process counted since the last carry, for a script call to
        carry; give it back if the call fails (settle, give_back)."""
        now = time.monotonic()
        if now < self._next_carry:
            return None
        carried = self._take()
        if carried:
            self.carried = True
            self._next_carry = now + CARRY_EVERY
        return carried

    def _take(self) -> Carried:
        with self._lock:
            return self.tally.take()

    def give_back(self, carried: Carried) -> None:
        """Counts a failed script call carried: the next call carries them again."""
        if carried:
            with self._lock:
                self.tally.give_back(carried)

    def settle(self, carried: Carried, task: asyncio.Future[Any]) -> None:
        """Done callback of a script call that carried counts."""
        if task.cancelled() or task.exception() is not None:
            self.give_back(carried)

    def ensure(self) -> None:
        """Add counts now and then from the running loop, unless a loop does already."""
        task = self._task
        if task is None or task.done() or task.get_loop().is_closed():
            # A weak reference: the task must not keep a layer dropped without close().
            self._task = asyncio.get_running_loop().create_task(_every(weakref.ref(self)))

    async def push(self) -> None:
        """Add what only this process counted and no script carried yet."""
        carried = self._take()
        if not carried:
            return
        layer = self.layer
        key = layer.keys.counted
        try:
            clients = await layer.connections.here()
            args = [packed(carried), self.lifetime(key)]
            await COUNT(clients.scripting(layer.ring.index(key)), [key], args)
        except BaseException:
            self.give_back(carried)
            raise

    async def close(self) -> None:
        """Stop the periodic push, after a last one."""
        task = self._task
        if task is not None and task.get_loop() is asyncio.get_running_loop():
            task.cancel()  # one in another loop ends by itself: the layer is closed
        with contextlib.suppress(RedisError, ChannelLayerConnectionError, OSError):
            await self.push()


async def _every(ref: weakref.ref[SharedCounts]) -> None:
    while True:
        await asyncio.sleep(SYNC_EVERY)
        counts = ref()
        if counts is None or counts.layer.closed:
            return
        if counts.carried:
            counts.carried = False  # scripts carry them: no round trip of its own
        elif counts.tally.pending():
            try:
                await counts.push()
            except (RedisError, ChannelLayerConnectionError, OSError) as exc:
                log.debug("could not add counts to Redis (kept for the next try): %r", exc)
        del counts

"""What a layer declares on the broker, and the names and arguments it gives them.

Every name starts with the layer's prefix, so flush() and tests never touch anything
else on a shared broker. Its parts are joined with SEP, ':', which occurs in no prefix,
channel or group name: no two (prefix, name) pairs share a queue (with '.', prefix 'a'
and channel 'b.c.x' took the queue of prefix 'a.c.b' and channel 'x').

* ``<prefix>:c:<channel>``  a normal channel: a real queue any process can consume;
* ``<prefix>:p:<client id>``  one layer instance's inbox for its process-local channels;
* ``<prefix>:m:<group>``  a group's membership records (see registry.py);
* ``<prefix>:f:<client id>``  the last snapshot of that layer instance's counters (figures.py);
* ``<prefix>:k``  the catalog: the names of the prefix's queues, for flush() (broker.py);
* ``<prefix>:g``  the direct exchange that fans a group message out (routing key = group);
  every live inbox is also bound to it with ANCHOR, a key no group can have, which keeps
  this auto-delete exchange alive while any layer of the prefix runs;
* ``<prefix>:dl``  a headers exchange that routes expired messages back to their sender's
  inbox (header ``s`` = sender's client id), which counts them as dropped_expired.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..naming import non_local_name

__all__ = ["ANCHOR", "SEP", "Topology", "client_of"]

# A process inbox outlives its consumer by this much at least, so a layer used from
# one short event loop after another (asyncio.run per call) keeps its queue.
_MIN_INBOX_LINGER = 5.0
# A normal channel's queue is removed by the broker once unused for its longest lifetime
# (a message's expiry or a membership's group_expiry) plus this margin.
_QUEUE_LINGER_MARGIN = 60.0
SEP = ":"
# The routing key that anchors the group exchange: '!' never occurs in a group name.
ANCHOR = "!anchor"


def client_of(channel: str) -> str:
    """The client id in a process-local channel name 'prefix.<client id>!local'."""
    inbox = non_local_name(channel)
    return inbox[:-1].rpartition(".")[2]


@dataclass(frozen=True)
class Topology:
    """Names and queue arguments for one prefix and one set of limits."""

    prefix: str
    expiry: float
    group_expiry: float

    @property
    def groups(self) -> str:
        """The group fan-out exchange."""
        return f"{self.prefix}{SEP}g"

    @property
    def dead_letters(self) -> str:
        """The exchange that returns expired messages to their sender."""
        return f"{self.prefix}{SEP}dl"

    def channel_queue(self, channel: str) -> str:
        """The queue of a normal channel."""
        return f"{self.prefix}{SEP}c{SEP}{channel}"

    def inbox_queue(self, client_id: str) -> str:
        """The inbox queue of the layer instance with this client id."""
        return f"{self.prefix}{SEP}p{SEP}{client_id}"

    def registry_queue(self, group: str) -> str:
        """The membership records of a group."""
        return f"{self.prefix}{SEP}m{SEP}{group}"

    def figures_queue(self, client_id: str) -> str:
        """The last snapshot of the counters of the layer instance with this client id."""
        return f"{self.prefix}{SEP}f{SEP}{client_id}"

    @property
    def catalog_queue(self) -> str:
        """The names of the prefix's queues, declared by any process, for flush()."""
        return f"{self.prefix}{SEP}k"

    def channel_arguments(self, capacity: int) -> dict[str, Any]:
        """A normal channel: bounded (reject-publish), expiring, dead-lettered to senders."""
        linger = max(self.expiry, self.group_expiry) + _QUEUE_LINGER_MARGIN
        return {
            "x-max-length": capacity,
            "x-overflow": "reject-publish",
            "x-message-ttl": _ms(self.expiry),
            "x-dead-letter-exchange": self.dead_letters,
            "x-expires": _ms(linger),
        }

    def inbox_arguments(self, capacity: int) -> dict[str, Any]:
        """A process inbox: bounded (reject-publish), expiring; removed soon after its process."""
        return {
            "x-max-length": capacity,
            "x-overflow": "reject-publish",
            "x-message-ttl": _ms(self.expiry),
            "x-dead-letter-exchange": self.dead_letters,
            "x-expires": _ms(max(self.expiry, _MIN_INBOX_LINGER)),
        }

    def catalog_arguments(self) -> dict[str, Any]:
        """The catalog outlives every queue it names."""
        return {"x-expires": _ms(max(self.expiry, self.group_expiry) + 2 * _QUEUE_LINGER_MARGIN)}

    def figures_arguments(self, every: float) -> dict[str, Any]:
        """A snapshot queue: the last one only, gone a while after its process stops
        publishing (a reader's get keeps the queue, not the snapshot)."""
        return {
            "x-max-length": 1,
            "x-overflow": "drop-head",
            "x-message-ttl": _ms(3 * every),
            "x-expires": _ms(max(self.expiry, _MIN_INBOX_LINGER) + 3 * every),
        }

    def registry_arguments(self) -> dict[str, Any]:
        """Membership records: removed once no membership can still be alive."""
        return {"x-expires": _ms(self.group_expiry + _QUEUE_LINGER_MARGIN)}


def _ms(seconds: float) -> int:
    return max(1, int(seconds * 1000))

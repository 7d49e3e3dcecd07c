"""Message headers on the wire, and deadlines that cross process boundaries.

A deadline travels as wall-clock milliseconds (header ``d``), since monotonic clocks
differ between processes; the receiver turns it back into its own monotonic time.
"""

from __future__ import annotations

import time
from typing import Any

__all__ = ["ADD", "DISCARD", "OPS", "deadline_header", "local_deadline"]

SENDER = "s"  # client id of the sending layer: expired messages are dead-lettered back to it
DEADLINE = "d"  # wall-clock ms after which the message must not be delivered
CHANNEL = "c"  # the process-local channel a direct inbox message is for
GROUP = "g"  # the group a fanned-out message was sent to
BUNDLE = "n"  # a bundle of this many items of one send_many (sending.py)
OP = "op"  # a membership control message for the inbox's owner
UNTIL = "u"  # wall-clock ms a membership lasts (control "add")
ADD = "add"
DISCARD = "discard"
OPS = (ADD, DISCARD)


def deadline_header(expiry: float) -> int:
    """The wall-clock ms deadline of a message sent now."""
    return int((time.time() + expiry) * 1000)


def local_deadline(headers: dict[str, Any], expiry: float) -> float:
    """The monotonic deadline of a received message (now + expiry at the latest)."""
    now = time.monotonic()
    wall = headers.get(DEADLINE)
    if not isinstance(wall, int):
        return now + expiry
    # Never later than expiry from now, whatever the header says (a forged one could).
    return now + min(wall / 1000 - time.time(), expiry)

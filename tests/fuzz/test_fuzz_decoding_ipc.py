"""Garbage written straight into an IPC region's message records is dropped and counted.

A buggy or hostile process with access to the region appends records through the
region's own queue operation (State.push, what send uses under push_local), bypassing
``send``'s encoding: into a layer's process inbox (random records, records with no
newline or a header that names no local channel, and well-formed headers before
random, truncated, byte-flipped or foreign-key payloads, some already expired), and
into a normal channel. The reader must drop and count each once (dropped_undecodable,
or dropped_expired for an expired one) and go on delivering on that and other channels.

Not covered: corrupting the region's structure (the committed index, a node's header:
next, sequence, deadline, size, or the free list). The region trusts it, as it trusts
the kernel's shared memory; a writer that scribbles there can break delivery. Nor can a
record whose header names another of the inbox's real channels be told from a real one,
and a flipped byte in a plain (unencrypted) payload may still decode: such a message is
delivered as what it decoded to.
"""

from __future__ import annotations

import secrets
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from layers.ipc import IPCChannelLayer
from layers.ipc.files import default_directory
from layers.naming import LOCAL_PARTS, non_local_name
from tests.fuzz.garbage import deliveries_go_on, foreign, tampered
from tests.helpers import msg


def foreign_header(record: bytes) -> bool:
    """True unless record could be one a layer wrote (a header naming local parts)."""
    header, newline, _ = record.partition(b"\n")
    return not newline or LOCAL_PARTS.fullmatch(header) is None


records = st.one_of(
    st.binary(max_size=64),  # anything at all, header included
    st.binary(max_size=32).map(lambda b: b.replace(b"\n", b"") + b"\n"),  # no payload
    st.binary(max_size=32).map(lambda b: b"\xff\xfe" + b"\n" + b),  # a header not ASCII
    st.binary(max_size=32).map(lambda b: b"a b,c\x00\n" + b),  # names no channel
).filter(foreign_header)


def place(layer: IPCChannelLayer, queue: str, items: list[bytes], expired: bool = False) -> None:
    """Append raw records to a queue of the region, in one committed transaction."""
    deadline = time.monotonic() + (-1 if expired else 60)
    with layer.txn() as txn:
        for item in items:
            assert txn.state.push(queue, deadline, item)
        txn.state.take_watchers(queue, txn.wake)
        txn.changed = True


@pytest.mark.parametrize("encrypted", [False, True], ids=["plain", "encrypted"])
@settings(max_examples=15)
@given(garbage=st.lists(records, min_size=1, max_size=6), data=st.data())
async def test_garbage_in_ipc_records_is_dropped_and_counted(
    encrypted: bool, garbage: list[bytes], data: st.DataObject
) -> None:
    name = f"z{secrets.token_hex(4)}"
    keys = ["k1-sixteen-bytes-at-least"] if encrypted else None
    layer = IPCChannelLayer(name=name, size=1 << 20, symmetric_encryption_keys=keys)
    try:
        local, other, member = [await layer.new_channel() for _ in range(3)]
        inbox = non_local_name(local)
        part = local[len(inbox) :].encode()
        await layer.group_add("g", member)
        await layer.group_add("g", "normal")
        good = layer.codec.encode(msg(0))
        payloads = [tampered(good, data, encrypted), foreign(), *garbage]
        # A record for a real channel names it in its header, then the payload.
        headed = [part + b"\n" + p for p in payloads]
        place(layer, inbox, [*garbage, *headed])
        # Expired ones are counted by the purge, one per name in the header.
        place(layer, inbox, [g.replace(b",", b"") for g in garbage], expired=True)
        place(layer, "normal", payloads)

        survived = await deliveries_go_on(layer, layer, local, other, member)
        assert not encrypted or survived == 0
        stats = layer.stats()
        broken = 2 * len(garbage) + len(headed) + len(payloads)
        assert stats["dropped_undecodable"] + stats["dropped_expired"] + survived == broken
        assert stats["received"] == 5 + survived
    finally:
        await layer.flush()
        await layer.close()
    assert not default_directory(name).exists()

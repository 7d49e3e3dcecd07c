"""The index's heap allocator and queues, without a region."""

from __future__ import annotations

from layers.ipc.state import State


def test_freed_extents_coalesce_back_into_one() -> None:
    state = State.fresh(1000, 2000)
    offsets = [state.alloc(100, 1) for _ in range(5)]
    assert offsets == [1000, 1104, 1208, 1312, 1416]  # 8-byte aligned
    for offset in (1104, 1312, 1000, 1416, 1208):
        state.release(offset)
    assert state.free == [[1000, 1000]]
    assert state.heap_used() == 0


def test_an_extent_is_freed_when_its_last_reference_goes() -> None:
    state = State.fresh(0, 64)
    offset = state.alloc(10, 3)
    assert offset == 0
    assert state.alloc(60, 1) is None  # 16 of 64 taken: no room for 64 more
    state.release(0, 2)
    assert state.heap_used() == 16
    state.release(0)
    assert state.heap_used() == 0


def test_pop_takes_the_oldest_of_an_inbox_and_drops_the_expired() -> None:
    state = State.fresh(0, 1024)
    for channel, deadline in (("x!b", 10.0), ("x!a", 1.0), ("x!a", 10.0), ("y", 10.0)):
        state.push(channel, deadline, state.alloc(1, 1) or 0, 1)
    entry, expired = state.pop("x!", now=5.0)
    assert expired == 1
    assert entry is not None
    assert entry[0] == 0  # x!b's, sent first
    assert state.pop("x!", now=5.0)[0] is not None
    assert state.pop("x!", now=5.0) == (None, 0)
    assert list(state.q) == ["y"]


def test_watchers_are_used_up_by_a_send_to_the_channel_or_its_inbox() -> None:
    state = State.fresh(0, 1024)
    state.watch("x!a", "c1.0")
    state.watch("x!", "c1.1")
    state.watch("other", "c2.0")
    woken: set[str] = set()
    state.take_watchers("x!a", woken)
    assert woken == {"c1.0", "c1.1"}
    assert not state.watching("x!a", "c1.0")
    assert state.watching("other", "c2.0")

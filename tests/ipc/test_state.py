"""The index's queues and heap allocator, over an anonymous map instead of a region."""

from __future__ import annotations

import mmap

from layers.ipc.state import NODE, State


def _state(size: int = 4096) -> State:
    return State.fresh(mmap.mmap(-1, size), 64, size)


def test_freed_space_is_reused_only_after_settle_and_coalesces() -> None:
    state = _state()
    for i in range(5):
        assert state.push(f"c{i}", 1e9, b"x" * 100)
    used = state.heap_used()
    assert used == 5 * (NODE.size + 104)
    for i in (1, 3, 0, 4, 2):
        assert state.pop(f"c{i}", 0)[0] == b"x" * 100
    # Not yet committed: the popped nodes' space must not be handed out again.
    assert state.heap_used() == used
    state.settle()
    assert state.free == [[64, 4096 - 64]]


def test_a_full_heap_refuses_a_push_and_keeps_what_it_had() -> None:
    state = _state(1024)
    assert state.push("a", 1e9, b"a" * 500)
    assert not state.push("b", 1e9, b"b" * 500)
    assert state.pop("a", 0) == (b"a" * 500, 0)
    assert state.pop("b", 0) == (None, 0)


def test_an_uncommitted_link_is_never_followed() -> None:
    state = _state()
    assert state.push("q", 1e9, b"one")
    head = list(state.q["q"])
    assert state.push("q", 1e9, b"two")  # links node two after node one, in the heap
    # As if the writer died before committing: the index still says one node.
    state.q["q"] = head
    assert state.pop("q", 0) == (b"one", 0)
    assert state.pop("q", 0) == (None, 0)


def test_pop_takes_the_oldest_of_an_inbox_and_drops_the_expired() -> None:
    state = _state()
    for channel, deadline, payload in (
        ("x!b", 10.0, b"1"),
        ("x!a", 1.0, b"2"),
        ("x!a", 10.0, b"3"),
        ("y", 10.0, b"4"),
    ):
        assert state.push(channel, deadline, payload)
    assert state.pop("x!", now=5.0) == (b"1", 1)
    assert state.pop("x!", now=5.0) == (b"3", 0)
    assert state.pop("x!", now=5.0) == (None, 0)
    assert list(state.q) == ["y"]


def test_watchers_are_used_up_by_a_send_to_the_channel_or_its_inbox() -> None:
    state = _state()
    state.watch("x!a", "c1.0")
    state.watch("x!", "c1.1")
    state.watch("other", "c2.0")
    woken: set[str] = set()
    state.take_watchers("x!a", woken)
    assert woken == {"c1.0", "c1.1"}
    assert not state.watching("x!a", "c1.0")
    assert state.watching("other", "c2.0")

"""The index's queues and heap allocator, over an anonymous map instead of a region."""

from __future__ import annotations

import mmap

from layers.ipc.groups import CHUNK, GroupCache
from layers.ipc.state import NODE, State


def _state(size: int = 4096) -> State:
    return State.fresh(mmap.mmap(-1, size), 64, size, GroupCache())


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


def test_an_inbox_entry_serves_several_channels_and_counts_each() -> None:
    state = _state()
    assert state.push_local("x!", ["a", "b"], 10.0, b"both")
    assert state.push_local("x!", ["a"], 1.0, b"late")
    assert (state.local_depth("x!a"), state.local_depth("x!b")) == (2, 1)
    assert state.queued() == 2  # two entries, three messages
    taken, expired = state.pop_inbox("x!", now=0.5, limit=10)
    assert taken == [(10.0, b"a,b\n\x01\x00both"), (1.0, b"a\n\x01\x00late")]
    assert expired == 0
    # Taken from the region is not yet received: the owner releases the counts.
    assert state.local_depth("x!a") == 2
    state.ack({"x!a": 2, "x!b": 1})
    assert state.dp == {}


def test_an_expired_inbox_entry_releases_its_channels() -> None:
    state = _state()
    assert state.push_local("x!", ["a", "b"], 1.0, b"old")
    assert state.push_local("x!", ["a"], 10.0, b"new")
    assert state.pop_inbox("x!", now=5.0, limit=10) == ([(10.0, b"a\n\x01\x00new")], 2)
    assert state.dp == {"x!a": 1}


def test_a_client_leaving_takes_its_inbox_counts_and_memberships() -> None:
    state = _state()
    state.p["c1"] = 1
    assert state.push_local("p.c1!", ["a"], 10.0, b"m")
    assert state.groups.add("g", "p.c1!a", 10.0)
    assert state.groups.add("g", "other", 10.0)
    state.watch("q", "c1.0")
    assert state.drop_client("c1", now=0) == 1
    assert (state.q, state.dp, state.w, state.p) == ({}, {}, {}, {})
    assert state.groups.members("g", 0) == ["other"]


def test_watchers_are_used_up_by_a_send() -> None:
    state = _state()
    state.watch("x!", "c1.0")
    state.watch("x!", "c1.1")
    state.watch("other", "c2.0")
    woken: set[str] = set()
    state.take_watchers("x!", woken)
    assert woken == {"c1.0", "c1.1"}
    assert not state.watching("x!", "c1.0")
    assert state.watching("other", "c2.0")


def test_a_group_blob_is_rewritten_elsewhere_and_the_old_one_freed_at_commit() -> None:
    state = _state()
    assert state.groups.add("g", "a", 10.0)
    first = list(state.groups.where["g"])
    state.settle()
    used = state.heap_used()
    assert state.groups.add("g", "b", 10.0)
    assert state.groups.where["g"][0] != first[0]  # never changed in place
    assert state.heap_used() > used  # the old blob is still there until commit
    state.settle()
    # Another process decodes the blobs it finds; expired memberships are pruned.
    other = State(state.d, state.mm, GroupCache())
    assert sorted(other.groups.members("g", 0)) == ["a", "b"]
    assert other.groups.discard("g", "a") is True
    assert other.groups.discard("g", "a") is False
    other.groups.prune(now=20.0)
    assert other.groups.where == {}
    assert other.settle()
    assert other.d["gd"] is None
    assert other.heap_used() == 0


def test_a_large_group_is_kept_in_blobs_and_an_add_rewrites_only_one() -> None:
    # One blob per group made each add rewrite the whole group: 5,000 adds took 1.1 s.
    state = _state(1 << 20)
    size = 3 * CHUNK + 10
    for i in range(size):
        assert state.groups.add("g", f"c{i}", 10.0)
        state.settle()  # one commit per group_add, as in a region
    places = [list(place) for place in state.groups.where["g"]]
    assert len(places) == 4
    assert all(len(state.groups.get("g")) == size for _ in range(2))
    state.settle()
    before = [list(place) for place in state.groups.where["g"]]
    assert state.groups.add("g", f"c{CHUNK + 1}", 20.0)  # a renewal, in the second blob
    after = state.groups.where["g"]
    assert [a == b for a, b in zip(before, after, strict=True)] == [True, False, True, True]
    assert state.groups.discard("g", "c3") is True
    assert state.groups.where["g"][1:] == after[1:]
    state.settle()
    # Another process decodes the blobs; prune drops the expired blob by blob.
    other = State(state.d, state.mm, GroupCache())
    assert sorted(other.groups.members("g", 0)) == sorted(f"c{i}" for i in range(size) if i != 3)
    assert other.groups.members("g", 15.0) == [f"c{CHUNK + 1}"]
    other.groups.prune(now=15.0)
    assert other.groups.members("g", 0) == [f"c{CHUNK + 1}"]
    assert len(other.groups.where["g"]) == 1
    other.groups.prune(now=30.0)
    assert other.groups.where == {}
    assert other.settle()
    assert other.heap_used() == 0

"""layers/inmemory/groups.py: memberships with expiry."""

from __future__ import annotations

from layers.groups import GroupRegistry


def test_members_drops_each_membership_once_its_deadline_passes() -> None:
    groups = GroupRegistry()
    groups.add("g", "a", 10.0)
    groups.add("g", "b", 20.0)
    groups.add("g", "c", 30.0)
    assert groups.members("g", 5.0) == ["a", "b", "c"]
    assert groups.members("g", 10.0) == ["b", "c"]  # a deadline reached has passed
    groups.add("g", "b", 40.0)  # renewed: now c ends first
    assert groups.members("g", 35.0) == ["b"]
    assert groups.members("g", 45.0) == []
    assert len(groups) == 0


def test_a_new_member_that_ends_first_is_still_dropped_on_time() -> None:
    groups = GroupRegistry()
    groups.add("g", "long", 100.0)
    groups.add("g", "short", 10.0)
    assert groups.members("g", 11.0) == ["long"]


def test_sweep_and_discard_forget_groups_left_empty() -> None:
    groups = GroupRegistry()
    groups.add("g", "a", 10.0)
    groups.add("h", "a", 50.0)
    groups.add("k", "a", 50.0)
    groups.sweep(20.0)
    assert len(groups) == 2
    groups.discard("h", "a")
    assert groups.members("h", 0.0) == []
    assert groups.members("k", 20.0) == ["a"]
    assert len(groups) == 1

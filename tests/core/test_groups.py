"""GroupRegistry: memberships with deadlines, shared by the in-memory and RabbitMQ layers."""

from __future__ import annotations

from layers.groups import GroupRegistry


def test_add_says_whether_the_group_had_no_member() -> None:
    groups = GroupRegistry()
    assert groups.add("g", "a", deadline=10)
    assert not groups.add("g", "b", deadline=10)
    assert not groups.add("g", "a", deadline=20)  # a renewal
    assert groups.members("g", now=5) == ["a", "b"]


def test_with_now_expired_members_do_not_count() -> None:
    groups = GroupRegistry()
    groups.add("g", "a", deadline=10)
    assert groups.add("g", "b", deadline=30, now=15)  # a had expired: b is the first live
    assert not groups.add("g", "c", deadline=30, now=15)
    assert not groups.discard("g", "b", now=15)  # c is still live
    assert groups.discard("g", "c", now=15)  # only a is left, and it has expired
    assert groups.groups() == []  # so the group is forgotten


def test_discard_without_now_forgets_a_group_once_empty() -> None:
    groups = GroupRegistry()
    groups.add("g", "a", deadline=10)
    groups.add("g", "b", deadline=10)
    assert not groups.discard("g", "a")
    assert not groups.discard("nope", "a")
    assert groups.discard("g", "b")
    assert len(groups) == 0


def test_members_forget_the_expired_and_clear_returns_the_groups() -> None:
    groups = GroupRegistry()
    groups.add("g", "a", deadline=10)
    groups.add("g", "b", deadline=30)
    groups.add("h", "c", deadline=10)
    assert groups.members("g", now=20) == ["b"]
    assert groups.members("h", now=20) == []
    assert groups.groups() == ["g"]
    assert groups.clear() == ["g"]
    assert len(groups) == 0


def test_has_answers_for_live_memberships_only() -> None:
    registry = GroupRegistry()
    registry.add("g", "p.x!a", deadline=10.0)
    registry.add("g", "named", deadline=5.0)
    assert registry.has("g", "p.x!a", now=1.0)
    assert registry.has("g", "p.x!", now=1.0)  # receive("p.x!")
    assert registry.has("g", "named", now=1.0)
    assert not registry.has("g", "named", now=6.0)  # lapsed
    assert not registry.has("g", "p.y!", now=1.0)
    assert not registry.has("g", "other", now=1.0)
    assert not registry.has("nobody", "named", now=1.0)

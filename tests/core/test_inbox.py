"""layers/inbox.py: the process inbox shared by the IPC and Redis backends."""

from __future__ import annotations

import asyncio

import pytest

from layers.counters import Counters
from layers.exceptions import ChannelLayerClosed
from layers.inbox import HEADER, MAX_ENTRY_CHANNELS, Acks, Fanout, ProcessInbox, Readers, pack_entry
from layers.local import UNBOUNDED, LocalChannels
from tests.loop_thread import WAIT, loop_thread

FAR = 1e9


def fanout() -> tuple[Fanout, LocalChannels, Counters]:
    counters = Counters()
    local = LocalChannels(counters)
    return Fanout(local, counters, UNBOUNDED), local, counters


# -- entries and fan-out ------------------------------------------------------------


def test_an_entry_reaches_every_local_channel_it_names() -> None:
    fan, local, _ = fanout()
    assert fan.deliver("p.id!", pack_entry(["a", "b"], b"m"), FAR)
    assert fan.deliver("p.id!", pack_entry(["c"], b"n"), FAR)
    assert [local.take("p.id!a"), local.take("p.id!b"), local.take("p.id!c")] == [b"m", b"m", b"n"]


def test_an_entry_may_follow_a_store_s_own_fields() -> None:
    fan, local, _ = fanout()
    assert fan.deliver("p.id!", b"1234567890123" + pack_entry(["a"], b"m"), FAR, start=13)
    assert local.take("p.id!a") == b"m"


def test_a_malformed_entry_is_dropped_and_counted_not_fatal() -> None:
    fan, local, counters = fanout()
    for entry in (b"no newline", b"a b\nspaces", b"\xff\npayload"):
        assert not fan.deliver("p.id!", entry, FAR)
    assert counters.dropped_undecodable == 3
    assert fan.deliver("p.id!", pack_entry(["a"], b"still fine"), FAR)
    assert local.take("p.id!a") == b"still fine"


def test_an_entry_carries_a_versioned_header_after_its_parts() -> None:
    assert pack_entry(["a", "b"], b"m") == b"a,b\n" + HEADER + b"m"
    assert HEADER == b"\x01\x00"  # version 1, no optional fields


def test_an_entry_of_a_format_this_layer_does_not_know_is_dropped_and_counted() -> None:
    fan, local, counters = fanout()
    later_version = b"a\n\x02\x00m"
    unknown_field = b"a\n\x01\x01m"
    headerless = b"a\nm"  # the format before headers: needs a flush across the upgrade
    for entry in (later_version, unknown_field, headerless):
        assert not fan.deliver("p.id!", entry, FAR)
    assert counters.dropped_undecodable == 3
    assert local.take("p.id!a") is None


def test_an_expired_entry_is_not_delivered() -> None:
    fan, local, counters = fanout()
    fan.deliver("p.id!", pack_entry(["a", "b"], b"m"), 0.0)
    assert local.take("p.id!a") is None
    assert counters.dropped_expired == 1


# -- acks ----------------------------------------------------------------------------


def test_acks_gather_per_inbox_and_tell_once_until_taken() -> None:
    told: list[str] = []
    acks = Acks(told.append)
    acks.add("p!a", 1)
    acks.add("p!a", 2)
    acks.add_each(["p!b", "q!c"], 1)
    assert told == ["p!", "q!"]
    assert acks.pending("p!")
    assert acks.take("p!") == {"a": 3, "b": 1}
    assert not acks.pending("p!")
    acks.add("p!a", 1)
    assert told == ["p!", "q!", "p!"]
    assert acks.take_all() == {"p!a": 1, "q!c": 1}
    assert acks.take("q!") is None


def test_a_reserve_and_its_release_cancel_out() -> None:
    acks = Acks(lambda inbox: None)
    acks.add_each(["p!a", "p!b"], -1)  # delivered in-process: depth reserved
    acks.add("p!a", 1)  # and taken before the next release
    assert acks.take("p!") == {"b": -1}
    acks.add("p!a", -1)
    acks.add("p!a", 1)
    assert acks.take("p!") is None


def test_counts_given_back_are_released_with_the_next() -> None:
    told: list[str] = []
    acks = Acks(told.append)
    acks.add("p!a", 2)
    taken = acks.take("p!")
    assert taken == {"a": 2}
    acks.add("p!a", 1)
    acks.give_back("p!", taken)
    assert acks.take("p!") == {"a": 3}
    acks.give_back_all({"p!a": 1, "q!b": 2})
    assert acks.take_all() == {"p!a": 1, "q!b": 2}
    assert told[:2] == ["p!", "p!"]
    assert sorted(told[2:]) == ["p!", "q!"]


def no_reader(inbox: str, loop: asyncio.AbstractEventLoop) -> tuple[asyncio.Task[None], ...]:
    raise AssertionError("no reader expected")


def test_taking_from_the_buffers_of_a_process_inbox_releases_depth() -> None:
    told: list[str] = []
    inbox = ProcessInbox(Counters(), 30.0, told.append, no_reader, lambda: None)
    inbox.fanout.deliver("p!", pack_entry(["a", "b"], b"m"), FAR)
    assert inbox.local.take("p!a") == b"m"
    assert inbox.local.take("p!b") == b"m"
    assert told == ["p!"]
    assert inbox.acks.take("p!") == {"a": 1, "b": 1}


def test_a_group_entry_the_store_did_not_count_is_capped_and_releases_nothing() -> None:
    told: list[str] = []
    counters = Counters()
    inbox = ProcessInbox(counters, 30.0, told.append, no_reader, lambda: None, capacity=2)
    for payload in (b"g1", b"g2", b"g3"):
        assert inbox.fanout.deliver("p!", b"*" + pack_entry(["a", "b"], payload), FAR)
    # A direct entry was counted by the store: it is never capped here.
    inbox.fanout.deliver("p!", pack_entry(["a"], b"d"), FAR)
    assert counters.dropped_full == 2  # g3, for a and for b
    taken = [inbox.local.take("p!a") for _ in range(3)] + [inbox.local.take("p!b")]
    assert taken == [b"g1", b"g2", b"d", b"g1"]
    # Three messages of a left, one of them counted by the store: one release.
    assert told == ["p!"]
    assert inbox.acks.take("p!") == {"a": 1}
    assert inbox.local.take("p!b") == b"g2"
    inbox.local.clear()
    assert inbox.acks.take("p!") is None


def test_a_group_entry_with_a_bad_part_is_dropped_and_counted() -> None:
    fan, local, counters = fanout()
    assert not fan.deliver("p!", b"*a,b!c\n" + HEADER + b"m", FAR)
    assert not fan.deliver("p!", b"**a\n" + HEADER + b"m", FAR)
    assert counters.dropped_undecodable == 2
    assert local.take("p!a") is None


# -- readers -------------------------------------------------------------------------


async def test_an_inbox_gets_one_set_of_reader_tasks_restarted_once_they_end() -> None:
    readers = Readers()
    started: list[asyncio.Task[None]] = []

    def start(loop: asyncio.AbstractEventLoop) -> tuple[asyncio.Task[None], ...]:
        task = loop.create_task(asyncio.sleep(FAR))
        started.append(task)
        return (task,)

    readers.ensure("p!", start)
    readers.ensure("p!", start)
    assert len(started) == 1
    assert readers.running("p!")
    started[0].cancel()
    await asyncio.sleep(0)
    assert not readers.running("p!")
    readers.ensure("p!", start)
    assert len(started) == 2
    mine = readers.cancel()
    assert mine == [started[1]]
    await asyncio.gather(*mine, return_exceptions=True)
    assert started[1].cancelled()
    assert not readers.running("p!")


async def test_readers_in_another_loop_are_cancelled_there_and_replaced_once_it_closed() -> None:
    readers = Readers()
    started: list[asyncio.Task[None]] = []

    def start(loop: asyncio.AbstractEventLoop) -> tuple[asyncio.Task[None], ...]:
        started.append(loop.create_task(asyncio.sleep(FAR)))
        return (started[-1],)

    with loop_thread() as other:
        other.call(lambda: readers.ensure("p!", start))
        readers.ensure("p!", start)  # running there: not started here
        assert len(started) == 1
        assert readers.cancel() == []  # none of this loop's to wait for
        other.settle()
        assert other.call(started[0].cancelled)
        other.call(lambda: readers.ensure("p!", start))
        other.abandon()
    assert not readers.running("p!")  # its loop closed
    readers.ensure("p!", start)
    assert started[-1].get_loop() is asyncio.get_running_loop()
    mine = readers.cancel()
    await asyncio.wait_for(asyncio.gather(*mine, return_exceptions=True), WAIT)


async def test_receivers_of_an_inbox_share_one_hook_that_starts_its_reader() -> None:
    started: list[str] = []
    closed = False

    def start(inbox: str, loop: asyncio.AbstractEventLoop) -> tuple[asyncio.Task[None], ...]:
        started.append(inbox)
        return (loop.create_task(asyncio.sleep(FAR)),)

    def check_open() -> None:
        if closed:
            raise ChannelLayerClosed("closed")

    inbox = ProcessInbox(Counters(), 30.0, lambda inbox: None, start, check_open)
    hook = inbox.reader_hook("p!")
    assert inbox.reader_hook("p!") is hook
    hook()
    hook()
    inbox.ensure_reader("p!")
    assert started == ["p!"]
    closed = True
    with pytest.raises(ChannelLayerClosed):
        inbox.ensure_reader("q!")
    await asyncio.gather(*inbox.readers.cancel(), return_exceptions=True)


def test_an_entry_naming_more_channels_than_any_group_has_is_dropped() -> None:
    fan, local, counters = fanout()
    parts = [f"c{i}" for i in range(MAX_ENTRY_CHANNELS + 1)]
    assert not fan.deliver("p.id!", pack_entry(parts, b"m"), FAR)
    assert counters.dropped_undecodable == 1
    assert local.depths() == {}
    assert fan.deliver("p.id!", pack_entry(parts[:MAX_ENTRY_CHANNELS], b"m"), FAR)


async def test_the_names_an_entry_gives_are_the_ones_the_buffers_already_hold() -> None:
    # A group's names are cached for its next entries: a second copy of every member's
    # name would cost each idle receiver its name's size again.
    fan, local, _ = fanout()
    names = ["p.id!" + part for part in ("a", "b")]
    waiting = [asyncio.ensure_future(local.get(name)) for name in names]
    await asyncio.sleep(0)
    assert fan.deliver("p.id!", pack_entry(["a", "b", "c"], b"m"), FAR)
    assert await asyncio.gather(*waiting) == [b"m", b"m"]
    got = local.known(["p.id!" + part for part in ("a", "b", "c")])
    assert [got[0] is names[0], got[1] is names[1], got[2]] == [True, True, "p.id!c"]
    cached = fan._names["p.id!", b"a,b,c"]
    assert [cached[0] is names[0], cached[1] is names[1]] == [True, True]

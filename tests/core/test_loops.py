"""PerLoop: one resource per event loop, closed when that loop shuts down."""

from __future__ import annotations

import asyncio
import gc
import threading
import time
import weakref

from layers.loops import PerLoop


class Thing:
    """A resource that records the loop it was made in and the loops that closed it."""

    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.closed_in: list[asyncio.AbstractEventLoop] = []
        self.ended_in: list[asyncio.AbstractEventLoop] = []


class Things(PerLoop[Thing]):
    """Counts what it makes; closes by aclose() and at loop shutdown differently."""

    def __init__(self, pause: float = 0.0) -> None:
        super().__init__(self._new, self._shut, self._loop_ended)
        self.made: list[Thing] = []
        self.pause = pause

    async def _new(self) -> Thing:
        await asyncio.sleep(self.pause)
        thing = Thing()
        self.made.append(thing)
        return thing

    async def _shut(self, thing: Thing) -> None:
        thing.closed_in.append(asyncio.get_running_loop())

    async def _loop_ended(self, thing: Thing) -> None:
        thing.ended_in.append(asyncio.get_running_loop())


async def test_one_per_loop_made_once_and_reused() -> None:
    things = Things(pause=0.05)
    assert things.current() is None
    first = await asyncio.gather(*(things.here() for _ in range(5)))
    assert len(things.made) == 1
    assert all(thing is things.made[0] for thing in first)
    assert await things.here() is things.made[0]
    assert things.current() is things.made[0]
    assert things.all() == things.made


def test_each_loop_has_its_own_closed_at_its_shutdown() -> None:
    things = Things()
    seen: list[tuple[Thing, Thing | None]] = []

    def use() -> None:
        async def main() -> None:
            thing = await things.here()
            seen.append((thing, things.current()))

        asyncio.run(main())

    threads = [threading.Thread(target=use) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    use()  # and twice in this thread: each asyncio.run is a new loop
    use()
    assert len(things.made) == 5
    assert len({thing.loop for thing in things.made}) == 5
    for thing, current in seen:
        assert current is thing
        assert thing.ended_in == [thing.loop]  # at its loop's shutdown, in that loop
        assert thing.closed_in == []
        assert thing.loop.is_closed()
    assert things.all() == []  # forgotten once closed


def test_a_closed_loops_resource_is_not_reused() -> None:
    things = Things()
    old = asyncio.new_event_loop()
    try:
        made = old.run_until_complete(things.here())
        old.run_until_complete(old.shutdown_asyncgens())
    finally:
        old.close()
    assert made.ended_in == [old]
    assert things.all() == []

    async def main() -> Thing:
        assert things.current() is None
        return await things.here()

    # Same thread, old loop still alive: only the loop tells them apart.
    again = asyncio.run(main())
    assert again is not made
    assert again.loop is not old


async def test_aclose_closes_every_loops_resource_in_its_loop() -> None:
    things = Things()
    ready = threading.Event()
    release = threading.Event()

    def other() -> None:
        async def main() -> None:
            await things.here()
            ready.set()
            await asyncio.to_thread(release.wait, 10)

        asyncio.run(main())

    thread = threading.Thread(target=other)
    thread.start()
    try:
        await asyncio.to_thread(ready.wait, 10)
        mine = await things.here()
        theirs = next(thing for thing in things.made if thing is not mine)
        await things.aclose()
        assert mine.closed_in == [mine.loop]
        assert theirs.closed_in == [theirs.loop]  # in its loop, awaited by aclose()
        assert things.all() == []
        assert things.current() is None
    finally:
        release.set()
        await asyncio.to_thread(thread.join, 10)
    assert theirs.ended_in == [theirs.loop]  # its finalizer still ran at its shutdown


async def test_a_failed_make_is_not_kept() -> None:
    calls = 0

    async def make() -> Thing:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.05)
        if calls == 1:
            raise OSError("refused")
        return Thing()

    async def close(thing: Thing) -> None:
        thing.closed_in.append(asyncio.get_running_loop())

    things = PerLoop(make, close)
    failed = await asyncio.gather(things.here(), things.here(), return_exceptions=True)
    assert [type(result) for result in failed] == [OSError, OSError]
    assert calls == 1
    assert things.current() is None
    made = await things.here()
    assert calls == 2
    assert things.all() == [made]


def test_take_all_hands_over_and_forgets() -> None:
    things = Things()

    async def main() -> None:
        thing = await things.here()
        assert things.take_all() == [(thing.loop, thing)]
        assert things.current() is None
        assert await things.here() is not thing
        await asyncio.sleep(0.05)
        assert thing.ended_in == []  # its finalizer waits for the loop's shutdown

    asyncio.run(main())
    assert len(things.made) == 2
    assert [thing.ended_in for thing in things.made] == [[things.made[0].loop]] * 2


def test_a_stopped_loops_resource_is_left_to_its_finalizer() -> None:
    things = Things()
    loop = asyncio.new_event_loop()
    try:
        thing = loop.run_until_complete(things.here())
        started = time.monotonic()
        asyncio.run(things.aclose())  # nothing can run in that loop now: no waiting
        assert time.monotonic() - started < 1
        assert things.all() == []
        loop.run_until_complete(loop.shutdown_asyncgens())
    finally:
        loop.close()
    assert thing.closed_in == []
    assert thing.ended_in == [loop]


def test_ended_loops_are_not_kept_alive() -> None:
    things = Things()

    async def main() -> None:
        await things.here()

    for _ in range(3):
        asyncio.run(main())
    loops = [weakref.ref(thing.loop) for thing in things.made]
    things.made.clear()
    gc.collect()
    assert [loop() for loop in loops] == [None] * 3

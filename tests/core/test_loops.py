"""PerLoop: one resource per event loop, closed when that loop shuts down."""

from __future__ import annotations

import asyncio
import gc
import threading
import time
import weakref
from typing import Any

import pytest

from layers.loops import LoopTasks, PerLoop, run_in_loop


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


# -- LoopTasks and run_in_loop --------------------------------------------------------


class LoopThread:
    """An event loop running in a thread of its own, stopped and closed by close()."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever)
        self.thread.start()

    def call(self, coro: Any) -> Any:
        """Run coro in that loop and return its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(10)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


async def wait_forever(log: list[str], name: str) -> None:
    try:
        await asyncio.Event().wait()
    except asyncio.CancelledError:
        log.append(f"{name} cancelled in {threading.current_thread().name}")
        raise


async def test_loop_tasks_cancel_every_loops_tasks_in_their_loop() -> None:
    tasks, log = LoopTasks(), []
    other = LoopThread()
    try:

        async def start_there() -> None:
            tasks.start("there", wait_forever(log, "there"), name="there")

        other.call(start_there())
        tasks.start("here", wait_forever(log, "here"), name="here")
        await asyncio.sleep(0)
        assert tasks.alive("here")
        assert tasks.alive("there")
        await tasks.aclose()  # this loop's task is done when it returns
        # The other loop's task may have logged first: its thread runs meanwhile.
        assert f"here cancelled in {threading.current_thread().name}" in log
        for _ in range(100):
            if len(log) == 2:
                break
            await asyncio.sleep(0.01)
        assert f"there cancelled in {other.thread.name}" in log
        assert len(log) == 2
        assert not tasks.alive("here")
        assert not tasks.alive("there")
    finally:
        other.close()


async def test_loop_tasks_alive_start_again_and_forget() -> None:
    tasks = LoopTasks()
    ran = asyncio.Event()

    async def quick() -> None:
        ran.set()

    assert not tasks.alive("k")
    tasks.start("k", quick(), name="quick")
    assert tasks.alive("k")
    await ran.wait()
    await asyncio.sleep(0)
    assert not tasks.alive("k")  # finished: start() may run another
    log: list[str] = []
    tasks.start("k", wait_forever(log, "k"), name="again")
    assert tasks.alive("k")
    await asyncio.sleep(0)
    tasks.forget("k")
    assert not tasks.alive("k")
    assert tasks.cancel_all() == []  # forgotten: not this owner's to cancel any more
    await tasks.aclose()
    assert log == []


def test_a_task_of_a_closed_loop_is_not_alive() -> None:
    tasks, log = LoopTasks(), []

    async def main() -> None:
        tasks.start("k", wait_forever(log, "k"), name="k")
        await asyncio.sleep(0)

    loop = asyncio.new_event_loop()
    loop.run_until_complete(main())
    assert tasks.alive("k")
    loop.close()
    assert not tasks.alive("k")

    async def close() -> None:
        assert tasks.cancel_all() == []  # nothing to do in a closed loop

    asyncio.run(close())


async def test_run_in_loop_here_there_and_not_at_all() -> None:
    ran: list[asyncio.AbstractEventLoop] = []

    async def record() -> None:
        ran.append(asyncio.get_running_loop())

    async def fail() -> None:
        raise RuntimeError("boom")

    here = asyncio.get_running_loop()
    assert await run_in_loop(here, record)
    with pytest.raises(RuntimeError, match="boom"):
        await run_in_loop(here, fail)  # here: the caller's to handle
    other = LoopThread()
    try:
        assert await run_in_loop(other.loop, record)
        assert await run_in_loop(other.loop, fail)  # there: ignored
    finally:
        other.close()
    stopped = asyncio.new_event_loop()
    try:
        assert not await run_in_loop(stopped, record)  # not even made: no coroutine to leak
    finally:
        stopped.close()
    assert ran == [here, other.loop]


async def test_run_in_loop_waits_only_so_long_for_another_loop() -> None:
    other = LoopThread()
    release = threading.Event()

    async def stuck() -> None:
        await asyncio.to_thread(release.wait, 10)

    try:
        started = time.monotonic()
        assert await run_in_loop(other.loop, stuck, patience=0.2)
        assert time.monotonic() - started < 5
    finally:
        release.set()
        other.close()


async def test_spawned_tasks_are_kept_until_done_and_failures_reported() -> None:
    failures: list[BaseException] = []
    tasks, log = LoopTasks(on_failure=failures.append), []

    async def fail() -> None:
        raise RuntimeError("boom")

    tasks.spawn(fail())
    tasks.spawn(wait_forever(log, "spawned"))
    await asyncio.sleep(0.01)
    assert [str(error) for error in failures] == ["boom"]
    left = tasks.cancel_all()  # the failed one is gone already; the waiting one is not
    assert len(left) == 1
    await asyncio.gather(*left, return_exceptions=True)
    assert log == [f"spawned cancelled in {threading.current_thread().name}"]
    assert failures == [failures[0]]  # a cancellation is no failure


async def test_cancel_here_leaves_other_loops_tasks_running() -> None:
    tasks, log = LoopTasks(), []
    other = LoopThread()
    try:

        async def spawn_there() -> None:
            tasks.spawn(wait_forever(log, "there"))

        other.call(spawn_there())
        tasks.spawn(wait_forever(log, "here"))
        await asyncio.sleep(0)
        await asyncio.gather(*tasks.cancel_here(), return_exceptions=True)
        await asyncio.sleep(0.05)
        assert log == [f"here cancelled in {threading.current_thread().name}"]
        await tasks.aclose()
        for _ in range(100):
            if len(log) == 2:
                break
            await asyncio.sleep(0.01)
        assert log[1] == f"there cancelled in {other.thread.name}"
    finally:
        other.close()

"""layers/binding.py: where an encrypted message may be delivered."""

from __future__ import annotations

import asyncio

import pytest

from layers.binding import Binding
from layers.codec import CHANNEL, GROUP
from layers.exceptions import ChannelLayerClosed, ChannelLayerConnectionError


class Members:
    """A backend's member lists, counting reads; a read can be held up."""

    def __init__(self, **groups: list[str]) -> None:
        self.groups = groups
        self.reads = 0
        self.gate = asyncio.Event()
        self.gate.set()

    async def __call__(self, group: str) -> list[str]:
        self.reads += 1
        await self.gate.wait()
        return self.groups.get(group, [])


def unknown(group: str, channel: str, payload: bytes) -> bool | None:
    return None


async def test_a_channel_message_is_delivered_on_its_channel_only() -> None:
    binding = Binding(Members(), unknown)
    assert await binding.check((CHANNEL, "payments"), "payments", b"")
    assert not await binding.check((CHANNEL, "payments"), "audit", b"")
    assert await binding.check((CHANNEL, "p.x!a"), "p.x!", b"")  # receive("p.x!")
    assert not await binding.check((CHANNEL, "p.y!a"), "p.x!", b"")
    assert not await binding.check(("", ""), "payments", b"")  # sealed for nowhere


async def test_a_group_message_needs_membership_and_one_read_serves_a_while() -> None:
    members = Members(room=["a", "p.x!b"])
    binding = Binding(members, unknown)
    assert await binding.check((GROUP, "room"), "a", b"")
    assert await binding.check((GROUP, "room"), "p.x!b", b"")
    assert await binding.check((GROUP, "room"), "p.x!", b"")
    assert members.reads == 1
    # 'Not a member' is always asked again: the channel may have just joined.
    assert not await binding.check((GROUP, "room"), "c", b"")
    members.groups["room"].append("c")
    assert await binding.check((GROUP, "room"), "c", b"")
    assert members.reads == 3
    binding.forget()
    assert binding.known((GROUP, "room"), "a", b"") is None


async def test_what_the_process_knows_itself_needs_no_read() -> None:
    members = Members()
    binding = Binding(members, lambda group, channel, payload: channel == "mine")
    assert await binding.check((GROUP, "room"), "mine", b"")
    assert not await binding.check((GROUP, "room"), "other", b"")
    assert members.reads == 0


@pytest.mark.parametrize("member", [True, False])
async def test_a_receive_cancelled_during_the_read_does_not_lose_the_message(
    member: bool,
) -> None:
    members = Members(room=["a"] if member else [])
    members.gate.clear()
    binding = Binding(members, unknown)
    checking = asyncio.ensure_future(binding.check((GROUP, "room"), "a", b""))
    await asyncio.sleep(0.01)
    checking.cancel()
    await asyncio.sleep(0.01)
    members.gate.set()
    async with asyncio.timeout(5):
        if member:  # the message is the receiver's: it gets it
            assert await checking
        else:
            with pytest.raises(asyncio.CancelledError):
                await checking


class Flaky(Members):
    """Member lists whose first reads fail, as during a passing outage."""

    def __init__(self, failures: int, **groups: list[str]) -> None:
        super().__init__(**groups)
        self.failures = failures

    async def __call__(self, group: str) -> list[str]:
        if self.failures:
            self.failures -= 1
            self.reads += 1
            raise ChannelLayerConnectionError("the backend did not answer")
        return await super().__call__(group)


async def test_a_member_list_that_fails_to_read_is_read_again_before_the_message_goes() -> None:
    members = Flaky(2, room=["a"])
    assert await Binding(members, unknown).check((GROUP, "room"), "a", b"")
    assert members.reads == 3


async def test_a_member_list_that_cannot_be_read_drops_the_message_with_an_error_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    members = Flaky(100, room=["a"])
    assert not await Binding(members, unknown).check((GROUP, "room"), "a", b"")
    assert members.reads == 4
    assert "its members could not be read" in caplog.text


async def test_a_closed_layer_is_not_retried() -> None:
    async def closed(group: str) -> list[str]:
        raise ChannelLayerClosed("closed")

    with pytest.raises(ChannelLayerClosed):
        await Binding(closed, unknown).check((GROUP, "room"), "a", b"")

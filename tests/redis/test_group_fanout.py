"""Group fan-out per process inbox (issue 15 item 1) and the capacity rule of group
deliveries (issue 14 part 3): one entry per inbox that has members, nothing counted in
Redis per member, membership changes by any process effective before they return."""

from __future__ import annotations

import asyncio
import json
import secrets
import subprocess
import sys

import pytest

from layers.exceptions import ChannelFull, ChannelLayerError
from layers.naming import new_local_name
from layers.redis import RedisChannelLayer
from tests.helpers import WAIT, msg, nothing, recv
from tests.redis.test_own_channels import depth, pair
from tests.redis.test_wire import calls
from tests.redis_procs import RedisProcess


async def test_a_group_send_is_one_entry_per_inbox_and_no_count(own_redis: RedisProcess) -> None:
    owner, sender = pair(own_redis)
    # Named, not made with new_channel(): the owner's reader starts only at its first
    # receive below, so no pop of its own mixes into the commands counted here.
    members = [new_local_name("specific", owner.client_id) for _ in range(200)]
    for channel in members:
        await sender.group_add("room", channel)
    await sender.group_add("room", "named.member")
    own_redis.command("CONFIG", "RESETSTAT")
    await sender.group_send("room", msg(1))
    seen = calls(own_redis)
    # One push for the inbox and one for the normal channel: not one per member. The
    # only HINCRBYs are the deployment's counters (issue 18), each by n: the group_send
    # in members.lua, the 201 members reached in group_send.lua.
    assert seen.get("rpush") == 2, seen
    assert seen.get("hincrby") == 2, seen
    assert "hget" not in seen, seen
    assert [(await recv(owner, c))["seq"] for c in members] == [1] * 200
    assert (await recv(owner, "named.member"))["seq"] == 1
    assert sender.stats()["sent"] == 201
    # Receiving released no depth counts (none was taken); the owner's deliveries
    # reach the counters with a few of its script calls, never one per member.
    assert await depth(own_redis, owner, members[0], {}) == {}
    assert calls(own_redis)["hincrby"] < 20, calls(own_redis)
    await owner.close()
    await sender.close()


async def test_a_group_send_to_own_channels_counts_nothing_in_redis(
    own_redis: RedisProcess,
) -> None:
    layer, _ = pair(own_redis)
    mine = [await layer.new_channel() for _ in range(50)]
    for channel in mine:
        await layer.group_add("room", channel)
    await layer.send(mine[0], msg(-1))  # starts the reader
    assert (await recv(layer, mine[0]))["seq"] == -1
    await asyncio.sleep(0.1)
    own_redis.command("CONFIG", "RESETSTAT")
    for i in range(5):
        await layer.group_send("room", msg(i))
    for channel in mine:
        assert [(await recv(layer, channel))["seq"] for _ in range(5)] == list(range(5))
    await asyncio.sleep(0.1)
    seen = calls(own_redis)
    assert "rpush" not in seen, seen
    # Only the deployment's counters (issue 18): each group_send in members.lua, and
    # what the process carries or adds of its own deliveries, never one per member.
    assert seen.get("hincrby", 0) < 20, seen
    assert await depth(own_redis, layer, mine[0], {}) == {}
    await layer.close()


@pytest.mark.parametrize("own", [False, True], ids=["other-process", "own-channel"])
async def test_group_messages_are_capped_and_counted_by_the_receiving_process(
    own_redis: RedisProcess, own: bool
) -> None:
    owner, other = pair(own_redis, capacity=2)
    sender = owner if own else other
    channel = await owner.new_channel()
    await sender.group_add("g", channel)
    for i in range(3):
        await sender.group_send("g", msg(i))
    # The owner's buffer takes two; another sender handed all three over.
    async with asyncio.timeout(WAIT):
        while owner.stats()["dropped_full"] < 1:
            await asyncio.sleep(0.01)
    assert owner.stats()["dropped_full"] == 1
    if not own:
        assert other.stats()["dropped_full"] == 0
        # Direct sends are counted in Redis apart from group messages: two fit, the
        # third is refused at the sender.
        await other.send(channel, msg(10))
        await other.send(channel, msg(11))
        with pytest.raises(ChannelFull):
            await other.send(channel, msg(12))
    expected = [0, 1] if own else [0, 1, 10, 11]
    assert [(await recv(owner, channel))["seq"] for _ in expected] == expected
    await nothing(owner, channel)
    # Every direct count was released, and the group ones never counted.
    assert await depth(own_redis, owner, channel, {}) == {}
    await other.send(channel, msg(13))
    assert (await recv(owner, channel))["seq"] == 13
    await owner.close()
    await other.close()


async def test_lapsed_members_get_nothing_and_are_not_listed(own_redis: RedisProcess) -> None:
    prefix = f"t{secrets.token_hex(4)}"
    owner = RedisChannelLayer(hosts=[own_redis.url], prefix=prefix)
    brief = RedisChannelLayer(hosts=[own_redis.url], prefix=prefix, group_expiry=0.3)
    lasting = RedisChannelLayer(hosts=[own_redis.url], prefix=prefix)
    lapsing, staying = await owner.new_channel(), await owner.new_channel()
    # Two members of one inbox: one membership lapses, the other does not.
    await brief.group_add("g", lapsing)
    await brief.group_add("g", "lapsing.normal")
    await lasting.group_add("g", staying)
    await lasting.group_send("g", msg(1))
    assert (await recv(owner, lapsing))["seq"] == 1
    assert (await recv(owner, "lapsing.normal"))["seq"] == 1
    await asyncio.sleep(0.4)
    assert await lasting.group_channels("g") == [staying]
    await lasting.group_send("g", msg(2))
    assert [(await recv(owner, staying))["seq"] for _ in range(2)] == [1, 2]
    await nothing(owner, lapsing)
    await nothing(owner, "lapsing.normal")
    # Renewed, a lapsed member is a member again.
    await lasting.group_add("g", lapsing)
    await lasting.group_send("g", msg(3))
    assert (await recv(owner, lapsing))["seq"] == 3
    for layer in (owner, brief, lasting):
        await layer.close()


class Member:
    """Another OS process receiving on a new_channel() of its own."""

    def __init__(self, url: str, prefix: str) -> None:
        args = [sys.executable, "-m", "tests.redis.receiver_process", url, prefix, "new"]
        self.proc = subprocess.Popen(
            args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        assert self.proc.stdout is not None
        self.channel = str(json.loads(self.proc.stdout.readline())["channel"])
        assert json.loads(self.proc.stdout.readline()) == {"ready": True}

    def seqs(self) -> list[int]:
        out, err = self.proc.communicate(timeout=30)
        assert self.proc.returncode == 0, err
        return [json.loads(line)["seq"] for line in out.splitlines()]

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate(timeout=10)


async def test_a_discard_by_another_process_stops_delivery(own_redis: RedisProcess) -> None:
    prefix = f"t{secrets.token_hex(4)}"
    member = Member(own_redis.url, prefix)
    try:
        async with (
            RedisChannelLayer(hosts=[own_redis.url], prefix=prefix) as adder,
            RedisChannelLayer(hosts=[own_redis.url], prefix=prefix) as sender,
        ):
            kept = await sender.new_channel()
            await adder.group_add("g", member.channel)
            await adder.group_add("g", kept)
            await sender.group_send("g", msg(1))
            await adder.group_discard("g", member.channel)
            # Effective on the server when group_discard returned: the next group_send
            # reaches the other members only.
            assert await sender.group_channels("g") == [kept]
            await sender.group_send("g", msg(2))
            # The stop queues behind anything sent to the member before it.
            await sender.send(member.channel, {"type": "stop"})
            assert [(await recv(sender, kept))["seq"] for _ in range(2)] == [1, 2]
        assert await asyncio.to_thread(member.seqs) == [1]
    finally:
        member.kill()


async def test_a_group_key_of_an_older_format_is_a_clear_error(own_redis: RedisProcess) -> None:
    layer, _ = pair(own_redis)
    own_redis.command("ZADD", layer.keys.group("old"), "1", "some.channel")
    with pytest.raises(ChannelLayerError, match="WRONGTYPE"):
        await layer.group_send("old", msg(1))
    await layer.close()

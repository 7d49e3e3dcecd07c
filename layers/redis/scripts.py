"""The Lua scripts in scripts/*.lua, loaded once per server and run with EVALSHA."""

from __future__ import annotations

import hashlib
from importlib import resources
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from .multiplex import Multiplexed

__all__ = [
    "ACK",
    "COUNT",
    "FETCH",
    "GROUP_ADD",
    "GROUP_DISCARD",
    "GROUP_SEND",
    "MEMBERS",
    "POP",
    "REQUEUE",
    "SEND",
    "SOURCES",
    "Script",
]


def _source(name: str) -> str:
    return resources.files(__package__).joinpath(f"scripts/{name}.lua").read_text()


class Script:
    """One Lua script; EVALSHA, loading it on the first NOSCRIPT.

    counting: the script adds to the counters hash, its last KEY, with the functions
    of scripts/counting.lua, which are put before its own source (Lua has no include).
    """

    def __init__(self, name: str, *, counting: bool = False) -> None:
        self.name = name
        self.source = (_source("counting") if counting else "") + _source(name)
        self.sha = hashlib.sha1(self.source.encode()).hexdigest()

    async def __call__(
        self,
        client: Redis | RedisCluster | Multiplexed,
        keys: list[str],
        args: list[Any],
        *,
        finish: bool = False,
    ) -> Any:
        """Run the script on client; finish: a cancelled caller still gets the reply
        (only a Multiplexed can: redis-py drops the connection of a cancelled command)."""
        try:
            return await self._run(client, keys, args, finish)
        except NoScriptError:
            await client.script_load(self.source)
            return await self._run(client, keys, args, finish)

    async def _run(
        self,
        client: Redis | RedisCluster | Multiplexed,
        keys: list[str],
        args: list[Any],
        finish: bool,
    ) -> Any:
        if isinstance(client, Multiplexed):
            return await client.evalsha(self.sha, len(keys), *keys, *args, finish=finish)
        return await client.evalsha(self.sha, len(keys), *keys, *args)

    async def many(
        self, client: Redis | RedisCluster | Multiplexed, calls: list[tuple[list[str], list[Any]]]
    ) -> list[Any]:
        """Run the script once per (keys, args), in order, pipelined where the client
        can; per call its reply or its RedisError. After a connection error, the calls
        not answered yet get it too (they are never run out of order)."""
        replies = await self._many(client, calls)
        missing = [i for i, reply in enumerate(replies) if isinstance(reply, NoScriptError)]
        if missing:
            # Only a script flush on the server gets here; each of these calls failed
            # without running, and they run again in their order.
            await client.script_load(self.source)
            again = await self._many(client, [calls[i] for i in missing])
            for i, reply in zip(missing, again, strict=True):
                replies[i] = reply
        return replies

    async def _many(
        self, client: Redis | RedisCluster | Multiplexed, calls: list[tuple[list[str], list[Any]]]
    ) -> list[Any]:
        if isinstance(client, Multiplexed):
            return await client.execute_many(
                [("EVALSHA", self.sha, len(keys), *keys, *args) for keys, args in calls]
            )
        if isinstance(client, Redis):
            pipe = client.pipeline(transaction=False)
            for keys, args in calls:
                pipe.evalsha(self.sha, len(keys), *keys, *args)
            try:
                return list(await pipe.execute(raise_on_error=False))
            except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
                return [exc] * len(calls)
        # A cluster client may send concurrent commands over different connections:
        # one at a time keeps the order.
        replies: list[Any] = []
        for keys, args in calls:
            try:
                replies.append(await client.evalsha(self.sha, len(keys), *keys, *args))
            except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
                replies += [exc] * (len(calls) - len(replies))
                break
            except RedisError as exc:
                replies.append(exc)
        return replies


SEND = Script("send")
GROUP_SEND = Script("group_send")
POP = Script("pop", counting=True)
ACK = Script("ack", counting=True)
GROUP_ADD = Script("group_add")
GROUP_DISCARD = Script("group_discard")
MEMBERS = Script("members")
REQUEUE = Script("requeue", counting=True)
FETCH = Script("fetch", counting=True)
COUNT = Script("count", counting=True)
SOURCES = [
    s.source
    for s in (SEND, GROUP_SEND, POP, ACK, GROUP_ADD, GROUP_DISCARD, MEMBERS, REQUEUE, FETCH, COUNT)
]
"""Every script, for a connection to load up front."""

"""The Lua scripts in scripts/*.lua, loaded once per server and run with EVALSHA."""

from __future__ import annotations

import hashlib
from importlib import resources
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import NoScriptError

from .multiplex import Multiplexed

__all__ = [
    "ACK",
    "GROUP_ADD",
    "GROUP_SEND",
    "MEMBERS",
    "POP",
    "REQUEUE",
    "SEND",
    "SOURCES",
    "Script",
]


class Script:
    """One Lua script; EVALSHA, loading it on the first NOSCRIPT."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.source = resources.files(__package__).joinpath(f"scripts/{name}.lua").read_text()
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


SEND = Script("send")
GROUP_SEND = Script("group_send")
POP = Script("pop")
ACK = Script("ack")
GROUP_ADD = Script("group_add")
MEMBERS = Script("members")
REQUEUE = Script("requeue")
SOURCES = [s.source for s in (SEND, GROUP_SEND, POP, ACK, GROUP_ADD, MEMBERS, REQUEUE)]
"""Every script, for a connection to load up front."""

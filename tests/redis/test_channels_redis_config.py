"""channels_redis's CONFIG dicts work unchanged: its options are accepted, with their
meaning where they have one here, else with a warning that says why they have none."""

from __future__ import annotations

import asyncio
import warnings
from pathlib import Path

import pytest

from layers.exceptions import ChannelLayerConnectionError
from layers.redis import RedisChannelLayer
from tests.helpers import msg
from tests.redis_procs import RedisProcess


async def test_channels_redis_core_options_are_accepted(redis_url: str) -> None:
    config = {
        "hosts": [redis_url],
        "prefix": "tcrcfg",
        "expiry": 30,
        "group_expiry": 600,
        "capacity": 50,
        "channel_capacity": {"http.*": 10},
        "symmetric_encryption_keys": ["a-secret-that-is-long-enough"],
        "serializer_format": "msgpack",
    }
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # msgpack is what happens anyway: no warning
        layer = RedisChannelLayer(**config)
    try:
        channel = await layer.new_channel()
        await layer.send(channel, msg(1))
        assert (await layer.receive(channel))["seq"] == 1
    finally:
        await layer.flush()
        await layer.close()


@pytest.mark.parametrize(
    ("option", "value", "why"),
    [
        ("random_prefix_length", 12, "process's fixed random id"),
        ("serializer_format", "json", "always msgpack"),
    ],
)
async def test_options_without_meaning_here_warn_why(
    redis_url: str, option: str, value: object, why: str
) -> None:
    with pytest.warns(UserWarning, match=f"{option}={value!r} has no effect here: .*{why}"):
        layer = RedisChannelLayer(hosts=[redis_url], **{option: value})
    await layer.close()


def test_close_pools_between_event_loops_as_channels_redis_users_write_it(
    redis_url: str,
) -> None:
    # channels_redis's own test_double_receive: send and close_pools() in one
    # async_to_sync call, then receive in other loops.
    from asgiref.sync import async_to_sync

    layer = RedisChannelLayer(hosts=[redis_url], prefix="tcrpools")

    async def send_and_close(channel: str) -> None:
        await layer.send(channel, msg(1))
        await layer.close_pools()
        await layer.wait_received()

    async def receive_and_close(channel: str) -> int:
        got = await layer.receive(channel)
        await layer.close_pools()
        return int(got["seq"])

    try:
        channel = async_to_sync(layer.new_channel)()
        async_to_sync(send_and_close)(channel)
        assert async_to_sync(receive_and_close)(channel) == 1
    finally:
        async_to_sync(layer.flush)()
        async_to_sync(layer.close)()


async def test_a_unix_socket_url_serves_the_layer(tmp_path: Path) -> None:
    # Its connections are not TCP streams: the scripts run on redis-py's own path.
    sock = tmp_path / "redis.sock"
    with RedisProcess(["--unixsocket", str(sock), "--unixsocketperm", "700"], name="unix"):
        for _ in range(100):
            if sock.exists():
                break
            await asyncio.sleep(0.05)
        layer = RedisChannelLayer(hosts=[f"unix://{sock}?db=0"], prefix="tunix")
        try:
            channel = await layer.new_channel()
            await layer.send(channel, msg(1))
            await layer.send("normal", msg(2))
            assert (await layer.receive(channel))["seq"] == 1
            assert (await layer.receive("normal"))["seq"] == 2
        finally:
            await layer.flush()
            await layer.close()


async def test_a_server_that_is_not_redis_is_a_clear_connection_error() -> None:
    async def http(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(100)
        writer.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(http, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    layer = RedisChannelLayer(hosts=[f"redis://127.0.0.1:{port}/0"], prefix="tnotredis")
    try:
        with pytest.raises(ChannelLayerConnectionError, match="did not answer as a Redis server"):
            await layer.send("x", msg(1))
    finally:
        await layer.close()
        server.close()
        await server.wait_closed()

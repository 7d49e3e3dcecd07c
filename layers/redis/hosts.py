"""The `hosts` option, as channels_redis users write it, turned into client factories."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

from redis.asyncio import ConnectionPool, Redis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.sentinel import Sentinel

from ..exceptions import ConfigError

__all__ = ["ClientFactory", "Shard", "parse_hosts"]

Client = Redis | RedisCluster
ClientFactory = Callable[[Mapping[str, Any]], tuple[Client, list[Client]]]
"""Makes a client from connection options (timeouts); also returns the helper clients
(Sentinel's) that must be closed with it."""


@dataclass(frozen=True)
class Shard:
    """One entry of `hosts`: its identity on the hash ring and how to connect to it."""

    ident: str
    connect: ClientFactory
    cluster: bool = False


def _url_shard(url: str, extra: Mapping[str, Any], cluster: bool) -> Shard:
    scheme = urlsplit(url).scheme
    if scheme == "redis+sentinel":
        return _sentinel_url_shard(url, extra)
    if scheme == "redis+cluster":
        url, cluster = "redis" + url[len("redis+cluster") :], True
    elif scheme not in ("redis", "rediss", "unix"):
        raise ConfigError(
            f"hosts entry {url!r}: scheme must be redis://, rediss://, unix://, "
            "redis+sentinel:// or redis+cluster://"
        )
    if cluster:
        return Shard(url, lambda conn: (RedisCluster.from_url(url, **{**conn, **extra}), []), True)
    return Shard(
        url,
        lambda conn: (Redis(connection_pool=ConnectionPool.from_url(url, **{**conn, **extra})), []),
    )


def _sentinel_url_shard(url: str, extra: Mapping[str, Any]) -> Shard:
    # redis+sentinel://host:26379,host2:26379/master_name[/db]
    parts = urlsplit(url)
    sentinels = []
    for hostport in parts.netloc.rpartition("@")[2].split(","):
        host, _, port = hostport.rpartition(":")
        if not host or not port.isdigit():
            raise ConfigError(f"hosts entry {url!r}: sentinel {hostport!r} must be host:port")
        sentinels.append((host, int(port)))
    path = [p for p in parts.path.split("/") if p]
    if not path:
        raise ConfigError(f"hosts entry {url!r}: the path must name the master, e.g. /mymaster")
    options: dict[str, Any] = dict(extra)
    if len(path) > 1:
        options["db"] = int(path[1])
    if parts.password:
        options["password"] = unquote(parts.password)
    return _sentinel_shard({"sentinels": sentinels, "master_name": path[0], **options}, ident=url)


def _sentinel_shard(entry: Mapping[str, Any], ident: str | None = None) -> Shard:
    options = dict(entry)
    sentinels = [tuple(s) for s in options.pop("sentinels")]
    master = options.pop("master_name", None)
    if not isinstance(master, str) or not master:
        raise ConfigError(f"hosts entry {dict(entry)!r}: a sentinel entry needs master_name")
    sentinel_kwargs = options.pop("sentinel_kwargs", None)

    def connect(conn: Mapping[str, Any]) -> tuple[Client, list[Client]]:
        manager = Sentinel(  # type: ignore[no-untyped-call]
            sentinels, sentinel_kwargs=sentinel_kwargs, **{**conn, **options}
        )
        client: Redis = manager.master_for(master, **{**conn, **options})
        return client, list(manager.sentinels)

    return Shard(ident or f"sentinel:{master}@{sentinels}", connect)


def _entry_shard(entry: object, cluster: bool) -> Shard:
    if isinstance(entry, str):
        return _url_shard(entry, {}, cluster)
    if isinstance(entry, tuple | list) and len(entry) == 2:
        host, port = entry
        return _url_shard(f"redis://{host}:{int(port)}", {}, cluster)
    if isinstance(entry, Mapping):
        if "sentinels" in entry:
            return _sentinel_shard(entry)
        options = dict(entry)
        address = options.pop("address", None)
        if isinstance(address, str):
            return _url_shard(address, options, cluster)
        if isinstance(address, tuple | list) and len(address) == 2:
            return _url_shard(f"redis://{address[0]}:{int(address[1])}", options, cluster)
        if "host" in options:
            host, port = options.pop("host"), options.pop("port", 6379)
            return _url_shard(f"redis://{host}:{int(port)}", options, cluster)
    raise ConfigError(
        f"hosts entry {entry!r} must be a URL, a (host, port) pair, or a dict with "
        "'address' (plus redis-py pool options) or with 'sentinels' and 'master_name'"
    )


def parse_hosts(hosts: object, cluster: bool = False) -> list[Shard]:
    """Every hosts entry as a Shard; a cluster counts as one shard."""
    if hosts is None:
        hosts = ["redis://localhost:6379"]
    elif isinstance(hosts, str | Mapping):
        hosts = [hosts]
    if not isinstance(hosts, Sequence) or not hosts:
        raise ConfigError(f"hosts must be a non-empty list of Redis servers, got {hosts!r}")
    shards = [_entry_shard(entry, cluster) for entry in hosts]
    if any(s.cluster for s in shards) and len(shards) > 1:
        raise ConfigError("a Redis Cluster shards keys itself: give exactly one hosts entry")
    idents = [s.ident for s in shards]
    if len(set(idents)) != len(idents):
        raise ConfigError(f"hosts lists the same server twice: {idents}")
    return shards

"""The `hosts` option, as channels_redis users write it, turned into client factories.

A shard's place on the hash ring is its identity without credentials: host:port/db
(a Unix socket's path and db; for Sentinel the master name and db, whichever sentinels
are listed), or the entry's explicit ``name``. Rotating a password or adding a
sentinel therefore moves no key. Its display name, used in errors and logs, is its
URL with the password masked.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar
from urllib.parse import unquote, urlsplit

from redis._parsers.commands import AsyncCommandsParser
from redis.asyncio import ConnectionPool, Redis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.sentinel import Sentinel

from ..exceptions import ConfigError
from ..redact import redact_options, redact_url

__all__ = ["ClientFactory", "Shard", "parse_hosts"]

Client = Redis | RedisCluster
ClientFactory = Callable[[Mapping[str, Any]], tuple[Client, list[Client]]]
"""Makes a client from connection options (timeouts); also returns the helper clients
(Sentinel's) that must be closed with it."""


@dataclass(frozen=True)
class Shard:
    """One entry of `hosts`: its identity on the hash ring, its name for people (no
    password), and how to connect to it."""

    ident: str
    name: str
    connect: ClientFactory
    cluster: bool = False


def _url_ident(url: str, extra: Mapping[str, Any]) -> str:
    """host:port/db of a redis://, rediss:// or unix:// URL (a socket's path for host)."""
    parts = urlsplit(url)
    query = dict(p.partition("=")[::2] for p in parts.query.split("&") if p)
    db = extra.get("db", query.get("db", parts.path.strip("/") if parts.scheme != "unix" else 0))
    if parts.scheme == "unix":
        return f"unix:{parts.path}/{int(db or 0)}"
    try:
        port = parts.port or 6379
    except ValueError:
        raise ConfigError(f"hosts entry {redact_url(url)!r}: its port is not a number") from None
    try:
        return f"{parts.hostname or 'localhost'}:{port}/{int(db or 0)}"
    except ValueError:
        raise ConfigError(f"hosts entry {redact_url(url)!r}: its db must be a number") from None


def _check_tls(url: str, extra: Mapping[str, Any]) -> None:
    """Refuse TLS options on a plaintext URL: redis-py would ignore or choke on them."""
    tls = sorted(k for k in extra if k.startswith("ssl"))
    if tls and not url.startswith("rediss://"):
        raise ConfigError(
            f"hosts entry {redact_url(url)!r} is plaintext but has TLS options {tls}: "
            "use a rediss:// URL for TLS"
        )


class _KnownCommands(AsyncCommandsParser):
    """A cluster client's table of commands, fetched once per cluster and process.

    redis-py fetches it (COMMAND: about 250 KB to parse, 50-100 ms) whenever a cluster
    client initializes, and each event loop has clients of its own: an async_to_sync
    call, a new loop each time, spent most of its time there. A refresh (redis-py's,
    for a command it does not know) fetches anew, for every client after it.
    """

    __slots__ = ("_cluster",)
    _tables: ClassVar[dict[str, dict[str, Any]]] = {}

    def __init__(self, cluster: str) -> None:
        super().__init__()
        self._cluster = cluster

    async def initialize(self, node: ClusterNode | None = None) -> None:
        """Use the table fetched before for this cluster, if any; else fetch it."""
        table = self._tables.get(self._cluster)
        if node is not None and table is not None:
            self.node = node
            self.commands = table
            return
        await super().initialize(node)
        self._tables[self._cluster] = self.commands


def _url_shard(url: str, extra: Mapping[str, Any], cluster: bool) -> Shard:
    scheme = urlsplit(url).scheme
    extra = dict(extra)
    name = extra.pop("name", None)
    if name is not None and (not isinstance(name, str) or not name):
        raise ConfigError(f"a hosts entry's name must be a non-empty str, got {name!r}")
    if scheme == "redis+sentinel":
        return _sentinel_url_shard(url, extra, name)
    if scheme == "redis+cluster":
        url, cluster = "redis" + url[len("redis+cluster") :], True
    elif scheme not in ("redis", "rediss", "unix"):
        raise ConfigError(
            f"hosts entry {redact_url(url)!r}: scheme must be redis://, rediss://, unix://, "
            "redis+sentinel:// or redis+cluster://"
        )
    _check_tls(url, extra)
    ident = name or _url_ident(url, extra)
    if cluster:

        def connect(conn: Mapping[str, Any]) -> tuple[Client, list[Client]]:
            client = RedisCluster.from_url(url, **{**conn, **extra})
            client.commands_parser = _KnownCommands(url)
            return client, []

        return Shard(ident, redact_url(url), connect, True)
    return Shard(
        ident,
        redact_url(url),
        lambda conn: (Redis(connection_pool=ConnectionPool.from_url(url, **{**conn, **extra})), []),
    )


def _sentinel_url_shard(url: str, extra: Mapping[str, Any], name: str | None) -> Shard:
    # redis+sentinel://host:26379,host2:26379/master_name[/db]
    parts = urlsplit(url)
    sentinels = []
    for hostport in parts.netloc.rpartition("@")[2].split(","):
        host, _, port = hostport.rpartition(":")
        if not host or not port.isdigit():
            raise ConfigError(
                f"hosts entry {redact_url(url)!r}: sentinel {hostport!r} must be host:port"
            )
        sentinels.append((host, int(port)))
    path = [p for p in parts.path.split("/") if p]
    if not path:
        raise ConfigError(
            f"hosts entry {redact_url(url)!r}: the path must name the master, e.g. /mymaster"
        )
    options: dict[str, Any] = dict(extra)
    if len(path) > 1:
        options["db"] = int(path[1])
    if parts.password:
        options["password"] = unquote(parts.password)
    entry = {"sentinels": sentinels, "master_name": path[0], **options}
    if name is not None:
        entry["name"] = name
    return _sentinel_shard(entry, shown=redact_url(url))


def _sentinel_shard(entry: Mapping[str, Any], shown: str | None = None) -> Shard:
    options = dict(entry)
    sentinels = [tuple(s) for s in options.pop("sentinels")]
    master = options.pop("master_name", None)
    name = options.pop("name", None)
    if not isinstance(master, str) or not master:
        raise ConfigError(
            f"hosts entry {redact_options(dict(entry))!r}: a sentinel entry needs master_name"
        )
    if not options.get("ssl") and any(k.startswith("ssl_") for k in options):
        raise ConfigError(
            f"hosts entry for Sentinel master {master!r} has TLS options without ssl=True: "
            "its connections would be plaintext"
        )
    sentinel_kwargs = options.pop("sentinel_kwargs", None)
    try:
        db = int(options.get("db") or 0)
    except (TypeError, ValueError):
        raise ConfigError(
            f"hosts entry for Sentinel master {master!r}: db must be a number"
        ) from None
    ident = name if isinstance(name, str) and name else f"sentinel:{master}/{db}"

    def connect(conn: Mapping[str, Any]) -> tuple[Client, list[Client]]:
        manager = Sentinel(  # type: ignore[no-untyped-call,unused-ignore]
            sentinels, sentinel_kwargs=sentinel_kwargs, **{**conn, **options}
        )
        client: Redis = manager.master_for(master, **{**conn, **options})
        return client, list(manager.sentinels)

    return Shard(ident, shown or f"sentinel master {master} (sentinels {sentinels})", connect)


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
        f"hosts entry {redact_options(entry)!r} must be a URL, a (host, port) pair, or a dict "
        "with 'address' (plus redis-py pool options, and optionally its ring 'name') or "
        "with 'sentinels' and 'master_name'"
    )


def parse_hosts(hosts: object, cluster: bool = False) -> list[Shard]:
    """Every hosts entry as a Shard; a cluster counts as one shard."""
    if hosts is None:
        hosts = ["redis://localhost:6379"]
    elif isinstance(hosts, str | Mapping):
        hosts = [hosts]
    if not isinstance(hosts, Sequence) or not hosts:
        raise ConfigError(
            f"hosts must be a non-empty list of Redis servers, got {redact_options(hosts)!r}"
        )
    shards = [_entry_shard(entry, cluster) for entry in hosts]
    if any(s.cluster for s in shards) and len(shards) > 1:
        raise ConfigError("a Redis Cluster shards keys itself: give exactly one hosts entry")
    idents = [s.ident for s in shards]
    if len(set(idents)) != len(idents):
        raise ConfigError(
            f"hosts lists the same server twice: {idents} (a shard is known by host:port/db, "
            "a Sentinel master by name and db, or by the entry's 'name')"
        )
    return shards

"""The owned-server helpers themselves: processes, shards, Sentinel, Cluster."""

from __future__ import annotations

import socket
import uuid

import pytest
import redis
from redis.cluster import RedisCluster as ClusterClient
from redis.sentinel import Sentinel

from tests.redis_procs import (
    HOST,
    RedisCluster,
    RedisProcess,
    RedisProcessError,
    RedisSentinel,
    command,
)


def _refuses(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=1.0):
            return False
    except ConnectionRefusedError:
        return True


def _key() -> str:
    return f"chanlayers-test-procs-{uuid.uuid4().hex}"


# --- RedisProcess ---------------------------------------------------------------------


def test_process_starts_and_answers(own_redis: RedisProcess) -> None:
    assert own_redis.running()
    assert own_redis.url == f"redis://127.0.0.1:{own_redis.port}/0"
    assert own_redis.answers()
    with redis.Redis.from_url(own_redis.url) as client:
        assert client.set("k", "v")
        assert client.get("k") == b"v"
        assert client.config_get("save") == {"save": ""}
        assert client.config_get("appendonly") == {"appendonly": "no"}


def test_kill_refuses_connections_and_restart_uses_the_same_port(own_redis: RedisProcess) -> None:
    port, pid = own_redis.port, own_redis.pid
    own_redis.command("SET", "k", "v")
    own_redis.kill()
    assert not own_redis.running()
    assert _refuses(port)
    assert not own_redis.answers()

    own_redis.restart()
    assert own_redis.port == port
    assert own_redis.pid != pid
    assert own_redis.answers()
    assert own_redis.command("GET", "k") is None  # no persistence: a crash loses data


def test_restart_of_a_running_server_replaces_it(own_redis: RedisProcess) -> None:
    pid = own_redis.pid
    own_redis.restart()
    assert own_redis.pid != pid
    assert own_redis.info("server")["process_id"] == str(own_redis.pid)


def test_stop_ends_the_process_and_removes_its_directory() -> None:
    with RedisProcess() as server:
        port, directory = server.port, server.dir
        assert directory.is_dir()
        assert server.answers()
    assert not server.running()
    assert not directory.exists()
    assert _refuses(port)
    with server.restart():  # usable again: same port, a new directory
        assert server.port == port
        assert server.answers()
    assert not server.running()


def test_a_server_that_cannot_start_fails_with_its_log() -> None:
    server = RedisProcess(["--no-such-option", "x"])
    with pytest.raises(RedisProcessError, match=r"(?s)exited with code.*Log tail:.*no-such-option"):
        server.start()
    assert not server.running()
    server.stop()


def test_restart_on_a_taken_port_fails_clearly(own_redis: RedisProcess) -> None:
    own_redis.kill()
    with socket.socket() as squatter:
        squatter.bind((HOST, own_redis.port))
        squatter.listen()
        with pytest.raises(RedisProcessError, match="cannot restart.*already in use"):
            own_redis.restart()
    assert not own_redis.running()
    own_redis.restart()  # free again
    assert own_redis.answers()


# --- shards ---------------------------------------------------------------------------


def test_shards_are_three_distinct_answering_servers(
    redis_shards: list[str], redis_url: str
) -> None:
    assert len(redis_shards) == 3
    assert redis_shards[0] == redis_url
    assert len(set(redis_shards)) == 3
    run_ids = set()
    for url in redis_shards:
        with redis.Redis.from_url(url) as client:
            assert client.ping()
            run_ids.add(client.info("server")["run_id"])
    assert len(run_ids) == 3


# --- Sentinel -------------------------------------------------------------------------


def test_sentinel_reports_the_owned_master(redis_sentinel: RedisSentinel) -> None:
    master = redis_sentinel.master
    assert master.port != 6379
    assert redis_sentinel.master_name == "mymaster"
    assert len(redis_sentinel.sentinels) == 1
    host, port = redis_sentinel.sentinels[0]
    reply = command(host, port, "SENTINEL", "GET-MASTER-ADDR-BY-NAME", "mymaster")
    assert reply == [HOST, str(master.port)]

    with Sentinel(redis_sentinel.sentinels, socket_timeout=2.0) as sentinel:
        assert sentinel.discover_master("mymaster") == (HOST, master.port)
        with sentinel.master_for("mymaster", socket_timeout=2.0) as client:
            key = _key()
            client.set(key, "v")
            assert client.get(key) == b"v"


def test_sentinel_replica_follows_the_master(redis_sentinel: RedisSentinel) -> None:
    replica = redis_sentinel.replica
    assert replica is not None
    replication = replica.info("replication")
    assert replication["role"] == "slave"
    assert replication["master_port"] == str(redis_sentinel.master.port)


def test_failover_switches_the_master() -> None:
    # Its own set-up, so the session's redis_sentinel keeps a stable master.
    with RedisSentinel() as setup:
        old, new = setup.master, setup.replica
        assert new is not None
        assert setup.failover() == (HOST, new.port)
        assert setup.master_addr() == (HOST, new.port)
        assert (setup.master, setup.replica) == (new, old)
        assert new.info("replication")["role"] == "master"
        assert old.info("replication")["role"] == "slave"
        with Sentinel(setup.sentinels, socket_timeout=2.0) as sentinel:
            assert sentinel.discover_master("mymaster") == (HOST, new.port)


# --- Cluster --------------------------------------------------------------------------


def test_cluster_is_ok_on_every_node(redis_cluster: RedisCluster) -> None:
    assert len(redis_cluster.nodes) == 3
    assert redis_cluster.url == f"redis://127.0.0.1:{redis_cluster.nodes[0][1]}"
    for host, port in redis_cluster.nodes:
        reply = command(host, port, "CLUSTER", "INFO")
        assert isinstance(reply, str)
        assert "cluster_state:ok" in reply


def test_cluster_client_sets_and_gets_keys_on_every_node(redis_cluster: RedisCluster) -> None:
    client = ClusterClient.from_url(redis_cluster.url, socket_timeout=2.0)
    try:
        by_node: dict[int, str] = {}
        for index in range(100):
            key = f"chanlayers-test-procs-{index}"
            node = client.get_node_from_key(key)
            by_node.setdefault(node.port, key)
            if len(by_node) == 3:
                break
        assert sorted(by_node) == sorted(port for _, port in redis_cluster.nodes)
        for port, key in by_node.items():
            assert client.set(key, str(port))
            assert client.get(key) == str(port).encode()
            # The key really lives on that node.
            assert command(HOST, port, "GET", key) == str(port)
    finally:
        client.close()

"""The owned RabbitMQ node (tests/rabbit_procs.py): its own identity, killed and revived."""

from __future__ import annotations

import os

from layers.rabbitmq import RabbitMQChannelLayer
from tests.helpers import msg, recv
from tests.rabbit_procs import shared_node


async def test_the_owned_node_is_not_the_shared_broker_and_survives_a_kill() -> None:
    node = shared_node()
    assert node.port != 5672
    assert node.nodename.startswith("chl-")
    assert str(node.dir) in node.env()["RABBITMQ_MNESIA_BASE"]
    pid, port = node.pid, node.port
    assert pid is not None
    node.kill()
    assert not node.running()
    assert not node.answers()
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        pass
    else:
        raise AssertionError(f"beam {pid} still exists after kill()")
    revived = shared_node()  # what the fault fixtures call: restarts a killed node
    assert revived is node
    assert node.port == port
    assert node.answers()
    layer = RabbitMQChannelLayer(url=node.url, prefix="owned")
    try:
        await layer.send("owned.normal", msg(1))
        assert (await recv(layer, "owned.normal"))["seq"] == 1
        assert node.connections() >= 1
    finally:
        await layer.flush()
        await layer.close()

"""The RabbitMQ family: our RabbitMQChannelLayer, channels_rabbitmq, and raw aio-pika.

All of them use one broker: $AMQP_URL, else amqp://guest:guest@127.0.0.1:5672/. Every run
gets its own prefix, and what a run leaves under it is deleted after the run (only names
under that prefix: the broker may be shared).

channels_rabbitmq pins pamqp<4 (through carehare) while aio-pika 10 wants pamqp>=4; pip
warns when both are installed, and both run here with pamqp 3.3 (see the README).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
from functools import partial
from typing import Any

from .model import Layer
from .targets import CAPACITY, EXPIRY, RELAY_NOTE, Family, Target, relayed

__all__ = ["amqp_url", "cleanup", "probe", "rabbitmq_targets"]

DEFAULT_URL = "amqp://guest:guest@127.0.0.1:5672/"
# channels_rabbitmq uses local_capacity as its AMQP prefetch count, a 16-bit field.
_MAX_PREFETCH = 65535
GROUPS = ("bench-fanout",)  # the group names the workloads use (bench.workloads.GROUP, W5)
OURS_NOTE = (
    "url, prefix, capacity and expiry only. A send to one of the layer's own process-local"
    " channels (W1, W2) goes straight to its local buffer; group_send (W3, W5) and normal"
    " channels (W4) go through the broker with a publisher confirm per publish"
)
PEER_NOTE = (
    "host=url, groups_exchange under the run's prefix, remote_capacity=CAPACITY,"
    " local_capacity=65535 (its prefetch count: AMQP allows no more);"
    " it refuses normal channels (no '!'), so W4 FAILs by design (its #11, #16, #27, #42)"
)
RAW_NOTE = (
    "ceiling: aio-pika alone, one queue, a publisher confirm awaited per publish (as a"
    " layer's send must), a consumer acking each message; W1 only"
)


def amqp_url() -> str:
    """The broker every RabbitMQ target uses."""
    return os.environ.get("AMQP_URL", DEFAULT_URL)


def probe() -> str:
    """'' if the broker accepts a connection, else why not."""
    try:
        import aiormq
    except ImportError as exc:
        return f"aiormq is not installed: {exc}"

    async def connect() -> None:
        connection = await aiormq.connect(amqp_url())
        await connection.close()

    try:
        asyncio.run(asyncio.wait_for(connect(), 5))
    except Exception as exc:
        return f"RabbitMQ at {amqp_url()} does not answer: {type(exc).__name__}: {exc}"
    return ""


def _names_under(prefix: str) -> tuple[list[str], list[str]]:
    """(queues, exchanges) whose names start with prefix: from rabbitmqctl where it is
    installed, else the names the workloads are known to use."""
    from layers.rabbitmq.topology import SEP, Topology

    ctl = shutil.which("rabbitmqctl")
    if ctl is None:
        ours = Topology(prefix, EXPIRY, EXPIRY)
        queues = [ours.registry_queue(g) for g in GROUPS]
        return queues, [ours.groups, ours.dead_letters, f"{prefix}.groups"]
    # Both at once: each rabbitmqctl starts an Erlang VM (about a second), and every
    # run of every RabbitMQ target cleans up after itself.
    listings = [
        subprocess.Popen(
            [ctl, "-q", what, "name"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
        )
        for what in ("list_queues", "list_exchanges")
    ]
    try:
        outs = [listing.communicate(timeout=30)[0] for listing in listings]
    finally:
        for listing in listings:
            if listing.poll() is None:
                listing.kill()
                listing.wait()
    # Ours join with SEP, channels_rabbitmq's with '.'.
    found = [[n for n in out.split() if n.startswith((prefix + SEP, prefix + "."))] for out in outs]
    return found[0], found[1]


def cleanup(prefix: str) -> int:
    """Delete every queue and exchange under prefix (a run's own); return how many."""
    import aiormq

    queues, exchanges = _names_under(prefix)

    async def delete() -> int:
        connection = await aiormq.connect(amqp_url())
        try:
            channel = await connection.channel()
            for queue in queues:
                await channel.queue_delete(queue)
            for exchange in exchanges:
                await channel.exchange_delete(exchange)
        finally:
            await connection.close()
        return len(queues) + len(exchanges)

    return asyncio.run(delete())


def _ours(cls: Any, prefix: str) -> Layer:
    layer: Layer = cls(url=amqp_url(), prefix=prefix, capacity=CAPACITY, expiry=EXPIRY)
    return layer


def _peer(cls: Any, prefix: str) -> Layer:
    layer: Layer = cls(
        host=amqp_url(),
        local_capacity=min(CAPACITY, _MAX_PREFETCH),
        remote_capacity=CAPACITY,
        expiry=EXPIRY,
        groups_exchange=f"{prefix}.groups",
    )
    return layer


def _raw() -> Target:
    runs, why = {}, ""
    try:
        from .raw_amqp import raw_amqp_p2p
    except ImportError as exc:
        why = f"aio-pika is not installed: {exc}"
    else:
        runs = {"W1": partial(raw_amqp_p2p, url=amqp_url())}
    return FAMILY.ceiling("aio-pika", "raw aio-pika client", "aio_pika", runs, why, RAW_NOTE)


FAMILY = Family("rabbitmq", probe, cleanup)
OURS_GOALS = {
    ("channels-rabbitmq", "W1", "rate"): 1.0,
    ("channels-rabbitmq", "W2", "p50"): 1.0,
    ("channels-rabbitmq", "W3 G=1000", "rate"): 1.0,
}


def rabbitmq_targets() -> list[Target]:
    """ours-rabbitmq, channels_rabbitmq, and the raw aio-pika ceiling."""
    return [
        FAMILY.layer(
            "ours-rabbitmq",
            "chanlayers RabbitMQChannelLayer",
            "ours",
            "layers.rabbitmq",
            "RabbitMQChannelLayer",
            _ours,
            goals=OURS_GOALS,
            note=OURS_NOTE,
        ),
        FAMILY.layer(
            "ours-rabbitmq-relay",
            "chanlayers RabbitMQChannelLayer, sending from a second layer",
            "ours",
            "layers.rabbitmq",
            "RabbitMQChannelLayer",
            relayed(_ours),
            capabilities=frozenset(),
            note=RELAY_NOTE,
        ),
        FAMILY.layer(
            "channels-rabbitmq",
            "channels_rabbitmq.core.RabbitmqChannelLayer",
            "peer",
            "channels_rabbitmq.core",
            "RabbitmqChannelLayer",
            _peer,
            note=PEER_NOTE,
        ),
        _raw(),
    ]

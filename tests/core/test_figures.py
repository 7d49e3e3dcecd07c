"""Deployment figures: what they count, Prometheus' text format, the /metrics app and
the prometheus_client collector (on the in-memory layer, whose process is the whole
deployment; the shared backends have their own tests)."""

from __future__ import annotations

from typing import Any

import pytest
from asgiref.testing import ApplicationCommunicator
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from layers.figures import Figures, prometheus_text, rates
from layers.inmemory import InMemoryChannelLayer
from layers.metrics import FiguresCollector, metrics_app
from tests.helpers import msg


def parsed(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of an exposition, by (name, sorted labels), via prometheus_client."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


async def busy_layer() -> InMemoryChannelLayer:
    layer = InMemoryChannelLayer(capacity=2, prefix="figs")
    for member in ("a", "b", "c"):
        await layer.group_add("room", member)
    await layer.group_add("hall", "a")
    await layer.group_send("room", msg(1))
    await layer.group_send("room", msg(2))
    await layer.group_send("room", msg(3))  # every member is full: 3 dropped
    await layer.send("solo", msg(4))
    await layer.receive("b")
    return layer


async def test_in_memory_figures_count_the_whole_process() -> None:
    layer = await busy_layer()
    figures = await layer.figures(top=2)
    assert figures.scope == "deployment"
    assert (figures.backend, figures.prefix) == ("InMemoryChannelLayer", "figs")
    counters = dict(figures.counters)
    assert counters["sent"] == 7  # 6 group deliveries and one send
    assert counters["delivered"] == 1
    assert counters["group_sends"] == 3
    assert counters["dropped_full"] == 3
    assert figures.queued == 6
    assert (figures.groups, figures.members) == (2, 4)
    assert figures.deepest == {"a": 2, "c": 2}  # top 2, deepest first, ties by name
    assert figures.largest_groups == {"room": 3, "hall": 1}
    with pytest.raises(ValueError, match="top must be a whole number"):
        await layer.figures(top=-1)
    await layer.close()


async def test_prometheus_text_parses_with_prometheus_clients_parser() -> None:
    layer = await busy_layer()
    samples = parsed(prometheus_text([await layer.figures()]))
    base = (("backend", "InMemoryChannelLayer"), ("prefix", "figs"), ("scope", "deployment"))
    assert samples[("chanlayers_sent_total", base)] == 7
    assert samples[("chanlayers_delivered_total", base)] == 1
    full = tuple(sorted((*base, ("rule", "full"))))
    assert samples[("chanlayers_dropped_total", full)] == 3
    assert samples[("chanlayers_members", base)] == 4
    deepest = tuple(sorted((*base, ("channel", "a"))))
    assert samples[("chanlayers_channel_depth", deepest)] == 2
    await layer.close()


def test_label_values_are_escaped() -> None:
    odd = Figures(backend='X"y', prefix="p\\q", scope="process", counters={"sent": 1})
    [(labels, value)] = [(k[1], v) for k, v in parsed(prometheus_text([odd])).items()]
    assert dict(labels)["backend"] == 'X"y'
    assert dict(labels)["prefix"] == "p\\q"
    assert value == 1


def test_rates_per_second_and_none_for_a_counter_that_went_back() -> None:
    before = Figures("B", "p", "deployment", {"sent": 100, "delivered": 50})
    after = Figures("B", "p", "deployment", {"sent": 300, "delivered": 10})
    assert rates(before, after, 2.0) == {"sent": 100.0}
    assert rates(before, after, 0) == {}


async def test_metrics_app_serves_the_figures() -> None:
    layer = await busy_layer()
    app = ApplicationCommunicator(metrics_app(layer), {"type": "http", "path": "/metrics"})
    await app.send_input({"type": "http.request", "body": b""})
    start: dict[str, Any] = await app.receive_output(timeout=1)
    body: dict[str, Any] = await app.receive_output(timeout=1)
    assert start["status"] == 200
    assert (b"content-type", b"text/plain; version=0.0.4; charset=utf-8") in start["headers"]
    assert (
        parsed(body["body"].decode())[
            (
                "chanlayers_group_sends_total",
                (("backend", "InMemoryChannelLayer"), ("prefix", "figs"), ("scope", "deployment")),
            )
        ]
        == 3
    )
    await layer.close()
    closed = ApplicationCommunicator(metrics_app(layer), {"type": "http", "path": "/metrics"})
    await closed.send_input({"type": "http.request", "body": b""})
    start = await closed.receive_output(timeout=1)
    body = await closed.receive_output(timeout=1)
    assert start["status"] == 503
    assert body["body"].startswith(b"chanlayers: ChannelLayerClosed")


def test_collector_in_a_prometheus_client_registry() -> None:
    collector = FiguresCollector("memory://?prefix=coll")
    registry = CollectorRegistry()
    registry.register(collector)
    try:
        samples = parsed(generate_latest(registry).decode())
    finally:
        collector.close()
    base = (("backend", "InMemoryChannelLayer"), ("prefix", "coll"), ("scope", "deployment"))
    assert samples[("chanlayers_sent_total", base)] == 0
    assert samples[("chanlayers_groups", base)] == 0

"""Prometheus metrics of a deployment: an ASGI app for /metrics and a collector.

Both read ``ChannelLayer.figures()``, the figures the shared backend keeps for every
process of the prefix, so several workers behind one scrape target all report the
same, whole-deployment numbers. The ASGI app needs nothing more; the collector, for
an existing prometheus_client registry, needs the ``metrics`` extra.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from .base import ChannelLayer
from .config import get_channel_layer, install_hint
from .exceptions import ChannelLayerError
from .figures import metric_samples, prometheus_text
from .sync import SyncChannelLayer

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric

__all__ = ["FiguresCollector", "metrics_app"]

CONTENT_TYPE = b"text/plain; version=0.0.4; charset=utf-8"

Scope = dict[str, Any]


def metrics_app(layer: ChannelLayer | str | None = None, top: int = 10) -> Any:
    """An ASGI app answering every HTTP request with the layer's figures for Prometheus.

    layer is a layer, an alias of CHANNEL_LAYERS, or None for "default" (looked up at
    the first request, in the worker that serves it). Mount it at /metrics.
    """

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            raise ValueError(f"the metrics app serves HTTP, got a {scope['type']!r} scope")
        target = layer if isinstance(layer, ChannelLayer) else get_channel_layer(layer or "default")
        try:
            body, status = prometheus_text([await target.figures(top)]).encode(), 200
        except ChannelLayerError as exc:
            # A scrape that fails says why, as Prometheus shows the body of a failed scrape.
            body, status = f"chanlayers: {type(exc).__name__}: {exc}\n".encode(), 503
        headers = [(b"content-type", CONTENT_TYPE), (b"content-length", b"%d" % len(body))]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    return app


class FiguresCollector:
    """A prometheus_client collector: the layer's figures at every scrape.

    registry.register(FiguresCollector("redis://localhost:6379")) on a registry of
    your own (a URL or alias gets a SyncChannelLayer, closed by close()).
    """

    def __init__(self, layer: SyncChannelLayer | ChannelLayer | str, top: int = 10) -> None:
        try:
            from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily
        except ImportError:
            raise ChannelLayerError(
                f"FiguresCollector needs prometheus_client ({install_hint('metrics')})"
            ) from None
        self._families = {"counter": CounterMetricFamily, "gauge": GaugeMetricFamily}
        self._owned = not isinstance(layer, SyncChannelLayer)
        self.layer = layer if isinstance(layer, SyncChannelLayer) else SyncChannelLayer(layer)
        self.top = top

    def collect(self) -> Iterator[Metric]:
        """One family per figure, read now."""
        made: dict[str, Any] = {}
        for sample in metric_samples(self.layer.figures(self.top)):
            family = made.get(sample.family)
            if family is None:
                family = made[sample.family] = self._families[sample.kind](
                    sample.family, sample.doc, labels=list(sample.labels)
                )
            family.add_metric(list(sample.labels.values()), sample.value)
        yield from made.values()

    def close(self) -> None:
        """Close the layer this collector opened from a URL or alias."""
        if self._owned:
            self.layer.close()

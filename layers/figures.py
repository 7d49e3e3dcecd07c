"""Figures of a whole deployment: what every process of one prefix sent, delivered,
dropped, and holds now, read from the shared backend by any process.

`ChannelLayer.figures()` returns a Figures; `chanlayers stats` shows it (also as JSON
and in Prometheus' text format), and `layers.metrics` serves it to Prometheus.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

__all__ = [
    "DROP_RULES",
    "SHARED_COUNTERS",
    "Figures",
    "Sample",
    "Tally",
    "add_counts",
    "metric_samples",
    "process_counters",
    "prometheus_text",
    "rates",
    "top",
]

DROP_RULES = ("full", "expired", "undecodable", "dead_owner")
"""The rules that drop a message, each counted apart."""

SHARED_COUNTERS = (
    "sent",
    "delivered",
    "group_sends",
    *(f"dropped_{rule}" for rule in DROP_RULES),
)
"""The counters a shared backend keeps for every process, in Counters.shared() order."""

Scope = Literal["deployment", "process"]


@dataclass(frozen=True)
class Figures:
    """One prefix's figures: counters since the data began, and what is held now.

    scope says what the counters cover: "deployment" (every process of the prefix, read
    from the backend) or "process" (this process only, where the backend keeps none).
    A counter the backend cannot tell is missing from counters, never a made-up 0.
    """

    backend: str
    prefix: str
    scope: Scope
    counters: Mapping[str, int]
    """sent, delivered, group_sends, and dropped_<rule> for each of DROP_RULES."""
    queued: int | None = None
    """Messages waiting in every channel and inbox now."""
    groups: int | None = None
    members: int | None = None
    deepest: Mapping[str, int] = field(default_factory=dict)
    """The deepest channels (or process inboxes), deepest first."""
    largest_groups: Mapping[str, int] = field(default_factory=dict)
    """The largest groups by members, largest first."""
    notes: tuple[str, ...] = ()
    """What the figures leave out, in words (e.g. what a backend cannot count)."""

    def as_dict(self) -> dict[str, Any]:
        """The figures as plain JSON-ready data."""
        data = asdict(self)
        data["notes"] = list(self.notes)
        return data


def process_counters(stats: Mapping[str, Any]) -> dict[str, int]:
    """The figure counters in a layer's per-process stats()."""
    names = {"sent": "sent", "received": "delivered", "group_sends": "group_sends"}
    names.update({f"dropped_{rule}": f"dropped_{rule}" for rule in DROP_RULES})
    return {ours: int(stats[key]) for key, ours in names.items() if key in stats}


class Tally:
    """What this process counted and has not yet added to the backend's shared counters.

    read gives this process's counters, in SHARED_COUNTERS order; take() hands out
    what they grew by since the last take, so a backend adds deltas to its shared
    counters on a write it makes anyway. Cheap when nothing changed: one tuple compare.
    """

    __slots__ = ("_read", "_synced")

    def __init__(self, read: Callable[[], tuple[int, ...]]) -> None:
        self._read = read
        self._synced = read()

    def pending(self) -> bool:
        """True if the counters grew since the last take."""
        return self._read() != self._synced

    def take(self) -> dict[str, int] | None:
        """The counters' growth since the last take (None if none), now counted as added."""
        now = self._read()
        synced = self._synced
        if now == synced:
            return None
        self._synced = now
        return {
            name: value - before
            for name, value, before in zip(SHARED_COUNTERS, now, synced, strict=True)
            if value != before
        }

    def give_back(self, deltas: Mapping[str, int]) -> None:
        """Deltas from take() that never reached the backend: the next take repeats them."""
        self._synced = tuple(
            value - deltas.get(name, 0)
            for name, value in zip(SHARED_COUNTERS, self._synced, strict=True)
        )


def add_counts(into: dict[str, int], deltas: Mapping[str, int]) -> None:
    """Add deltas to a dict of counters."""
    for name, value in deltas.items():
        into[name] = into.get(name, 0) + value


def top(counts: Mapping[str, int], n: int) -> dict[str, int]:
    """The n largest of counts, largest first (ties by name)."""
    return dict(sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:n])


def rates(before: Figures, after: Figures, seconds: float) -> dict[str, float]:
    """Counters per second between two readings (a counter that went back, e.g. after
    a flush or a restart, gives no rate rather than a negative one)."""
    if not seconds > 0:
        return {}
    found = {}
    for name, value in after.counters.items():
        earlier = before.counters.get(name)
        if earlier is not None and value >= earlier:
            found[name] = (value - earlier) / seconds
    return found


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(pairs: Mapping[str, str]) -> str:
    return "{" + ",".join(f'{key}="{_label(value)}"' for key, value in pairs.items()) + "}"


def _number(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value)) if not float(value).is_integer() else str(int(value))


@dataclass(frozen=True)
class Sample:
    """One metric sample: the family's name, kind and help, the labels and the value."""

    family: str
    kind: Literal["counter", "gauge"]
    doc: str
    labels: Mapping[str, str]
    value: float


_COUNTERS = (
    ("sent", "Messages stored for a channel (a group_send counts once per member)."),
    ("delivered", "Messages handed to a receiver."),
    ("group_sends", "group_send calls."),
)
_GAUGES = (
    ("queued", "Messages waiting in channels and inboxes."),
    ("groups", "Groups with at least one member."),
    ("members", "Group memberships."),
)


def metric_samples(figures: Figures) -> Iterator[Sample]:
    """The figures as Prometheus samples (families named chanlayers_*)."""
    base = {"backend": figures.backend, "prefix": figures.prefix, "scope": figures.scope}
    for name, doc in _COUNTERS:
        if name in figures.counters:
            yield Sample(f"chanlayers_{name}", "counter", doc, base, figures.counters[name])
    for rule in DROP_RULES:
        if f"dropped_{rule}" in figures.counters:
            yield Sample(
                "chanlayers_dropped",
                "counter",
                "Messages dropped, by the rule that dropped them.",
                {**base, "rule": rule},
                figures.counters[f"dropped_{rule}"],
            )
    for name, doc in _GAUGES:
        value = getattr(figures, name)
        if value is not None:
            yield Sample(f"chanlayers_{name}", "gauge", doc, base, value)
    for channel, depth in figures.deepest.items():
        yield Sample(
            "chanlayers_channel_depth",
            "gauge",
            "Messages waiting in the deepest channels.",
            {**base, "channel": channel},
            depth,
        )


def prometheus_text(all_figures: Iterable[Figures]) -> str:
    """Prometheus' text exposition format (0.0.4) of one or more layers' figures."""
    families: dict[str, list[Sample]] = {}
    for figures in all_figures:
        for sample in metric_samples(figures):
            families.setdefault(sample.family, []).append(sample)
    lines = []
    for name, samples in families.items():
        kind, doc = samples[0].kind, samples[0].doc
        suffix = "_total" if kind == "counter" else ""
        lines += [f"# HELP {name} {doc}", f"# TYPE {name} {kind}"]
        lines += [f"{name}{suffix}{_labels(s.labels)} {_number(s.value)}" for s in samples]
    return "\n".join(lines) + "\n"

"""The shared vocabulary of the benchmark: layers, figures, cases and outcomes."""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

__all__ = [
    "CROSS_PROCESS",
    "Case",
    "CaseRun",
    "Cell",
    "CustomRun",
    "FigureSpec",
    "Layer",
    "LayerFactory",
    "Measurement",
    "NamedFactory",
    "RunContext",
    "Stat",
    "WorkloadFailed",
]

Message = dict[str, Any]
Measurement = dict[str, float]
"""One run's figures, keyed by FigureSpec.key."""

CROSS_PROCESS = "cross-process"
"""Capability: the layer carries messages between processes (W4, W5 need it)."""


class Layer(Protocol):
    """What the workloads use: the Django Channels layer API (ours and the peers')."""

    async def send(self, channel: str, message: Message) -> None: ...
    async def receive(self, channel: str) -> Message: ...
    async def new_channel(self) -> str: ...
    async def group_add(self, group: str, channel: str) -> None: ...
    async def group_send(self, group: str, message: Message) -> None: ...
    async def close(self) -> None: ...


LayerFactory = Callable[[], Layer]
"""Makes a fresh layer; called inside the event loop of the run that uses it."""

NamedFactory = Callable[[str], Layer]
"""Makes a fresh layer under a key prefix (one unique prefix per run; in-process layers
ignore it). Another process given the same prefix reaches the same channels."""


class WorkloadFailed(Exception):
    """A run lost, duplicated or reordered a message, or stalled: reported as FAIL."""


@dataclass(frozen=True)
class FigureSpec:
    """One number a workload reports."""

    key: str
    label: str
    unit: str
    higher_is_better: bool

    @property
    def heading(self) -> str:
        """The label as the table shows it, with the direction that is better."""
        better = "higher" if self.higher_is_better else "lower"
        return f"{self.label} [{self.unit}] ({better} is better)"


@dataclass(frozen=True)
class RunContext:
    """What one run of one case gets: the layer factory and its time limits.

    A cross-process run also passes target and prefix to the processes it starts, so
    they build the same kind of layer on the same keys.
    """

    factory: LayerFactory
    stall_seconds: float
    limit_seconds: float
    target: str = ""
    prefix: str = ""


CaseRun = Callable[[RunContext], Coroutine[Any, Any, Measurement]]
"""One run of a case on a layer."""
CustomRun = Callable[[RunContext, Mapping[str, int]], Coroutine[Any, Any, Measurement]]
"""One run of a case by a target that is not a layer (a raw client ceiling): its own code,
given the case's parameters."""


@dataclass(frozen=True)
class Case:
    """One parametrisation of a workload, e.g. W3 with G=1000: a row group in the table."""

    key: str
    workload: str
    params: Mapping[str, int]
    run: CaseRun | None
    # Why run is None (not implemented yet); shown as n/a.
    missing: str = ""


@dataclass(frozen=True)
class Stat:
    """A figure over the repetitions of a case."""

    median: float
    low: float
    high: float
    samples: tuple[float, ...]


@dataclass
class Cell:
    """The result of one case on one target."""

    case: str
    target: str
    status: Literal["ok", "fail", "n/a"]
    reason: str = ""
    stats: dict[str, Stat] = field(default_factory=dict)
    seconds: float = 0.0

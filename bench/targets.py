"""The layers under test: ours and the peers, each a factory, a label and its capabilities.

A target joins with one entry in ``all_targets()``. Targets of one ``family`` are compared:
the table has a ratio column ours / peer for every (ours, peer) pair of a family. A
``ceiling`` (a raw client doing the same transfer) is shown beside them, without a ratio.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from .model import CustomRun, Layer, NamedFactory

__all__ = ["CAPACITY", "EXPIRY", "Target", "all_targets", "module_version"]

CAPACITY = 100_000
"""Per-channel capacity for every layer: far above any queue a workload builds."""
EXPIRY = 60


@dataclass(frozen=True)
class Target:
    """One layer under test, or a raw-client ceiling."""

    key: str
    label: str
    family: str
    role: Literal["ours", "peer", "ceiling"]
    factory: NamedFactory | None
    """Makes the layer under a run's key prefix; None if not a layer or unavailable."""
    capabilities: frozenset[str] = frozenset()
    unavailable: str = ""
    """Why the target cannot run (e.g. the package is not installed)."""
    version: str = ""
    goals: Mapping[tuple[str, str, str], float] = field(default_factory=dict)
    """(peer key, case, figure key) -> the ratio ours / peer we aim for ('ours' only).
    For a figure where lower is better, the goal is an upper bound."""
    runs: Mapping[str, CustomRun] = field(default_factory=dict)
    """Case key -> own code for it (a ceiling); a target with runs runs nothing else."""
    probe: Callable[[], str] | None = None
    """Checks the server before the run: '' if reachable, else why not."""
    cleanup: Callable[[str], int] | None = None
    """Deletes what a run left under its prefix; returns how many keys went."""
    note: str = ""
    """Shown under the table: how the target is configured, and why."""

    @property
    def available(self) -> bool:
        """Whether there is anything to run."""
        return not self.unavailable and (self.factory is not None or bool(self.runs))


def module_version(module: str) -> str:
    """The __version__ of an importable module, or ''."""
    try:
        return str(getattr(importlib.import_module(module), "__version__", ""))
    except ImportError:
        return ""


def optional(module: str, attr: str) -> tuple[Callable[..., Any] | None, str]:
    """(the class, '') if importable, else (None, the reason)."""
    try:
        return getattr(importlib.import_module(module), attr), ""
    except Exception as exc:  # a broken peer must not stop the run
        return None, f"{module}.{attr} is not importable: {type(exc).__name__}: {exc}"


def _inmemory(key: str, module: str, label: str, role: Literal["ours", "peer"]) -> Target:
    cls, why = optional(module, "InMemoryChannelLayer")

    def factory(prefix: str) -> Layer:
        assert cls is not None
        layer: Layer = cls(capacity=CAPACITY, expiry=EXPIRY)
        return layer

    goals = {("channels", "W1", "rate"): 1.5, ("channels", "W3 G=1000", "rate"): 50.0}
    return Target(
        key=key,
        label=label,
        family="inmemory",
        role=role,
        factory=factory if cls is not None else None,
        unavailable=why,
        version=module_version(module.split(".")[0]),
        goals=goals if role == "ours" else {},
    )


def all_targets() -> list[Target]:
    """Every known target, ours first per family; unavailable ones are kept, with the reason."""
    from .ipc_targets import ipc_targets
    from .rabbitmq_targets import rabbitmq_targets
    from .redis_targets import redis_targets

    return [
        _inmemory("ours", "layers.inmemory", "chanlayers InMemoryChannelLayer", "ours"),
        _inmemory("channels", "channels.layers", "channels InMemoryChannelLayer", "peer"),
        *ipc_targets(),
        *redis_targets(),
        *rabbitmq_targets(),
    ]

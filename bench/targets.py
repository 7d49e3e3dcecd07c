"""The layers under test: ours and the peers, each a factory, a label and its capabilities.

A target joins with one entry in ``bench.catalogue.all_targets()``. Targets of one
``family`` are compared: the table has a ratio column ours / peer for every (ours, peer)
pair of a family. A ``ceiling`` (a raw client doing the same transfer) is shown beside
them, without a ratio.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Literal

from .model import CROSS_PROCESS, CustomRun, Layer, NamedFactory

__all__ = [
    "CAPACITY",
    "EXPIRY",
    "RELAY_NOTE",
    "Family",
    "Relayed",
    "Target",
    "module_version",
    "relayed",
]

CAPACITY = 100_000
"""Per-channel capacity for every layer: far above any queue a workload builds."""
EXPIRY = 60
RELAY_NOTE = (
    "our layer sends to its own new_channel() channels in-process; here a second layer on"
    " the prefix sends, so W1-W3 cross the server as they do between processes"
)


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


@dataclass(frozen=True)
class Family:
    """What a family's targets share: its name, its server probe and its cleanup."""

    name: str
    probe: Callable[[], str]
    cleanup: Callable[[str], int]

    def layer(
        self,
        key: str,
        label: str,
        role: Literal["ours", "peer"],
        module: str,
        attr: str,
        make: Callable[[Any, str], Layer],
        **extra: Any,
    ) -> Target:
        """A layer target: make(cls, prefix) builds one, cls being module.attr."""
        cls, why = optional(module, attr)
        extra.setdefault("capabilities", frozenset({CROSS_PROCESS}))
        return Target(
            key=key,
            label=label,
            family=self.name,
            role=role,
            factory=partial(make, cls) if cls is not None else None,
            unavailable=why,
            version=module_version(module.split(".")[0]),
            probe=self.probe,
            cleanup=self.cleanup,
            **extra,
        )

    def ceiling(
        self,
        key: str,
        label: str,
        module: str,
        runs: Mapping[str, CustomRun],
        why: str,
        note: str,
    ) -> Target:
        """A raw client's ceiling: its own code per case, no ratio."""
        return Target(
            key=key,
            label=label,
            family=self.name,
            role="ceiling",
            factory=None,
            unavailable=why,
            version=module_version(module),
            runs=runs,
            probe=self.probe,
            cleanup=self.cleanup,
            note=note,
        )


class Relayed:
    """Receives on one layer and sends from another on the same prefix (another process,
    as far as the server can tell), so every message crosses the server.

    Our networked layers deliver a layer's messages to its own new_channel() channels
    in-process; this shows what W1-W3 cost when the sender is somewhere else.
    """

    def __init__(self, receiver: Layer, sender: Layer) -> None:
        self.receiver, self.sender = receiver, sender
        self.send, self.group_send = sender.send, sender.group_send
        self.receive, self.new_channel = receiver.receive, receiver.new_channel
        self.group_add = receiver.group_add
        if hasattr(sender, "send_many"):
            self.send_many = sender.send_many

    async def close(self) -> None:
        """Close both layers."""
        await self.sender.close()
        await self.receiver.close()


def relayed(make: Callable[[Any, str], Layer]) -> Callable[[Any, str], Layer]:
    """make(cls, prefix) for Relayed layers: a pair that make() builds on one prefix."""

    def factory(cls: Any, prefix: str) -> Layer:
        return Relayed(make(cls, prefix), make(cls, prefix))

    return factory

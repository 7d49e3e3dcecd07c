"""The layers under test: ours and the peers, each a factory, a label and its capabilities.

A target joins with one entry in ``all_targets()``. Targets of one ``family`` are compared:
the table has a ratio column ours / peer for every (ours, peer) pair of a family.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from .model import Layer, LayerFactory

__all__ = ["CAPACITY", "EXPIRY", "Target", "all_targets", "module_version"]

CAPACITY = 100_000
"""Per-channel capacity for every layer: far above any queue a workload builds."""
EXPIRY = 60


@dataclass(frozen=True)
class Target:
    """One layer under test."""

    key: str
    label: str
    family: str
    role: Literal["ours", "peer"]
    factory: LayerFactory | None
    capabilities: frozenset[str] = frozenset()
    unavailable: str = ""
    """Why factory is None (e.g. the package is not installed)."""
    version: str = ""
    goals: Mapping[tuple[str, str, str], float] = field(default_factory=dict)
    """(peer key, case, figure key) -> the ratio ours / peer we aim for ('ours' only)."""


def module_version(module: str) -> str:
    """The __version__ of an importable module, or ''."""
    try:
        return str(getattr(importlib.import_module(module), "__version__", ""))
    except ImportError:
        return ""


def _optional(module: str, attr: str) -> tuple[Callable[..., Any] | None, str]:
    """(the class, '') if importable, else (None, the reason)."""
    try:
        return getattr(importlib.import_module(module), attr), ""
    except Exception as exc:  # a broken peer must not stop the run
        return None, f"{module}.{attr} is not importable: {type(exc).__name__}: {exc}"


def _ours_inmemory() -> Target:
    cls, why = _optional("layers.inmemory", "InMemoryChannelLayer")

    def factory() -> Layer:
        assert cls is not None
        layer: Layer = cls(capacity=CAPACITY, expiry=EXPIRY)
        return layer

    return Target(
        key="ours",
        label="chanlayers InMemoryChannelLayer",
        family="inmemory",
        role="ours",
        factory=factory if cls is not None else None,
        unavailable=why,
        version=module_version("layers"),
        goals={("channels", "W1", "rate"): 1.5, ("channels", "W3 G=1000", "rate"): 50.0},
    )


def _channels_inmemory() -> Target:
    cls, why = _optional("channels.layers", "InMemoryChannelLayer")

    def factory() -> Layer:
        assert cls is not None
        layer: Layer = cls(capacity=CAPACITY, expiry=EXPIRY)
        return layer

    return Target(
        key="channels",
        label="channels InMemoryChannelLayer",
        family="inmemory",
        role="peer",
        factory=factory if cls is not None else None,
        unavailable=why,
        version=module_version("channels"),
    )


def all_targets() -> list[Target]:
    """Every known target, ours first; unavailable peers are kept, with the reason."""
    return [_ours_inmemory(), _channels_inmemory()]

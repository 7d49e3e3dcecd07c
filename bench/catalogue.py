"""Every benchmark target: the in-memory ones here, the others from their *_targets module.

Kept apart from targets.py, which the *_targets modules build on, so that nothing
imports back.
"""

from __future__ import annotations

from typing import Literal

from .ipc_targets import ipc_targets
from .model import Layer
from .rabbitmq_targets import rabbitmq_targets
from .redis_targets import redis_targets
from .targets import CAPACITY, EXPIRY, Target, module_version, optional

__all__ = ["all_targets"]


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
    return [
        _inmemory("ours", "layers.inmemory", "chanlayers InMemoryChannelLayer", "ours"),
        _inmemory("channels", "channels.layers", "channels InMemoryChannelLayer", "peer"),
        *ipc_targets(),
        *redis_targets(),
        *rabbitmq_targets(),
    ]

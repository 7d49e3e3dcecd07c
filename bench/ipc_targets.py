"""The IPC family: our IPCChannelLayer (processes of one host, shared memory, no server).

There is no living peer to compare with (asgi_ipc implements the ASGI 1 API that
channels 2 dropped), so its figures stand beside the others without a ratio. Every run
gets its own region, named after the run's prefix, and removed after the run.
"""

from __future__ import annotations

import sys

from .model import CROSS_PROCESS, Layer
from .targets import CAPACITY, EXPIRY, Target, module_version, optional

__all__ = ["cleanup", "ipc_targets"]

NOTE = "name=prefix (one region per run, removed after it), capacity and expiry only"


def _ours(prefix: str) -> Layer:
    from layers.ipc import IPCChannelLayer

    layer: Layer = IPCChannelLayer(name=prefix, prefix=prefix, capacity=CAPACITY, expiry=EXPIRY)
    return layer


def cleanup(prefix: str) -> int:
    """Flush the run's region, so its last close removes it; returns 0 (no key count)."""
    from layers.sync import SyncChannelLayer

    with SyncChannelLayer(f"ipc://{prefix}?prefix={prefix}") as layer:
        layer.flush()
    return 0


def ipc_targets() -> list[Target]:
    """Our IPC layer (Linux only)."""
    cls, why = optional("layers.ipc", "IPCChannelLayer")
    if cls is not None and not sys.platform.startswith("linux"):
        cls, why = None, "the IPC layer runs on Linux only"
    return [
        Target(
            key="ours-ipc",
            label="chanlayers IPCChannelLayer",
            family="ipc",
            role="ours",
            factory=_ours if cls is not None else None,
            capabilities=frozenset({CROSS_PROCESS}),
            unavailable=why,
            version=module_version("layers"),
            cleanup=cleanup,
            note=NOTE,
        )
    ]

"""A script that uses a layer only through async_to_sync, as sync Django code does.

Run by test_async_to_sync.py in a process of its own: a loop's shutdown that hangs
shows as a call that never returns or a process that never exits. Arguments: the
layer class as 'module:Class', then its options as JSON. Prints the seqs received.
"""

from __future__ import annotations

import importlib
import json
import sys
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from asgiref.sync import async_to_sync

from layers.base import ChannelLayer

COUNT = 3


def exchange(layer: ChannelLayer, tag: str) -> list[int]:
    """Sequential sends, receives and group_sends, each call in an event loop of its own."""
    normal = f"a2s.{tag}"
    for i in range(COUNT):
        async_to_sync(layer.send)(normal, {"type": "t", "seq": i})
    got = [async_to_sync(layer.receive)(normal)["seq"] for _ in range(COUNT)]
    async_to_sync(layer.group_send)(f"empty-{tag}", {"type": "t", "seq": -1})
    local = async_to_sync(layer.new_channel)()
    async_to_sync(layer.group_add)(f"g-{tag}", local)
    for i in range(COUNT):
        async_to_sync(layer.group_send)(f"g-{tag}", {"type": "t", "seq": 10 + i})
    got += [async_to_sync(layer.receive)(local)["seq"] for _ in range(COUNT)]
    async_to_sync(layer.group_discard)(f"g-{tag}", local)
    return got


def main() -> None:
    module, _, name = sys.argv[1].partition(":")
    options: dict[str, Any] = json.loads(sys.argv[2])
    layer: ChannelLayer = getattr(importlib.import_module(module), name)(**options)
    received = {"main": exchange(layer, "main")}
    with ThreadPoolExecutor(max_workers=2) as pool:
        received["pool"] = pool.submit(exchange, layer, "pool").result(timeout=60)
        # Left open: a script that exits without close() must still exit.
        pool.submit(async_to_sync(layer.send), "a2s.left", {"type": "t"}).result(timeout=60)
    print(json.dumps(received), flush=True)


if __name__ == "__main__":
    main()

"""Reading the CLI's stdin: JSON lines, in chunks that a send_many sends at once."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from typing import TextIO

__all__ = ["item_index", "stdin_chunks"]

_CHUNK = 1000
"""Lines of stdin sent per send_many: a pipe of many lines goes at pipeline speed."""


def stdin_chunks(stdin: TextIO) -> Iterator[list[tuple[int, str]]]:
    """(line number, text) of stdin's non-blank lines, in chunks of at most _CHUNK.

    A thread reads ahead, and a chunk is whatever has arrived: a streaming producer
    (tail -f) has each line sent at once, a file goes in full chunks.
    """
    lines: queue.Queue[tuple[int, str] | None] = queue.Queue(maxsize=4 * _CHUNK)

    def read() -> None:
        try:
            for number, line in enumerate(stdin, 1):
                if line.strip():
                    lines.put((number, line.strip()))
        finally:
            lines.put(None)

    threading.Thread(target=read, name="chanlayers-stdin", daemon=True).start()
    while True:
        first = lines.get()
        if first is None:
            return
        chunk = [first]
        while len(chunk) < _CHUNK:
            try:
                more = lines.get_nowait()
            except queue.Empty:
                break
            if more is None:
                yield chunk
                return
            chunk.append(more)
        yield chunk


def item_index(exc: BaseException) -> int | None:
    """The item index a send_many error names ("send_many item 3: ..."), if any."""
    words = str(exc).split(":", 1)[0].split()
    return int(words[-1]) if len(words) >= 2 and words[-2] == "item" else None

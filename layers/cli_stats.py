"""chanlayers stats: the figures as a table, and redrawn in place with rates."""

from __future__ import annotations

import sys
import time

from .figures import Figures, rates
from .sync import SyncChannelLayer

__all__ = ["figures_table", "watch"]


def figures_table(figures: Figures, per_second: dict[str, float] | None) -> list[str]:
    """The figures as aligned lines: totals (with rates), then the deepest and largest."""
    rows: list[tuple[str, str]] = [
        ("backend", figures.backend),
        ("prefix", figures.prefix),
        ("scope", figures.scope),
    ]
    for name, value in figures.counters.items():
        rate = "" if per_second is None else f"  {per_second.get(name, 0.0):,.1f}/s"
        rows.append((name, f"{value:,}{rate}"))
    for name in ("queued", "groups", "members"):
        value = getattr(figures, name)
        rows.append((name, "unknown" if value is None else f"{value:,}"))
    width = max(len(name) for name, _ in rows)
    lines = [f"{name:<{width}}  {value}" for name, value in rows]
    for title, counts in (
        ("deepest channels", figures.deepest),
        ("largest groups", figures.largest_groups),
    ):
        if counts:
            lines.append(f"{title}:")
            lines += [f"  {count:>8,}  {name}" for name, count in counts.items()]
    lines += [f"note: {note}" for note in figures.notes]
    return lines


def watch(layer: SyncChannelLayer, top: int, every: float) -> None:
    """Redraw the figures every `every` seconds, with rates since the last reading."""
    before, then = layer.figures(top), time.monotonic()
    per_second: dict[str, float] = {}
    try:
        while True:
            lines = figures_table(before, per_second)
            header = f"chanlayers stats, every {every:g} s (Ctrl-C stops)"
            # Home and clear, then the frame: a terminal shows it in place, like top.
            sys.stdout.write("\x1b[H\x1b[2J" + "\n".join([header, "", *lines]) + "\n")
            sys.stdout.flush()
            time.sleep(every)
            now_figures, now = layer.figures(top), time.monotonic()
            per_second = rates(before, now_figures, now - then)
            before, then = now_figures, now
    except KeyboardInterrupt:
        return

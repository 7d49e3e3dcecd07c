"""The results as a text table (with ratios ours / peer) and as JSON."""

from __future__ import annotations

import json
import os
import platform
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .model import Case, Cell
from .targets import Target
from .workloads import Workload

__all__ = ["Ratio", "compute_ratios", "render_table", "to_json", "write_json"]


@dataclass(frozen=True)
class Ratio:
    """ours / peer for one figure of one case; None when either side has no number."""

    case: str
    figure: str
    ours: str
    peer: str
    value: float | None
    goal: float | None
    higher_is_better: bool = True
    """For a figure where lower is better (latency), the goal is an upper bound."""

    @property
    def met(self) -> bool | None:
        """Whether the goal is met; None without a goal or a value."""
        if self.goal is None or self.value is None:
            return None
        return self.value >= self.goal if self.higher_is_better else self.value <= self.goal

    @property
    def goal_text(self) -> str:
        """E.g. '>=20x vs cr-core: met'."""
        bound = ">=" if self.higher_is_better else "<="
        verdict = {True: "met", False: "MISSED", None: "?"}[self.met]
        return f"{bound}{self.goal:g}x vs {self.peer}: {verdict}"


def _pairs(targets: Sequence[Target]) -> list[tuple[Target, Target]]:
    return [
        (ours, peer)
        for ours in targets
        if ours.role == "ours"
        for peer in targets
        if peer.role == "peer" and peer.family == ours.family
    ]


def compute_ratios(
    cases: Sequence[tuple[Workload, Case]], targets: Sequence[Target], cells: Sequence[Cell]
) -> list[Ratio]:
    """Every ours / peer ratio within a family, for every figure of every case."""
    by_key = {(c.case, c.target): c for c in cells}
    ratios = []
    for workload, case in cases:
        for figure in workload.figures:
            for ours, peer in _pairs(targets):
                a, b = by_key[(case.key, ours.key)], by_key[(case.key, peer.key)]
                value = None
                if a.status == b.status == "ok" and b.stats[figure.key].median > 0:
                    value = a.stats[figure.key].median / b.stats[figure.key].median
                goal = ours.goals.get((peer.key, case.key, figure.key))
                ratios.append(
                    Ratio(
                        case.key,
                        figure.key,
                        ours.key,
                        peer.key,
                        value,
                        goal,
                        figure.higher_is_better,
                    )
                )
    return ratios


def _num(value: float) -> str:
    if value >= 1000:
        return f"{value:,.0f}"
    if value >= 100:
        return f"{value:.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def _families(targets: Sequence[Target]) -> list[list[Target]]:
    order: dict[str, list[Target]] = {}
    for target in targets:
        order.setdefault(target.family, []).append(target)
    return list(order.values())


def _title(family: Sequence[Target]) -> str:
    def keys(role: str) -> str:
        return ", ".join(t.key for t in family if t.role == role)

    title = f"== {family[0].family}: {keys('ours') or '-'} vs {keys('peer') or '-'}"
    return title + (f"; ceiling {keys('ceiling')}" if keys("ceiling") else "") + " =="


def render_table(
    cases: Sequence[tuple[Workload, Case]],
    targets: Sequence[Target],
    cells: Sequence[Cell],
    ratios: Sequence[Ratio],
) -> str:
    """One section per family: its targets, then the table, then its footnotes."""
    sections = [_section(cases, family, cells, ratios) for family in _families(targets)]
    sizes = "; ".join(
        f"{case.key}: " + ", ".join(f"{k}={v:,}" for k, v in case.params.items())
        for _, case in cases
    )
    footer = (
        "Each cell: median (min-max) over the repetitions. Ratio = ours / peer on the median;"
        " where lower is better (latency, ms), a ratio below 1 means ours is faster."
        f"\nSizes: {sizes}."
    )
    return "\n\n".join([*sections, footer])


def _section(
    cases: Sequence[tuple[Workload, Case]],
    targets: Sequence[Target],
    cells: Sequence[Cell],
    ratios: Sequence[Ratio],
) -> str:
    by_key = {(c.case, c.target): c for c in cells}
    by_ratio = {(r.case, r.figure, r.ours, r.peer): r for r in ratios}
    pairs = _pairs(targets)
    keys = {t.key for t in targets}
    has_goals = any(r.goal is not None for r in ratios if r.ours in keys)
    notes: list[str] = []

    def note(text: str) -> str:
        if text not in notes:
            notes.append(text)
        return f"[{notes.index(text) + 1}]"

    out = [_title(targets)]
    width = max(len(t.key) for t in targets)
    for t in targets:
        about = f"{t.label} {t.version}".strip() + (f"; {t.note}" if t.note else "")
        out.append(f"  {t.key.ljust(width)}  {about}")
    header = ["case", "figure", *(t.key for t in targets)]
    header += [f"{ours.key}/{peer.key}" for ours, peer in pairs]
    header += ["goal"] if has_goals else []
    rows: list[list[str]] = []
    skipped: list[str] = []
    for workload, case in cases:
        mine = [by_key[(case.key, t.key)] for t in targets]
        if all(c.status == "n/a" for c in mine):
            skipped.append(f"{case.key} {note(mine[0].reason)}")
            continue
        for figure in workload.figures:
            row = [case.key, figure.heading]
            for cell in mine:
                if cell.status == "ok":
                    s = cell.stats[figure.key]
                    spread = f" ({_num(s.low)}-{_num(s.high)})" if len(s.samples) > 1 else ""
                    row.append(_num(s.median) + spread)
                else:
                    label = "FAIL" if cell.status == "fail" else cell.status
                    row.append(f"{label} {note(cell.reason)}")
            goals: list[str] = []
            for ours, peer in pairs:
                r = by_ratio[(case.key, figure.key, ours.key, peer.key)]
                row.append("-" if r.value is None else f"{r.value:.2f}x")
                if r.goal is not None:
                    goals.append(r.goal_text)
            if has_goals:
                row.append("; ".join(goals))
            rows.append(row)

    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    out.append("")
    out.append("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip())
    out.append("  ".join("-" * w for w in widths))
    previous = ""
    for row in rows:
        if row[0] != previous and previous:
            out.append("")
        previous = row[0]
        out.append("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    if skipped:
        out.append(f"not applicable to any target here: {', '.join(skipped)}")
    out.extend(f"[{i}] {text}" for i, text in enumerate(notes, 1))
    return "\n".join(out)


def to_json(
    cases: Sequence[tuple[Workload, Case]],
    targets: Sequence[Target],
    skipped: Sequence[Target],
    cells: Sequence[Cell],
    ratios: Sequence[Ratio],
    settings: dict[str, Any],
) -> dict[str, Any]:
    """Everything a later comparison or chart needs, as plain JSON data."""
    return {
        "schema": 2,
        "generated": datetime.now(UTC).isoformat(timespec="seconds"),
        "settings": settings,
        "environment": {
            "python": sys.version.split()[0],
            "implementation": platform.python_implementation(),
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
        },
        "targets": [_target_json(t) for t in targets],
        "skipped_targets": [_target_json(t) for t in skipped],
        "cases": [
            {
                "key": case.key,
                "workload": workload.key,
                "title": workload.title,
                "params": dict(case.params),
                "figures": [vars(f) for f in workload.figures],
            }
            for workload, case in cases
        ],
        "results": [
            {
                "case": c.case,
                "target": c.target,
                "status": c.status,
                "reason": c.reason,
                "seconds": round(c.seconds, 3),
                "figures": {k: vars(s) | {"samples": list(s.samples)} for k, s in c.stats.items()},
            }
            for c in cells
        ],
        "ratios": [vars(r) | {"met": r.met} for r in ratios],
        "notes": {t.key: t.note for t in targets if t.note},
    }


def _target_json(target: Target) -> dict[str, Any]:
    return {
        "key": target.key,
        "label": target.label,
        "family": target.family,
        "role": target.role,
        "version": target.version,
        "capabilities": sorted(target.capabilities),
        "unavailable": target.unavailable,
    }


def write_json(data: dict[str, Any], path: Path) -> None:
    """Write data to path, creating its directory."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")

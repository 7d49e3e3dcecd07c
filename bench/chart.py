"""An optional PNG chart: grouped bars per workload, one bar per target, log scale.

matplotlib is not a dependency; without it, write_chart() says why and writes nothing.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Sequence
from pathlib import Path

from .model import Case, Cell, FigureSpec
from .targets import Target
from .workloads import Workload

__all__ = ["write_chart"]


def _short(value: float) -> str:
    for scale, suffix in ((1e6, "M"), (1e3, "k")):
        if value >= scale:
            return f"{value / scale:.3g}{suffix}"
    return f"{value:.3g}"


def write_chart(
    path: Path,
    cases: Sequence[tuple[Workload, Case]],
    targets: Sequence[Target],
    cells: Sequence[Cell],
) -> str:
    """Write the chart to path; return '' on success, else why no chart was written."""
    try:
        importlib.import_module("matplotlib").use("Agg")
        plt = importlib.import_module("matplotlib.pyplot")
    except ImportError:
        return "matplotlib is not installed"

    by_key = {(c.case, c.target): c for c in cells}
    # One panel per unit (msg/s, µs, ...): groups of bars per case and figure, a bar per target.
    panels: dict[str, list[tuple[Case, FigureSpec]]] = {}
    for workload, case in cases:
        for figure in workload.figures:
            if any(by_key[(case.key, t.key)].status == "ok" for t in targets):
                panels.setdefault(figure.unit, []).append((case, figure))
    if not panels:
        return "no figures to chart"

    width = 0.8 / len(targets)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    sizes = [max(4.0, 1.1 * len(groups) * len(targets)) for groups in panels.values()]
    fig, axes = plt.subplots(len(panels), 1, figsize=(max(sizes), 3.6 * len(panels)), squeeze=False)
    for ax, (unit, groups) in zip(axes.flat, panels.items(), strict=True):
        lowest = math.inf
        labelled: set[str] = set()
        for i, target in enumerate(targets):
            for x, (case, figure) in enumerate(groups):
                cell = by_key[(case.key, target.key)]
                where = x - 0.4 + width * (i + 0.5)
                if cell.status == "fail":  # a FAIL is a finding; n/a stays blank
                    ax.annotate(
                        "FAIL",
                        (where, 0.02),
                        xycoords=("data", "axes fraction"),
                        ha="center",
                        va="bottom",
                        fontsize=7,
                        rotation=90,
                        color="red",
                    )
                if cell.status != "ok":
                    continue
                stat = cell.stats[figure.key]
                if stat.low > 0:
                    lowest = min(lowest, stat.low)
                ax.bar(
                    where,
                    stat.median,
                    width,
                    color=colours[i % len(colours)],
                    yerr=[[stat.median - stat.low], [stat.high - stat.median]],
                    capsize=2,
                    label=None if target.key in labelled else target.key,
                )
                labelled.add(target.key)
                ax.annotate(
                    _short(stat.median), (where, stat.high), ha="center", va="bottom", fontsize=6
                )
        ax.set_yscale("log")
        if math.isfinite(lowest):
            # Bars start a decade below the smallest value, so heights compare fairly.
            ax.set_ylim(bottom=10 ** math.floor(math.log10(lowest) - 1))
        better = {f.higher_is_better for _, f in groups}
        hint = {frozenset({True}): "higher is better", frozenset({False}): "lower is better"}
        ax.set_ylabel(f"{unit} (log)")
        ax.set_title(f"{unit}: {hint.get(frozenset(better), 'see labels')}", fontsize=9)
        ax.set_xticks(range(len(groups)), [f"{c.key}\n{f.label}" for c, f in groups], fontsize=7)
        ax.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return ""

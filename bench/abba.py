"""Before and after in one session: the bench of two or more source trees, interleaved.

    python -m bench.abba --tree before=../old --tree after=. --only W4 --rounds 8

Each round runs ``python -m bench`` once per tree (with the tree's own ``.venv``, or
the Python given as ``name=path:python``), in the trees' order on even rounds and the
reverse on odd ones (ABBA), so that a machine drifting over the session weighs on both.
Per row it prints, against the first tree, the ratio of the medians of all samples with
a 95% bootstrap interval, and the median of the per-round ratios (neighbouring runs
share the machine's state), as speed: above 1 is faster whether the figure is a rate or
a latency. It also reports each run's CPU seconds (bench and its children) and, given
``--redis-port`` (a local server the runs use: set REDIS_URL to it), the server's CPU
seconds and microseconds per EVALSHA. Other arguments go to ``python -m bench``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

LOWER_IS_BETTER = ("p50", "p99", "max", "ms_per_send")


@dataclass
class Run:
    """One tree's bench run: samples per row ("case target figure"), and its costs."""

    tree: str
    rows: dict[str, list[float]]
    costs: dict[str, float] = field(default_factory=dict)


def speed(row: str, ratio: float) -> float:
    """A ratio of figures as speed: above 1 is better, for rates and latencies alike."""
    return 1 / ratio if row.rsplit(" ", 1)[-1] in LOWER_IS_BETTER else ratio


def rows_of(report: dict[str, Any]) -> dict[str, list[float]]:
    """The samples of a bench --json report per row."""
    rows = {}
    for result in report["results"]:
        if result["status"] == "ok":
            for figure, value in result["figures"].items():
                rows[f"{result['case']} {result['target']} {figure}"] = value["samples"]
    return rows


def bootstrap(a: list[float], b: list[float], draws: int = 4000) -> tuple[float, float]:
    """95% interval of median(a) / median(b), resampling both."""
    rnd = random.Random(1)
    ratios = sorted(
        statistics.median(rnd.choices(a, k=len(a))) / statistics.median(rnd.choices(b, k=len(b)))
        for _ in range(draws)
    )
    return ratios[int(draws * 0.025)], ratios[int(draws * 0.975) - 1]


def compare(runs: list[Run], base: str, other: str) -> list[str]:
    """Lines comparing other with base, row by row, as speed."""
    lines = []
    rounds: dict[int, dict[str, Run]] = {}
    trees = len({run.tree for run in runs})
    for index, run in enumerate(runs):
        rounds.setdefault(index // trees, {})[run.tree] = run
    for row in runs[0].rows:
        a = [s for run in runs if run.tree == other for s in run.rows.get(row, [])]
        b = [s for run in runs if run.tree == base for s in run.rows.get(row, [])]
        if not a or not b:
            continue
        pooled = statistics.median(a) / statistics.median(b)
        low, high = sorted(speed(row, x) for x in bootstrap(a, b))
        per_round = [
            speed(row, statistics.median(r[other].rows[row]) / statistics.median(r[base].rows[row]))
            for r in rounds.values()
            if other in r and base in r and row in r[other].rows and row in r[base].rows
        ]
        lines.append(
            f"  {row:45} {speed(row, pooled):.3f} [{low:.3f}-{high:.3f}]"
            f"  per round {statistics.median(per_round):.3f}: "
            + " ".join(f"{x:.2f}" for x in per_round)
        )
    return lines


class RedisProbe:
    """CPU seconds and EVALSHA time of the redis-server on a local port."""

    def __init__(self, port: int) -> None:
        import redis  # only with --redis-port

        self.client = redis.Redis(port=port)
        self.pid = int(self.client.info("server")["process_id"])

    def read(self) -> tuple[float, int, int]:
        stat = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        cpu = (int(stat[11]) + int(stat[12])) / os.sysconf("SC_CLK_TCK")
        calls = self.client.info("commandstats").get("cmdstat_evalsha", {})
        return cpu, int(calls.get("calls", 0)), int(calls.get("usec", 0))


def run_tree(name: str, path: Path, python: str, bench_args: list[str], probe: Any) -> Run:
    """One bench run of a tree."""
    with tempfile.TemporaryDirectory() as scratch:
        report = Path(scratch, "bench.json")
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        server = probe.read() if probe else None
        started = time.monotonic()
        command = [python, "-m", "bench", *bench_args, "--json", str(report)]
        done = subprocess.run(command, cwd=path, capture_output=True, text=True, check=False)
        if done.returncode:
            sys.exit(f"abba: {name}'s bench failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        run = Run(name, rows_of(json.loads(report.read_text())))
    run.costs["wall"] = time.monotonic() - started
    run.costs["cpu"] = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    if probe and server:
        cpu, calls, usec = probe.read()
        run.costs["redis_cpu"] = cpu - server[0]
        run.costs["us_per_evalsha"] = (usec - server[2]) / max(calls - server[1], 1)
    return run


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.abba",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--tree", action="append", required=True, help="name=path[:python]")
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--redis-port", type=int, help="report this local server's costs")
    parser.add_argument("--json", help="where to write every run's samples")
    args, bench_args = parser.parse_known_args()
    trees: dict[str, tuple[Path, str]] = {}
    for spec in args.tree:
        name, _, where = spec.partition("=")
        path, _, python = where.partition(":")
        trees[name] = (Path(path).resolve(), python or str(Path(path, ".venv/bin/python")))
    if len(trees) < 2:
        parser.error("give at least two --tree")
    probe = RedisProbe(args.redis_port) if args.redis_port else None
    runs: list[Run] = []
    for index in range(args.rounds):
        order = list(trees) if index % 2 == 0 else list(trees)[::-1]
        for name in order:
            run = run_tree(name, *trees[name], bench_args, probe)
            runs.append(run)
            costs = " ".join(f"{k} {v:.2f}" for k, v in run.costs.items())
            print(f"round {index} {name}: {costs}", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps([vars(run) for run in runs], indent=1))
    names = list(trees)
    for other in names[1:]:
        print(f"\n{other} against {names[0]}, as speed: pooled [95%], per-round median: rounds")
        print("\n".join(compare(runs, names[0], other)))
    for key in runs[0].costs:
        medians = {n: statistics.median(r.costs[key] for r in runs if r.tree == n) for n in names}
        print(f"  {key}: " + ", ".join(f"{n} {v:.2f}" for n, v in medians.items()))


if __name__ == "__main__":
    main()

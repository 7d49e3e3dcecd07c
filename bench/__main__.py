"""python -m bench: run the workloads on every target in one run; print a table, write JSON."""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from .catalogue import all_targets
from .chart import write_chart
from .memory import measure_memory, render_memory
from .model import Case
from .report import compute_ratios, render_table, to_json, write_json
from .runner import Plan, run_plan
from .targets import Target
from .workloads import WORKLOADS, Workload

MEMORY = "RSS"
"""The --only name of the idle-channel memory probe (bench.memory)."""
DEFAULT_JSON = Path(__file__).resolve().parent / "results" / "latest.json"


def _csv(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Benchmark workloads W1-W5 on our channel layers and the peers.",
    )
    parser.add_argument(
        "--quick", action="store_true", help="small sizes and one repetition (a smoke run)"
    )
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON, help="where to write JSON")
    parser.add_argument(
        "--only", type=_csv, default=None, help="workloads, e.g. W1,W3 (RSS: the memory probe)"
    )
    parser.add_argument(
        "--layers",
        type=_csv,
        default=None,
        help="targets, e.g. ours,channels,ours-redis,cr-core,cr-pubsub,redis-py",
    )
    parser.add_argument(
        "--repetitions", type=int, default=None, help="runs per case (default 3, 1 with --quick)"
    )
    parser.add_argument(
        "--stall", type=float, default=5.0, help="seconds without progress before a run FAILs"
    )
    parser.add_argument(
        "--limit", type=float, default=300.0, help="seconds one run may take before it FAILs"
    )
    return parser.parse_args(argv)


def _select_workloads(only: list[str] | None) -> list[Workload]:
    if only is None:
        return list(WORKLOADS.values())
    unknown = [w for w in only if w.upper() not in WORKLOADS and w.upper() != MEMORY]
    if unknown:
        raise SystemExit(f"unknown workload(s) {', '.join(unknown)}; known: {', '.join(WORKLOADS)}")
    return [WORKLOADS[w.upper()] for w in only if w.upper() != MEMORY]


def _select_targets(keys: list[str] | None) -> tuple[list[Target], list[Target]]:
    """(targets to run, targets skipped because unavailable or their server is down)."""
    known = all_targets()
    if keys is not None:
        names = {t.key: t for t in known}
        unknown = [k for k in keys if k not in names]
        if unknown:
            raise SystemExit(f"unknown layer(s) {', '.join(unknown)}; known: {', '.join(names)}")
        known = [names[k] for k in keys]
    probed: dict[Callable[[], str], str] = {}
    for i, target in enumerate(known):
        if target.available and target.probe is not None:
            if target.probe not in probed:
                probed[target.probe] = target.probe()
            if probed[target.probe]:
                known[i] = dataclasses.replace(target, unavailable=probed[target.probe])
    return [t for t in known if t.available], [t for t in known if not t.available]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; exit status 1 if any run of ours FAILed."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments[:1] == ["soak"]:  # python -m bench soak --minutes N: see bench/soak.py
        from .soak import main as soak_main

        return soak_main(arguments[1:])
    args = parse_args(argv)
    repetitions = args.repetitions or (1 if args.quick else 3)
    if repetitions < 1:
        raise SystemExit("--repetitions must be at least 1")
    workloads = _select_workloads(args.only)
    targets, skipped = _select_targets(args.layers)
    if not targets:
        raise SystemExit("no layer to benchmark: " + "; ".join(t.unavailable for t in skipped))
    with_memory = args.only is None or MEMORY in [w.upper() for w in args.only]
    cases: list[tuple[Workload, Case]] = [(w, c) for w in workloads for c in w.cases(args.quick)]

    def log(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    for target in skipped:
        log(f"skipping {target.key}: {target.unavailable}")
    mode = "quick" if args.quick else "full"
    log(f"bench ({mode}, {repetitions} repetition(s)): {', '.join(t.key for t in targets)}")
    started = time.perf_counter()
    # One untimed pass at quick sizes first: the first runs in a process are slower
    # (allocator growth, cold caches, script loading), and that must not land in the first
    # repetition. Cross-process workloads start fresh processes each run: nothing to warm.
    # A quick run is a smoke run whose figures nobody compares: it would only run twice.
    if not args.quick:
        warm = [(w, c) for w in workloads if not w.requires for c in w.cases(True)]
        run_plan(Plan(warm, targets, 1, args.stall, args.limit), lambda text: None)
    plan = Plan(cases, targets, repetitions, args.stall, args.limit)
    cells = run_plan(plan, log) if cases else []
    memory = []
    if with_memory:
        log("memory probe: idle channels, one fresh process per layer")
        memory = measure_memory(targets, channels=1_000 if args.quick else 10_000)
    wall = time.perf_counter() - started

    ratios = compute_ratios(cases, targets, cells)
    if cases:
        print(render_table(cases, targets, cells, ratios))
    if memory:
        print("\n" + render_memory(memory))
    for target in skipped:
        print(f"not run: {target.key} ({target.unavailable})")
    settings = {
        "quick": args.quick,
        "repetitions": repetitions,
        "stall_seconds": args.stall,
        "limit_seconds": args.limit,
        "wall_seconds": round(wall, 2),
        "argv": list(sys.argv[1:] if argv is None else argv),
    }
    document = to_json(cases, targets, skipped, cells, ratios, settings)
    document["memory"] = [{**dataclasses.asdict(m), "held_mib": m.held_mib} for m in memory]
    write_json(document, args.json)
    print(f"\nwrote {args.json} ({wall:.1f}s)")
    chart = args.json.with_suffix(".png")
    why_not = write_chart(chart, cases, targets, cells)
    print(f"wrote {chart}" if not why_not else f"no chart: {why_not}")
    # A peer that FAILs is a finding about the peer; only a FAIL of ours fails the bench.
    ours = {t.key for t in targets if t.role == "ours"}
    failed = [
        f"{c.case} on {c.target}: {c.reason}"
        for c in cells
        if c.status == "fail" and c.target in ours
    ]
    failed += [f"RSS on {m.target}: {m.failure}" for m in memory if m.failure and m.target in ours]
    for reason in failed:
        print(f"FAIL: {reason}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

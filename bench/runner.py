"""Runs every case on every target, repeatedly, each run in a fresh event loop and layer."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import secrets
import signal
import statistics
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from time import perf_counter

from .model import Case, Cell, Layer, Measurement, RunContext, Stat, WorkloadFailed
from .targets import Target
from .workloads import Workload

__all__ = ["Plan", "applicability", "run_plan"]


@dataclass(frozen=True)
class Plan:
    """What to run and how often."""

    cases: list[tuple[Workload, Case]]
    targets: list[Target]
    repetitions: int
    stall_seconds: float
    limit_seconds: float


def applicability(workload: Workload, case: Case, target: Target) -> str:
    """'' if case runs on target, else why not (shown as n/a)."""
    if target.runs:
        if case.key in target.runs:
            return ""
        return f"{target.key} is a ceiling measured for {', '.join(target.runs)} only"
    missing = sorted(workload.requires - target.capabilities)
    if missing:
        needs = " and ".join(missing)
        return f"{workload.key} needs a {needs} layer; an in-process layer cannot run it"
    if case.run is None:
        return case.missing or "not implemented"
    return ""


def _stats(runs: list[Measurement], workload: Workload) -> dict[str, Stat]:
    stats: dict[str, Stat] = {}
    for figure in workload.figures:
        samples = tuple(run[figure.key] for run in runs)
        stats[figure.key] = Stat(statistics.median(samples), min(samples), max(samples), samples)
    return stats


@contextlib.contextmanager
def _alarm(seconds: float) -> Iterator[None]:
    """Last resort: a run whose event loop hangs (a task that ignores cancel at shutdown)
    is interrupted after `seconds`, so one stuck layer cannot stall the whole bench."""
    if not hasattr(signal, "SIGALRM") or threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: object) -> None:
        raise WorkloadFailed(f"hung: the run did not end within {seconds:.0f}s")

    previous = signal.signal(signal.SIGALRM, interrupt)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _not_a_layer() -> Layer:
    raise TypeError("this target is not a channel layer")


def _run_once(case: Case, target: Target, plan: Plan, log: Callable[[str], None]) -> Measurement:
    """One run in a fresh event loop, under a fresh key prefix that is cleaned up after."""
    prefix = f"bench-{secrets.token_hex(6)}"
    factory = partial(target.factory, prefix) if target.factory is not None else _not_a_layer
    ctx = RunContext(factory, plan.stall_seconds, plan.limit_seconds, target.key, prefix)
    custom = target.runs.get(case.key)
    if custom is not None:
        run = custom(ctx, case.params)
    else:
        assert case.run is not None
        run = case.run(ctx)
    gc.collect()
    try:
        with _alarm(plan.limit_seconds + 60):
            return asyncio.run(run)
    finally:
        if target.cleanup is not None:
            try:
                target.cleanup(prefix)
            except Exception as exc:  # a failed cleanup must not hide the run's outcome
                log(f"  could not delete the keys under {prefix}: {type(exc).__name__}: {exc}")


def run_plan(plan: Plan, log: Callable[[str], None]) -> list[Cell]:
    """Run the plan; repetitions are interleaved across targets to spread drift evenly."""
    cells: dict[tuple[str, str], Cell] = {}
    runs: dict[tuple[str, str], list[Measurement]] = {}
    for workload, case in plan.cases:
        for target in plan.targets:
            key = (case.key, target.key)
            why = applicability(workload, case, target)
            cells[key] = Cell(case.key, target.key, "n/a" if why else "ok", why)
            runs[key] = []

    for rep in range(1, plan.repetitions + 1):
        for _, case in plan.cases:
            for target in plan.targets:
                cell = cells[(case.key, target.key)]
                if cell.status != "ok":  # n/a, or already failed: a FAIL stays a FAIL
                    continue
                where = f"{case.key} on {target.key}, run {rep}/{plan.repetitions}"
                start = perf_counter()
                try:
                    measurement = _run_once(case, target, plan, log)
                except WorkloadFailed as exc:
                    cell.status, cell.reason = "fail", f"{exc} (run {rep})"
                except Exception as exc:  # a crashing layer is a FAIL, not a crashed bench
                    cell.status = "fail"
                    cell.reason = f"error: {type(exc).__name__}: {exc} (run {rep})"
                else:
                    runs[(case.key, target.key)].append(measurement)
                took = perf_counter() - start
                cell.seconds += took
                outcome = "FAIL: " + cell.reason if cell.status == "fail" else "ok"
                log(f"  {where}: {outcome} ({took:.2f}s)")

    by_case = {case.key: workload for workload, case in plan.cases}
    for (case_key, _), cell in cells.items():
        if cell.status == "ok":
            cell.stats = _stats(runs[(case_key, cell.target)], by_case[case_key])
    return list(cells.values())

"""bench.abba's comparison of interleaved runs, on made-up samples."""

from __future__ import annotations

from bench.abba import Run, compare, rows_of


def test_compare_reports_speed_pooled_and_per_round() -> None:
    # Round 0 ran before then after, round 1 after then before (ABBA).
    runs = [
        Run("before", {"W4 ours rate": [100.0, 100.0], "W2 ours p50": [2.0, 2.0]}),
        Run("after", {"W4 ours rate": [110.0, 110.0], "W2 ours p50": [1.0, 1.0]}),
        Run("after", {"W4 ours rate": [45.0, 45.0], "W2 ours p50": [4.0, 4.0]}),
        Run("before", {"W4 ours rate": [50.0, 50.0], "W2 ours p50": [4.0, 4.0]}),
    ]
    rate, latency = compare(runs, "before", "after")
    # Pooled: median 77.5 against 75; per round 1.10 and 0.90.
    assert rate.split()[3:5] == ["1.033", "[0.450-2.200]"]
    assert rate.endswith("per round 1.000: 1.10 0.90")
    # A latency halved is twice the speed; an equal one, the same.
    assert latency.endswith("per round 1.500: 2.00 1.00")


def test_rows_of_takes_the_samples_of_runs_that_passed() -> None:
    report = {
        "results": [
            {"case": "W4", "target": "ours", "status": "ok", "figures": {"rate": {"samples": [1]}}},
            {"case": "W5", "target": "ours", "status": "FAIL", "figures": {}},
        ]
    }
    assert rows_of(report) == {"W4 ours rate": [1]}

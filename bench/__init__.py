"""Benchmarks: workloads W1-W5 (DESIGN.md section 6) against our layers and the peers.

Run ``python -m bench`` from the repository root; ``python -m bench --help`` lists the options.
"""

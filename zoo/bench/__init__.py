"""The benchmark harness: plan the grid, run one combination, time it, report and compare."""

from zoo.bench.plan import BenchResult, bench

__all__ = ["BenchResult", "bench"]

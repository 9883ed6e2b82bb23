"""The timing core of the bench harness: statistics, warm-up, blocks and synchronisation."""

from __future__ import annotations

import time

import numpy as np
import pytest

from zoo.bench.timing import Measurement, measure, quantile


@pytest.mark.parametrize("q", [0.0, 0.1, 0.25, 0.5, 0.9, 0.99, 1.0])
def test_quantile_matches_numpy_linear_interpolation(q):
    values = [5.0, 1.0, 9.0, 3.0, 7.0, 2.0]
    assert quantile(values, q) == pytest.approx(np.quantile(values, q))


def test_quantile_of_nothing_is_an_error():
    with pytest.raises(ValueError):
        quantile([], 0.5)


def test_measurement_statistics_and_noise_flag():
    steady = Measurement(times=(1.0, 1.0, 1.01, 1.02, 0.99), block=1)
    assert steady.median == 1.0
    assert steady.p90 == pytest.approx(np.quantile(steady.times, 0.9))
    assert steady.p99 == pytest.approx(np.quantile(steady.times, 0.99))
    assert steady.iqr == pytest.approx(0.01)
    assert not steady.noisy

    noisy = Measurement(times=(1.0, 1.0, 1.5, 2.0, 0.8), block=4)
    assert noisy.relative_iqr > 0.10
    assert noisy.noisy
    summary = noisy.to_dict()
    assert summary["block"] == 4 and summary["samples"] == 5 and summary["noisy"] is True


def test_measure_warms_up_then_times_blocks_with_sync_around_each():
    events: list[str] = []

    def fn():
        events.append("call")

    def sync():
        events.append("sync")

    m = measure(fn, min_run_time=0.01, warmup=0.0, min_samples=4, sync=sync)
    assert len(m.times) >= 4
    assert m.block >= 1
    # Warm-up: at least two calls, each followed by a sync, before any timed block.
    assert events[:4] == ["sync", "call", "sync", "call"]
    # Each timed block is: sync, block calls, sync.
    timed = events[-(len(m.times) * (m.block + 2)) :]
    for i in range(len(m.times)):
        chunk = timed[i * (m.block + 2) : (i + 1) * (m.block + 2)]
        assert chunk == ["sync"] + ["call"] * m.block + ["sync"]


def test_measure_reports_per_call_time_of_a_sleeping_function():
    # time.sleep never returns early, so every per-call time is at least the sleep itself.
    m = measure(lambda: time.sleep(0.002), min_run_time=0.02, warmup=0.0, min_samples=3)
    assert min(m.times) >= 0.002
    assert m.block >= 1


def test_measure_stops_a_slow_callable_after_max_run_time():
    calls = []
    m = measure(
        lambda: calls.append(time.sleep(0.01)),
        min_run_time=0.005,
        warmup=0.0,
        min_samples=1000,
        max_run_time=0.03,
    )
    assert 2 <= len(m.times) < 1000


def test_measure_rejects_a_non_positive_run_time():
    with pytest.raises(ValueError):
        measure(lambda: None, min_run_time=0)

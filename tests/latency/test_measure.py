import pytest

from edgekd.latency import time_calls


def test_counts_calls_and_percentile_order():
    calls = []
    r = time_calls(lambda: calls.append(1), warmup=5, iters=40, batch=4, threads=2, runtime="x")
    assert len(calls) == 45
    assert r.min_ms <= r.p50_ms <= r.p90_ms <= r.p99_ms
    assert r.at(90) == r.p90_ms and r.at(50) == r.p50_ms
    assert r.throughput_ips == pytest.approx(4 * 1e3 / r.mean_ms)
    assert r.to_dict()["threads"] == 2 and r.measured

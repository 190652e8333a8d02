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


def _rep(p50: float, p90: float):
    from edgekd.latency.measure import LatencyReport

    return LatencyReport(min_ms=p50 * 0.9, p50_ms=p50, p90_ms=p90, p99_ms=p90 * 1.1,
                         mean_ms=p50, throughput_ips=1e3 / p50, batch=1, threads=1, warmup=1,
                         iters=10, runtime="fake")  # fmt: skip


def test_interference_is_a_p90_over_one_and_a_half_medians():
    from edgekd.latency.measure import interference

    assert interference(_rep(2.0, 3.0)) is None  # exactly 1.5x: not yet noisy
    why = interference(_rep(3.1, 24.3))  # the figures: p90 7.8x the median
    assert why.startswith("p90 24.3 ms is 7.8x the median 3.1 ms (min 2.79 ms)")


def test_measure_steady_remeasures_while_noisy_and_keeps_the_lowest_p90():
    from edgekd.latency.measure import measure_steady

    runs = iter([_rep(3.0, 24.0), _rep(3.0, 9.0), _rep(3.0, 3.3), _rep(3.0, 3.1)])
    got = measure_steady(lambda: next(runs))
    assert (got.p90_ms, got.attempts, got.noise) == (3.3, 3, None)  # stopped once clean
    runs = iter([_rep(3.0, 24.0), _rep(3.0, 9.0), _rep(3.0, 12.0)])
    got = measure_steady(lambda: next(runs))  # noisy every time: the best, flagged
    assert (got.p90_ms, got.attempts) == (9.0, 3) and got.noise.startswith("p90 9 ms is 3.0x")


def test_interleaved_times_every_variant_once_a_round_in_a_rotated_order():
    from edgekd.latency.measure import interleaved

    calls = []

    def measure(i, r):
        calls.append((i, r))
        return 10.0 * r + i

    out = interleaved(3, 3, measure)
    # round r starts at variant r (mod 3) and visits each once
    assert calls == [(0, 0), (1, 0), (2, 0), (1, 1), (2, 1), (0, 1), (2, 2), (0, 2), (1, 2)]
    assert out == [[0.0, 10.0, 20.0], [1.0, 11.0, 21.0], [2.0, 12.0, 22.0]]

"""Local latency measurement: warm-up, fixed iterations, percentiles. A latency is only a
latency with its thread count, warm-up, iteration count and percentile; all travel together."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class LatencyReport:
    """Wall-clock latency of one inference call, in milliseconds."""

    min_ms: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    throughput_ips: float  # inferences (samples) per second at this batch size
    batch: int
    threads: int
    warmup: int
    iters: int
    runtime: str
    measured: bool = True  # False when predicted by a cost model

    def at(self, percentile: int) -> float:
        return {50: self.p50_ms, 90: self.p90_ms, 99: self.p99_ms}[percentile]

    def to_dict(self) -> dict:
        return asdict(self)


def time_calls(
    fn: Callable[[], object], *, warmup: int, iters: int, batch: int, threads: int, runtime: str
) -> LatencyReport:
    """Call `fn` `warmup` times untimed, then `iters` times timed with perf_counter."""
    for _ in range(warmup):
        fn()
    times = np.empty(iters)
    for i in range(iters):
        t0 = time.perf_counter()
        fn()
        times[i] = (time.perf_counter() - t0) * 1e3
    p50, p90, p99 = np.percentile(times, [50, 90, 99])
    return LatencyReport(
        min_ms=float(times.min()),
        p50_ms=float(p50),
        p90_ms=float(p90),
        p99_ms=float(p99),
        mean_ms=float(times.mean()),
        throughput_ips=float(batch * 1e3 / times.mean()),
        batch=batch,
        threads=threads,
        warmup=warmup,
        iters=iters,
        runtime=runtime,
    )

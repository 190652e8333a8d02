"""Local latency measurement: warm-up, fixed iterations, percentiles. A latency is only a
latency with its thread count, warm-up, iteration count and percentile; all travel together."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace

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
    attempts: int = 1  # measurements taken (`measure_steady`): more when the first was noisy
    noise: str | None = None  # why the kept figure is unreliable (`interference`), if it is

    def at(self, percentile: int) -> float:
        return {50: self.p50_ms, 90: self.p90_ms, 99: self.p99_ms}[percentile]

    def to_dict(self) -> dict:
        return asdict(self)


NOISY_RATIO = 1.5  # p90 over the median beyond which a latency is called noisy


def interference(rep: LatencyReport) -> str | None:
    """Why `rep` looks disturbed by other work on the machine, or None. The same inference
    repeated on an otherwise idle CPU takes nearly the same time each call; a p90 over
    NOISY_RATIO x the median means a tenth of the calls waited for the CPU, and a budget
    decided on p90 would be decided on that wait (issue 25: p90 24.3 ms, min 3.1 ms)."""
    if rep.p50_ms > 0 and rep.p90_ms > NOISY_RATIO * rep.p50_ms:
        return (f"p90 {rep.p90_ms:.3g} ms is {rep.p90_ms / rep.p50_ms:.1f}x the median "
                f"{rep.p50_ms:.3g} ms (min {rep.min_ms:.3g} ms): other work on this machine "
                "(or on its VM host) interfered")  # fmt: skip
    return None


def interleaved(n: int, rounds: int, measure: Callable[[int, int], float]) -> list[list[float]]:
    """`measure(i, round)` for each of `n` variants in `rounds` rounds, every variant once per
    round and the order rotated each round, so that a burst of other work on a shared machine
    falls on several variants once rather than on one variant's every run. Returns each
    variant's figures, one per round."""
    out: list[list[float]] = [[] for _ in range(n)]
    for r in range(rounds):
        for j in range(n):
            i = (j + r) % n
            out[i].append(measure(i, r))
    return out


def measure_steady(measure: Callable[[], LatencyReport], retries: int = 2) -> LatencyReport:
    """`measure()` again (up to `retries` more times) while it is noisy (`interference`);
    keeps the attempt with the lowest p90 and says how many were taken, and, if even that one
    is noisy, why (`LatencyReport.noise`)."""
    best = measure()
    attempts = 1
    while interference(best) is not None and attempts <= retries:
        again = measure()
        attempts += 1
        best = min(best, again, key=lambda r: r.p90_ms)
    return replace(best, attempts=attempts, noise=interference(best))


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

"""Latency: local measurement (and, later, the per-node cost model and remote devices)."""

from edgekd.latency.measure import LatencyReport, time_calls

__all__ = ["LatencyReport", "time_calls"]

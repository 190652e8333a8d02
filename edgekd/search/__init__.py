"""Training-free, latency-constrained student search (`edgekd search`, `--student search`)."""

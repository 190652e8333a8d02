"""The roofline cost model: per-layer and total latency of an ONNX model on a target profile.

Each layer takes `max(compute time, memory time) + fixed overhead`:
- compute time = FLOPs / (peak[precision] x efficiency[op class]) (x int8 scale for INT8);
  on a GPU with `gpu_sms`, a dense convolution or matrix product takes at least the time of
  `sm_fill_mflops` per SM at the tensor-core rate (with fewer tiles than SMs, some SMs idle
  at batch 1, whatever the precision),
- memory time = bytes moved / (bandwidth x bandwidth efficiency),
- overhead = the profile's per-layer launch / dispatch cost.
The profile's efficiencies are fitted to measurements (host) or published figures (Jetson).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path

from edgekd.errors import InputError
from edgekd.latency.graph import Layer, costed_layers, is_quantized, load_onnx
from edgekd.latency.layer_table import load_table, signature
from edgekd.targets import CostModelParams, TargetProfile

# what runs as tiled matrix products: a layer with too few tiles to give every SM one takes
# as long as one that has enough (`fill_floor_s`), whatever its precision
TILED = ("dense_conv", "gemm")


@dataclass(frozen=True)
class LayerCost:
    name: str
    op: str
    op_class: str
    precision: str
    flops: float
    bytes: float
    ms: float
    bound: str  # compute | memory | fill | overhead | measured (from the target's layer table)
    fused: tuple[str, ...] = ()


@dataclass(frozen=True)
class LatencyPrediction:
    """Predicted batch-1 latency of one model on one target."""

    target: str
    precision: str
    total_ms: float
    layers: tuple[LayerCost, ...]
    seconds_to_predict: float
    range_ms: tuple[float, float] | None = None  # from the profile's held-out error
    range_coverage: float | None = None

    @property
    def flops(self) -> float:
        return sum(lc.flops for lc in self.layers)

    def top(self, n: int = 10) -> list[LayerCost]:
        return sorted(self.layers, key=lambda lc: lc.ms, reverse=True)[:n]

    def to_dict(self, top: int | None = None) -> dict:
        rows = self.top(top) if top else list(self.layers)
        return {
            "target": self.target,
            "precision": self.precision,
            "total_ms": self.total_ms,
            "range_ms": list(self.range_ms) if self.range_ms else None,
            "range_coverage": self.range_coverage,
            "measured": False,
            "gflops": self.flops / 1e9,
            "layers_costed": len(self.layers),
            "layers_from_measurements": sum(lc.bound == "measured" for lc in self.layers),
            "layers": [asdict(lc) for lc in rows],
        }


def layer_ms(layer: Layer, target: TargetProfile, params: CostModelParams) -> tuple[float, str]:
    """Milliseconds for one layer, and what bounds it."""
    peak = target.peak_tops.get(layer.precision) or target.peak_tops["fp32"]
    eff = params.efficiency[layer.op_class]
    if layer.precision == "int8":
        eff *= params.int8_efficiency_scale
    compute_s = layer.flops / (peak * 1e12 * eff)
    memory_s = layer.bytes / (target.memory_bandwidth_gbs * 1e9 * params.bandwidth_efficiency)
    overhead_s = params.layer_overhead_us * 1e-6
    fill_s = fill_floor_s(target, params) if layer.op_class in TILED else 0.0
    body = max(compute_s, memory_s, fill_s)
    if overhead_s > body:
        bound = "overhead"
    elif fill_s >= max(compute_s, memory_s):
        bound = "fill"
    else:
        bound = "compute" if compute_s >= memory_s else "memory"
    return (body + overhead_s) * 1e3, bound


def fill_floor_s(target: TargetProfile, params: CostModelParams) -> float:
    """The least time of a tiled layer (dense conv, GEMM) on a GPU: one tile of
    `sm_fill_mflops` per SM at the tensor-core rate (FP16 peak per SM x the dense
    efficiency); 0 where the target has no SM count or the profile no fill."""
    if not (target.gpu_sms and params.sm_fill_mflops):
        return 0.0
    tensor = target.peak_tops.get("fp16") or target.peak_tops["fp32"]
    work = target.gpu_sms * params.sm_fill_mflops * 1e6
    return work / (tensor * 1e12 * params.efficiency["dense_conv"])


def predict_layers(
    layers: list[Layer],
    target: TargetProfile,
    params: CostModelParams | None = None,
    table: dict[str, float] | None = None,
) -> list[LayerCost]:
    """Each layer's time: measured (the target's layer table) when its signature is known,
    the roofline otherwise."""
    params = params or target.cost_model
    table = table or {}
    if params is None:
        raise InputError(
            f"target {target.name!r} has no cost model",
            fix="measure on the device, or add "
            "cost_model to its profile (edgekd profile --calibrate for the host)",
        )
    out = []
    for layer in layers:
        known = table.get(signature(layer))
        ms, bound = (known, "measured") if known is not None else layer_ms(layer, target, params)
        out.append(
            LayerCost(
                layer.name,
                layer.op,
                layer.op_class,
                layer.precision,
                layer.flops,
                layer.bytes,
                ms,
                bound,
                tuple(layer.fused),
            )
        )
    return out


def predict_latency(
    onnx_path: str | Path, target: TargetProfile, precision: str | None = None
) -> LatencyPrediction:
    """Predict batch-1 latency of `onnx_path` on `target`.

    Args:
        precision: how the target's runtime would build it: None keeps the graph's own
            precisions (Q/DQ layers INT8, the rest FP32); fp16 or int8 build a float graph as
            TensorRT's --fp16 / --int8 would (a Q/DQ graph stays quantized).
    """
    t0 = time.perf_counter()
    model = load_onnx(onnx_path)
    layers = costed_layers(model, target, precision)
    costs = predict_layers(layers, target, table=load_table(target.name))
    label = precision or ("int8" if is_quantized(model) else "fp32")
    total = sum(c.ms for c in costs)
    band = target.prediction_range
    return LatencyPrediction(
        target.name,
        label,
        total,
        tuple(costs),
        time.perf_counter() - t0,
        band.of(total) if band else None,
        band.coverage if band else None,
    )

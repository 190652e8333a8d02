"""Fit a target's cost-model efficiencies to measured latencies (least squares on log latency).

`calibrate_host()` measures a fixed, varied set of timm models on this machine with ONNX
Runtime (FP32 and Model Optimizer INT8 Q/DQ), then fits the host profile's per-op-class
efficiencies, INT8 scale, bandwidth efficiency and per-layer overhead.
"""

from __future__ import annotations

import contextlib
import io
import math
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgekd.latency.cost import layer_ms
from edgekd.latency.graph import Layer, graph_layers, load_onnx
from edgekd.latency.measure import interleaved
from edgekd.targets import OP_CLASSES, CostModelParams, TargetProfile

# varied families: residual, mobile (depthwise + SE), NAS, regnet, lcnet, ghost, convnext, vit
CALIBRATION_MODELS = (
    "resnet18",
    "mobilenetv3_large_100",
    "efficientnet_b0",
    "regnetx_004",
    "lcnet_100",
    "ghostnet_100",
    "convnext_atto",
    "vit_tiny_patch16_224",
)
# a disjoint set, for checking the fit (benchmarks/latency_model.py)
HELDOUT_MODELS = (
    "resnet34",
    "mobilenetv3_small_100",
    "efficientnet_lite0",
    "regnetx_002",
    "lcnet_050",
    "mobilenetv2_100",
    "convnext_femto",
    "resnet10t",
    "ghostnet_050",
    "deit_tiny_patch16_224",
)
CALIBRATION_SHAPE = (3, 128, 128)
CALIBRATION_ROUNDS = 3  # edgekd profile --calibrate; the benchmark takes 5


@dataclass
class Sample:
    """One model at one precision: its costed layers and its measured latency."""

    model: str
    precision: str
    layers: list[Layer]
    measured_ms: float  # the median over rounds of each round's p50
    onnx_path: str = ""
    rounds: tuple[float, ...] = ()  # each round's p50, in the order measured

    @property
    def spread_pct(self) -> float:
        """(slowest - fastest round) / median, in percent: 0 for one round."""
        if not self.rounds:
            return 0.0
        return (max(self.rounds) - min(self.rounds)) / self.measured_ms * 100


def export_timm(name: str, shape: tuple[int, int, int], out_dir: Path, int8: bool) -> Path:
    """FP32 or Model Optimizer INT8 Q/DQ ONNX of a randomly initialised timm model."""
    import timm
    import torch

    from edgekd.export import export_onnx

    torch.manual_seed(0)
    kwargs = {"img_size": shape[1]} if "patch16" in name else {}
    model = timm.create_model(name, pretrained=False, **kwargs).eval()
    path = out_dir / f"{name}-{'int8' if int8 else 'fp32'}.onnx"
    if int8:
        from torch.utils.data import TensorDataset

        from edgekd.quant import quantize_int8

        calib = TensorDataset(torch.randn(8, *shape), torch.zeros(8, dtype=torch.long))
        with contextlib.redirect_stdout(io.StringIO()):
            model = quantize_int8(model, calib, batch_size=8)
    export_onnx(model, path, shape)
    return path


def measure_samples(
    names,
    target: TargetProfile,
    shape=CALIBRATION_SHAPE,
    threads: int = 1,
    warmup: int = 10,
    iters: int = 40,
    workdir: Path | None = None,
    progress=None,
    repeats: int = 1,
) -> list[Sample]:
    """Export, cost and time every model in `names` at FP32 and INT8 on this machine.

    With `repeats` > 1 the models are timed in rounds, interleaved (every model once per
    round, the order rotated each round), so a burst of other work on a shared machine falls
    on several models once rather than on one model's every run; each sample keeps the median
    of its rounds' p50 and their spread."""
    import statistics

    from edgekd.backends import onnxruntime as ortb

    ctx = tempfile.TemporaryDirectory() if workdir is None else contextlib.nullcontext(workdir)
    with ctx as d:
        d = Path(d)
        d.mkdir(parents=True, exist_ok=True)
        todo = []
        for name in names:
            for prec in ("fp32", "int8"):
                if prec in target.precisions:
                    path = export_timm(name, shape, d, int8=prec == "int8")
                    todo.append((name, prec, path, graph_layers(load_onnx(path), target.runtime)))

        def once(i: int, r: int) -> float:
            name, prec, path, _ = todo[i]
            rep = ortb.profile(path, shape, threads=threads, warmup=warmup, iters=iters)
            if progress:
                progress(
                    f"  round {r + 1}/{repeats} {name} {prec}: {rep.p50_ms:.2f} ms "
                    f"(p50, {threads} thread)"
                )
            return rep.p50_ms

        rounds = interleaved(len(todo), repeats, once)
    return [
        Sample(name, prec, layers, statistics.median(times), str(path), tuple(times))
        for (name, prec, path, layers), times in zip(todo, rounds, strict=True)
    ]


# the fitted parameters, as logs: the four efficiencies, INT8 scale, layer overhead (us),
# bandwidth efficiency, and for GPUs the SM fill (MFLOPs per SM); and their bounds
THETA_FIELDS = (
    *OP_CLASSES, "int8_efficiency_scale", "layer_overhead_us", "bandwidth_efficiency",
    "sm_fill_mflops",
)  # fmt: skip
THETA_LOW = np.log([1e-4] * 4 + [0.05, 0.01, 0.05, 0.01])
THETA_HIGH = np.log([1.0] * 4 + [4.0, 1000.0, 1.0, 1000.0])
PRIOR_SM_FILL_MFLOPS = 5.0  # about one 128x64-output tile of a 3x3x64 convolution per SM


def theta_of(p: CostModelParams, gpu: bool = False) -> np.ndarray:
    """The log-parameter vector of `p` (8 entries with `gpu`, else 7), inside the bounds."""
    values = [p.efficiency[c] for c in OP_CLASSES] + [
        p.int8_efficiency_scale, max(p.layer_overhead_us, 0.1), p.bandwidth_efficiency
    ]  # fmt: skip
    if gpu:
        values.append(p.sm_fill_mflops or PRIOR_SM_FILL_MFLOPS)
    n = len(values)
    return np.clip(np.log(values), THETA_LOW[:n] + 1e-6, THETA_HIGH[:n] - 1e-6)


def params_of(theta: np.ndarray) -> CostModelParams:
    v = np.exp(theta)
    return CostModelParams(
        efficiency={c: float(min(v[i], 1.0)) for i, c in enumerate(OP_CLASSES)},
        int8_efficiency_scale=float(min(v[4], 4.0)),
        layer_overhead_us=float(v[5]),
        bandwidth_efficiency=float(min(v[6], 1.0)),
        sm_fill_mflops=float(min(v[7], 1000.0)) if len(v) > 7 else 0.0,
    )


def predict_sample(s: Sample, target: TargetProfile, params: CostModelParams) -> float:
    return sum(layer_ms(layer, target, params)[0] for layer in s.layers)


def fit_params(samples: list[Sample], target: TargetProfile) -> tuple[CostModelParams, dict]:
    """Least squares on log latency over all samples; returns the params and the fit error."""
    from scipy.optimize import least_squares

    def residuals(theta):
        p = params_of(theta)
        return [math.log(predict_sample(s, target, p)) - math.log(s.measured_ms) for s in samples]

    start = target.cost_model or CostModelParams(
        efficiency=dict.fromkeys(OP_CLASSES, 0.2), layer_overhead_us=5, bandwidth_efficiency=0.5
    )
    res = least_squares(residuals, theta_of(start), bounds=(THETA_LOW[:7], THETA_HIGH[:7]))
    params = params_of(res.x)
    return params, error_stats(samples, target, params)


def error_stats(samples: list[Sample], target: TargetProfile, params: CostModelParams) -> dict:
    from scipy.stats import spearmanr

    pred = np.array([predict_sample(s, target, params) for s in samples])
    meas = np.array([s.measured_ms for s in samples])
    ape = np.abs(pred - meas) / meas * 100
    return {
        "samples": len(samples),
        "median_abs_pct_error": float(np.median(ape)),
        "max_abs_pct_error": float(ape.max()),
        "spearman": float(spearmanr(pred, meas).statistic) if len(samples) > 2 else float("nan"),
        "rows": [
            {
                "model": s.model,
                "precision": s.precision,
                "measured_ms": float(m),
                "predicted_ms": float(p),
            }
            for s, m, p in zip(samples, meas, pred, strict=True)
        ],
    }


def calibrate_host(
    target: TargetProfile, *, names=None, threads: int | None = None, progress=None
) -> tuple[CostModelParams, dict]:
    """Measure `names` (default CALIBRATION_MODELS) here and fit `target`'s cost model."""
    names = tuple(names or CALIBRATION_MODELS)
    threads = threads or target.threads or 1
    samples = measure_samples(
        names, target, threads=threads, progress=progress, repeats=CALIBRATION_ROUNDS
    )
    params, stats = fit_params(samples, target)
    stats.update(
        models=list(names),
        shape=list(CALIBRATION_SHAPE),
        threads=threads,
        statistic=f"median over {CALIBRATION_ROUNDS} interleaved rounds of the p50 of 40 runs "
        "after 10 warm-up",
    )
    return params, stats

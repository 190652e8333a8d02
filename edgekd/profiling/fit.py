"""The TensorRT profiles' cost models, fitted to published figures and checked on held-out ones.

- **Stand-ins.** Each figure's model is rebuilt here from its `standin` (torchvision or timm,
  random weights: latency does not depend on them), exported to ONNX at the published input
  size and costed as the device's TensorRT would build it (`--fp16`, or `--int8` on a float
  graph: implicit INT8 with FP16 fallback).
- **One parameter set per architecture.** Devices with the same GPU architecture (compute
  capability: the Orin modules are all sm_87) share the eight cost-model parameters
  (efficiency per op class, INT8 scale, per-layer overhead, bandwidth efficiency, and the
  work per SM a layer needs to fill the GPU). What differs between them is each profile's own
  peak throughput (clocks and core counts), SM count and memory bandwidth, so one module's
  figures inform its siblings': a 16-SM AGX Orin is not 2.8x an 8-SM Orin NX on a small
  layer, only its clock ratio faster.
- **Fit.** Least squares on log latency, each group of re-measurements (`Figure.group`)
  weighted as one figure, with a ridge pull (`RIDGE`) on the log parameters toward the
  family's prior (`PRIORS`): a family with few figures stays near it.
- **Held-out error.** Leave one group out: fit on every other figure of the family, predict
  the group. A device whose only figures are one group is predicted from its siblings alone.
- **Range.** The 10th and 90th percentiles of the held-out ratios published / predicted
  (over the family, or over every family when it has fewer than `MIN_RANGE_GROUPS`) give the
  profile's `prediction_range`: a prediction of t ms is read as [low x t, high x t].
"""

from __future__ import annotations

import contextlib
import io
import math
import statistics
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgekd.latency.cost import TILED
from edgekd.latency.graph import Layer, graph_layers, load_onnx
from edgekd.profiling.calibrate import THETA_HIGH, THETA_LOW, params_of, theta_of
from edgekd.profiling.evidence import Figure
from edgekd.targets import OP_CLASSES, CostModelParams, TargetProfile

RIDGE = 0.02  # weight of the pull toward the priors, per log parameter, against one group
# (held-out median error over the evidence: 12.5% at 0.001-0.005, 12.7% at 0.02, 14.0% at
# 0.05, 15.5% at 0.1, 18.7% at 0.5; 0.02 keeps some pull for thin families)
COVERAGE = 0.8  # the range holds the middle 80% of held-out ratios
MIN_RANGE_GROUPS = 8  # a family with fewer held-out groups borrows every family's ratios


def family(target: TargetProfile) -> str:
    """Devices that share cost-model parameters: the same GPU architecture."""
    cc = target.compute_capability
    return f"sm_{cc.replace('.', '')}" if cc else target.name


def build_standin(spec: str):
    """`torchvision.models.NAME` or `timm:NAME` -> an eval-mode model with random weights."""
    import torch

    torch.manual_seed(0)
    if spec.startswith("timm:"):
        import timm

        return timm.create_model(spec[5:], pretrained=False).eval()
    if spec.startswith("torchvision.models."):
        import torchvision

        name = spec.removeprefix("torchvision.models.")
        kwargs = (
            {"aux_logits": False, "init_weights": False}
            if name in ("inception_v3", "googlenet")
            else {}
        )
        return torchvision.models.get_model(name, weights=None, **kwargs).eval()
    raise ValueError(f"unknown stand-in {spec!r}: use torchvision.models.NAME or timm:NAME")


def standin_onnx(spec: str, shape: tuple[int, int, int], workdir: Path) -> Path:
    """The stand-in's float ONNX at `shape` (exported once per spec and shape)."""
    from edgekd.export import export_onnx

    path = workdir / f"{spec.replace(':', '_').replace('.', '_')}-{'x'.join(map(str, shape))}.onnx"
    if not path.exists():
        workdir.mkdir(parents=True, exist_ok=True)
        with contextlib.redirect_stdout(io.StringIO()):
            export_onnx(build_standin(spec), path, shape)
    return path


def standin_layers(fig: Figure, target: TargetProfile, workdir: Path) -> list[Layer]:
    """The figure's stand-in as the device's TensorRT builds it at the figure's precision."""
    float_prec = (
        "fp32" if fig.precision == "fp32" else ("fp16" if "fp16" in target.precisions else "fp32")
    )
    model = load_onnx(standin_onnx(fig.standin, fig.shape, workdir))
    return graph_layers(model, target.runtime, float_prec, implicit_int8=fig.precision == "int8")


@dataclass
class Costed:
    """A figure with its stand-in's layers as arrays, for fast repeated prediction."""

    fig: Figure
    target: TargetProfile
    flops: np.ndarray
    bytes: np.ndarray
    op_class: np.ndarray  # index into OP_CLASSES
    int8: np.ndarray  # bool
    peak: np.ndarray  # tera-ops/s at the layer's precision
    tiled: np.ndarray  # bool: a dense conv or GEMM (cost.TILED)

    @classmethod
    def of(cls, fig: Figure, target: TargetProfile, layers: list[Layer]) -> Costed:
        peaks = target.peak_tops
        return cls(
            fig,
            target,
            np.array([lay.flops for lay in layers], dtype=float),
            np.array([lay.bytes for lay in layers], dtype=float),
            np.array([OP_CLASSES.index(lay.op_class) for lay in layers]),
            np.array([lay.precision == "int8" for lay in layers]),
            np.array([peaks.get(lay.precision) or peaks["fp32"] for lay in layers], dtype=float),
            np.array([lay.op_class in TILED for lay in layers], dtype=bool),
        )

    def predict(self, theta: np.ndarray) -> float:
        """Milliseconds under log parameters `theta`: the sum of `cost.layer_ms` over the
        layers, computed at once (the test checks the two agree)."""
        v = np.exp(theta)
        eff_c = np.minimum(v[:4], 1.0)
        eff = eff_c[self.op_class] * np.where(self.int8, min(v[4], 4.0), 1.0)
        compute = self.flops / (self.peak * 1e12 * eff)
        memory = self.bytes / (self.target.memory_bandwidth_gbs * 1e9 * min(v[6], 1.0))
        body = np.maximum(compute, memory)
        if len(v) > 7 and self.target.gpu_sms:  # see cost.fill_floor_s
            peaks = self.target.peak_tops
            tensor = peaks.get("fp16") or peaks["fp32"]
            floor = self.target.gpu_sms * min(v[7], 1000.0) * 1e6 / (tensor * 1e12 * eff_c[0])
            body = np.where(self.tiled, np.maximum(body, floor), body)
        return float(np.sum(body + v[5] * 1e-6) * 1e3)


# Each family's prior: the mean of its profiles' parameters before the first evidence fit
# (edgekd 56d0c32: one published figure per device, scaled from device-specs.md's priors),
# plus the SM fill prior. Fixed here, so that refitting reproduces the same numbers.
PRIORS = {
    "sm_53": CostModelParams(
        efficiency={"dense_conv": 0.7063, "depthwise_conv": 0.0785, "gemm": 0.4905,
                    "elementwise": 0.0491},
        int8_efficiency_scale=1.0, layer_overhead_us=15.0, bandwidth_efficiency=0.7,
    ),
    "sm_72": CostModelParams(
        efficiency={"dense_conv": 0.2538, "depthwise_conv": 0.0308, "gemm": 0.1923,
                    "elementwise": 0.0385},
        int8_efficiency_scale=0.7, layer_overhead_us=8.944, bandwidth_efficiency=0.7,
    ),
    "sm_87": CostModelParams(
        efficiency={"dense_conv": 0.2972, "depthwise_conv": 0.0446, "gemm": 0.2229,
                    "elementwise": 0.0446},
        int8_efficiency_scale=0.7, layer_overhead_us=2.0, bandwidth_efficiency=0.7,
    ),
}  # fmt: skip


def prior_theta(fam: str, targets: list[TargetProfile]) -> np.ndarray:
    """The family's prior (PRIORS), or for a family edgekd has no prior for, the mean log
    parameters of its members' profiles."""
    if fam in PRIORS:
        return theta_of(PRIORS[fam], gpu=True)
    return np.mean([theta_of(t.cost_model, gpu=True) for t in targets], axis=0)


def fit_family(items: list[Costed], prior: np.ndarray, ridge: float = RIDGE) -> np.ndarray:
    """Log parameters fitted to `items` (log-latency least squares, groups weighted as one
    figure, a pull of weight `ridge` toward `prior`)."""
    from scipy.optimize import least_squares

    if not items:
        return prior
    size: dict[tuple, int] = {}
    for c in items:
        size[c.fig.group] = size.get(c.fig.group, 0) + 1
    w = np.array([1 / math.sqrt(size[c.fig.group]) for c in items])
    pub = np.log([c.fig.ms for c in items])
    pull = math.sqrt(ridge)

    def residuals(theta):
        pred = np.log([c.predict(theta) for c in items])
        return np.concatenate([w * (pred - pub), pull * (theta - prior)])

    n = len(prior)
    return least_squares(residuals, prior, bounds=(THETA_LOW[:n], THETA_HIGH[:n])).x


def hold_out(items: list[Costed], prior: np.ndarray) -> list[float]:
    """Each item's prediction (ms) from a fit on the family's other groups."""
    preds: dict[int, float] = {}
    for group in dict.fromkeys(c.fig.group for c in items):
        theta = fit_family([c for c in items if c.fig.group != group], prior)
        for i, c in enumerate(items):
            if c.fig.group == group:
                preds[i] = c.predict(theta)
    return [preds[i] for i in range(len(items))]


def ratio_range(ratios: list[float], coverage: float = COVERAGE) -> tuple[float, float]:
    """(low, high): the central `coverage` of published / predicted ratios."""
    tail = (1 - coverage) / 2 * 100
    return float(np.percentile(ratios, tail)), float(np.percentile(ratios, 100 - tail))


def abs_pct(pred: float, pub: float) -> float:
    return abs(pred - pub) / pub * 100


def median_or_none(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def params_dict(theta: np.ndarray) -> CostModelParams:
    """Rounded for a profile file (4 significant digits)."""
    p = params_of(theta)
    r = lambda x: float(f"{x:.4g}")  # noqa: E731
    return CostModelParams(
        efficiency={c: r(e) for c, e in p.efficiency.items()},
        int8_efficiency_scale=r(p.int8_efficiency_scale),
        layer_overhead_us=r(p.layer_overhead_us),
        bandwidth_efficiency=r(p.bandwidth_efficiency),
        sm_fill_mflops=r(p.sm_fill_mflops),
    )


@dataclass
class FamilyFit:
    """One architecture's shared fit: its figures, the fitted and the prior parameters, and
    each figure's prediction before the fit, in the fit, and held out."""

    family: str
    members: list[str]  # every TensorRT profile of the family, with figures or not
    theta: np.ndarray
    prior: np.ndarray
    items: list[Costed]
    prior_ms: list[float]  # with the prior (the profiles before the first evidence fit)
    fitted_ms: list[float]
    held_ms: list[float]
    band: tuple[float, float] | None = None
    band_basis: str = ""
    band_figures: int = 0

    def ratios(self) -> list[float]:
        return [c.fig.ms / h for c, h in zip(self.items, self.held_ms, strict=True)]


def fit_evidence(
    figures: list[Figure],
    profiles: dict[str, TargetProfile],
    workdir: Path,
    progress=None,
) -> tuple[list[FamilyFit], list[tuple[Figure, str]]]:
    """Fit every TensorRT family's cost model to the usable figures; hold each group out.

    Returns the fits and the figures that could not be used, with the reason."""
    from edgekd.profiling.evidence import unusable

    say = progress or (lambda _m: None)
    skipped, by_family = [], {}
    for fig in figures:
        why = unusable(fig, profiles)
        if why:
            skipped.append((fig, why))
            continue
        target = profiles[fig.device]
        say(f"  costing {fig.device} {fig.label} ({fig.standin})")
        by_family.setdefault(family(target), []).append(
            Costed.of(fig, target, standin_layers(fig, target, workdir))
        )
    fits = []
    for fam, items in sorted(by_family.items()):
        members = sorted(
            n for n, t in profiles.items()
            if t.runtime == "tensorrt" and t.cost_model is not None and family(t) == fam
        )  # fmt: skip
        prior = prior_theta(fam, [profiles[m] for m in members])
        say(f"  fitting {fam} on {len(items)} figures, then holding out each group")
        theta = fit_family(items, prior)
        fits.append(
            FamilyFit(
                fam,
                members,
                theta,
                prior,
                items,
                [c.predict(prior[:7]) for c in items],
                [c.predict(theta) for c in items],
                hold_out(items, prior),
            )
        )
    pooled = [r for f in fits for r in f.ratios()]
    for f in fits:
        groups = len({c.fig.group for c in f.items})
        if groups >= MIN_RANGE_GROUPS:
            use, whose = f.ratios(), f"the {f.family} family's {len(f.items)} figures"
        else:
            use = pooled
            whose = (
                f"every family's {len(pooled)} figures ({f.family} alone has {groups} "
                f"group(s), fewer than {MIN_RANGE_GROUPS})"
            )
        f.band, f.band_figures = ratio_range(use), len(use)
        f.band_basis = (
            f"published / predicted held out, over {whose}; each model on each device at "
            "each precision left out of the fit that predicts it"
        )
    return fits, skipped

"""The `validate` stage: accuracy of the teacher and of every artifact on the held-out test set
(the val set where the data has none; val alone selects checkpoints) (ONNX Runtime
here, and where the probe builds it, on the device), latency where the probe times it;
the artifact is chosen by those numbers (pipeline/select.py) and copied to build/model.*."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np

from edgekd._io import atomic_path, sha256_file, write_json
from edgekd.backends import onnxruntime as ort_backend
from edgekd.data import stack_inputs
from edgekd.latency.cost import predict_latency
from edgekd.latency.graph import graph_layers, load_onnx
from edgekd.pipeline.context import RunContext
from edgekd.pipeline.plans import ValidatePlan
from edgekd.pipeline.rundir import RunDir
from edgekd.pipeline.select import select_variant
from edgekd.profiling.probe import Probe, choose_probe
from edgekd.progress import Tally

NAME = "validate"
OWNS = ("validate", "device")
METRICS = "validate/metrics.json"


def shipped_name(trt: bool) -> str:
    """Where the chosen artifact is copied: the ONNX a TensorRT device builds, or ORT's."""
    return "build/model.onnx" if trt else "build/model.ort.onnx"


@dataclass(frozen=True)
class Validated:
    NAME: ClassVar[str] = NAME
    metrics_file: Path
    artifact: Path  # the shipped copy of the chosen artifact
    selected: str  # its precision
    metrics: dict  # what validate/metrics.json holds (teacher, variants, choice, sources)
    figures: dict  # GFLOPs of every model and the cost model's layer table of the artifact

    def outputs(self) -> list[Path]:
        return [self.metrics_file, self.artifact]

    def to_record(self) -> dict:
        return self.metrics | {"figures": self.figures}

    @classmethod
    def from_record(cls, info: dict, run: RunDir) -> Validated:
        metrics = {k: v for k, v in info.items() if k != "figures"}
        return cls(run.path(METRICS), run.path(metrics["artifact"]["path"]), metrics["selected"],
                   metrics, info["figures"])  # fmt: skip


Result = Validated


def describe(ctx: RunContext, plan: ValidatePlan) -> str:
    return "validate accuracy and latency of every artifact"


def key(ctx: RunContext, plan: ValidatePlan) -> dict:
    remote = [plan.remote, plan.trtexec, plan.remote_python] if plan.remote else None
    return {"threads": plan.threads, "data": ctx.inputs.data.fingerprint, "warmup": plan.warmup,
            "iters": plan.iters, "budgets": ctx.budgets.model_dump(), "remote": remote,
            "ssh_option": list(plan.ssh_option) if plan.remote else None}  # fmt: skip


def _probe(ctx: RunContext, plan: ValidatePlan) -> Probe:
    return choose_probe(
        ctx.target, ctx.shape, device_dir=ctx.run.path("device"), threads=plan.threads,
        warmup=plan.warmup, iters=plan.iters, remote=plan.remote, ssh_options=plan.ssh_option,
        trtexec=plan.trtexec, python=plan.remote_python,
    )  # fmt: skip


def _teacher(ctx: RunContext, plan: ValidatePlan, teacher, probe: Probe, y: np.ndarray):
    what = "validating the teacher (FP32 ONNX)"
    logits = ort_backend.predict(teacher.path, ctx.inputs.data.report_set, threads=plan.threads,
                                 progress=Tally(ctx.reporter.message, what, "batches"))
    precision = "fp16" if ctx.trt and "fp16" in ctx.target.precisions else "fp32"
    m = {
        "path": ctx.run.rel(teacher.path),
        "precision": precision,
        "accuracy": float((logits.argmax(1) == y).mean() * 100),
        "latency": _latency(ctx, probe, teacher.path, precision,
                            f"{teacher.path.stem}-{precision}", "the teacher"),
        "size_mb": teacher.path.stat().st_size / 1e6,
        "params": teacher.params,
    }
    return m, logits.argmax(1)


def _latency(ctx: RunContext, probe: Probe, path: Path, precision: str, stem: str, what: str):
    """`probe.latency(...)`, with a warning line when the measurement stayed noisy."""
    lat = probe.latency(path, precision, stem)
    if lat.get("noise"):
        ctx.reporter.message(f"warning: the latency of {what} is unreliable after "
                             f"{lat.get('attempts', 1)} measurements: {lat['noise']}")  # fmt: skip
    return lat


def _on_device(ctx: RunContext, probe: Probe, p: str, pred, y) -> dict:
    """The artifact of precision `p` as built where it runs: its accuracy there."""
    ctx.reporter.message(f"validating the student ({p}) {probe.where}")
    got = probe.device_accuracy(f"student-{p}", ctx.inputs.data.report_set, y)
    out = {
        "device_accuracy": got["top1"],
        "device_agreement": float((got["predictions"] == pred).mean() * 100),
        "device_runtime": got["runtime"],
    }
    log = probe.runs[f"student-{p}"].get("log")
    return out | ({"trtexec_log": ctx.run.rel(log)} if log else {})


def _variants(ctx, plan, onnx, built, probe: Probe, y, t_pred) -> dict:
    arts: dict[str, dict] = {}
    logits_of: dict[Path, np.ndarray] = {}
    for p, a in built.artifacts.items():
        what = f"validating the student ({p})"
        if a.path not in logits_of:  # fp16 and fp32 engines come from one ONNX
            logits_of[a.path] = ort_backend.predict(
                a.path, ctx.inputs.data.report_set, threads=plan.threads,
                progress=Tally(ctx.reporter.message, what, "batches"))  # fmt: skip
        else:
            ctx.reporter.message(what)
        pred = logits_of[a.path].argmax(1)
        arts[p] = {
            "path": ctx.run.rel(a.path),
            "precision": p,
            "sha256": a.sha256,
            "size_mb": a.size_mb,
            "accuracy": float((pred == y).mean() * 100),
            "agreement": float((pred == t_pred).mean() * 100),
            "latency": _latency(ctx, probe, a.path, p, f"student-{p}", f"the student ({p})"),
        }
        if probe.on_device:
            arts[p].update(_on_device(ctx, probe, p, pred, y))
        par_key = onnx.shipped_int8 if p == "int8" else "fp32"
        arts[p]["parity"] = onnx.record["parity"][par_key]["top1_agreement"]
        if p == "int8":
            arts[p]["float_conv_gemm_left"] = onnx.record["float_conv_gemm_left"][par_key]
    return arts


def _accuracy_source(ctx: RunContext, plan: ValidatePlan, probe: Probe) -> str:
    here = "ONNX Runtime on this machine"
    if plan.remote is not None:
        return f"{here}; and the artifact as built {probe.where} (device_accuracy)"
    if ctx.trt:
        return f"{here}; the TensorRT engine's own accuracy is checked on the device"
    return here


def figures(ctx: RunContext, teacher_path: Path, metrics: dict) -> dict:
    """GFLOPs of the teacher, every variant and the artifact, and the cost model's per-layer
    breakdown of the shipped artifact (where the target has a cost model)."""
    target = ctx.target

    def gflops(rel: str) -> float | None:
        p = ctx.run.path(rel)
        if not p.is_file():
            return None
        return sum(la.flops for la in graph_layers(load_onnx(p), target.runtime)) / 1e9

    out: dict = {
        "teacher_gflops": gflops(ctx.run.rel(teacher_path)),
        "variant_gflops": {p: gflops(m["path"]) for p, m in metrics["student"].items()},
        "artifact_gflops": gflops(metrics["artifact"]["path"]),
        "layers": None,
    }
    if target.cost_model is not None:
        art = metrics["artifact"]
        precision = art["precision"] if ctx.trt else None
        pred = predict_latency(ctx.run.path(art["path"]), target, precision)
        out["layers"] = {
            "source": f"cost model for {target.name} ({target.runtime} {target.runtime_version})"
            + ("; the artifact's total latency above is measured" if target.measured else ""),
            "total_ms": pred.total_ms,
            "rows": [r | {"fused": list(r["fused"])} for r in pred.to_dict(top=15)["layers"]],
        }
    return out


def run(ctx: RunContext, plan: ValidatePlan, teacher, onnx, built) -> Validated:
    _, labels = stack_inputs(ctx.inputs.data.report_set)
    y = labels.numpy()
    probe = _probe(ctx, plan)
    teacher_m, t_pred = _teacher(ctx, plan, teacher, probe, y)
    arts = _variants(ctx, plan, onnx, built, probe, y, t_pred)
    choice, reason = select_variant(arts, teacher_m["accuracy"], ctx.budgets)
    final = ctx.run.path(shipped_name(ctx.trt))
    with atomic_path(final) as tmp:
        shutil.copyfile(ctx.run.path(arts[choice]["path"]), tmp)
    metrics = {
        "split": ctx.inputs.data.report_split,
        "val_samples": int(len(y)),  # images the accuracies are measured on (of `split`)
        "teacher": teacher_m,
        "student": arts,
        "selected": choice,
        "selection_reason": reason,
        "artifact": {**arts[choice], "path": ctx.run.rel(final), "sha256": sha256_file(final)},
        "latency_source": probe.source,
        "accuracy_source": _accuracy_source(ctx, plan, probe),
    }
    if facts := probe.facts():
        metrics["device_facts"] = facts
    if ctx.trt:
        from edgekd.backends.trt_build import build_mode, onnx_facts

        mode = build_mode(ctx.target, choice, onnx_facts(final))
        metrics["build_flags"] = " ".join(mode.flags)
        metrics["engine_precision"] = mode.label  # e.g. "int8 (float layers fp32)"
    path = write_json(ctx.run.path(METRICS), metrics)
    speed = teacher_m["latency"]["p90_ms"] / arts[choice]["latency"]["p90_ms"]
    metrics["summary"] = (
        f"{choice}: {arts[choice]['accuracy']:.2f}% {ctx.inputs.data.report_split} (teacher "
        f"{teacher_m['accuracy']:.2f}%), {speed:.1f}x faster at p90"
    )
    return Validated(path, final, choice, metrics, figures(ctx, teacher.path, metrics))


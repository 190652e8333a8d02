"""The `quantize` stage: INT8 fake-quant (Model Optimizer) calibrated on training images, then
QAT with the same KD loss; over the accuracy budget, the most sensitive layers go back to
float until it holds. Keeps the better of PTQ and QAT on val."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import ClassVar

import torch

from edgekd.errors import StageError
from edgekd.models import load_student
from edgekd.models.evaluate import evaluate_torch
from edgekd.pipeline.context import RunContext
from edgekd.pipeline.plans import QuantPlan
from edgekd.pipeline.rundir import RunDir
from edgekd.pipeline.stages._phase import train_phase
from edgekd.progress import Tally
from edgekd.quant import (
    count_quantizers,
    quantize_int8,
    quantizer_state,
    save_quantized,
)
from edgekd.quant.modelopt_int8 import bad_ranges
from edgekd.quant.ort_qat import ort_qdq_of
from edgekd.quant.sensitivity import layer_sensitivity, mixed_precision
from edgekd.report.text import residual_line

NAME = "quantize"
OWNS = ("distill",)
PTQ, MIXED = "distill/ptq.pt", "distill/mixed.pt"


@dataclass(frozen=True)
class QuantStudent:
    NAME: ClassVar[str] = NAME
    checkpoint: Path  # the kept fake-quant student (weights + quantizer state)
    kept: str  # ptq | qat, + "+mixed" when layers went back to float
    files: tuple[Path, ...]
    record: dict  # calibration, accuracies, sensitivity ranking, float layers, QAT history

    def outputs(self) -> list[Path]:
        return list(self.files)

    def to_record(self) -> dict:
        return self.record

    @classmethod
    def from_record(cls, info: dict, run: RunDir) -> QuantStudent:
        files = [PTQ]
        if "qat_val_acc" in info:
            files += ["distill/qat_best.pt", "distill/qat_last.pt"]
        if info["kept"].endswith("+mixed"):
            files.append(MIXED)
        return cls(run.path(info["checkpoint"]), info["kept"], tuple(map(run.path, files)), info)


Result = QuantStudent


def describe(ctx: RunContext, plan: QuantPlan) -> str:
    graph = "Model Optimizer" if ctx.trt else "ONNX Runtime's Q/DQ graph"
    return f"INT8 calibration and quantization-aware training ({graph})"


def key(ctx: RunContext, plan: QuantPlan) -> dict:
    return {"calib": asdict(plan.calib), "seed": plan.seed,
            "max_accuracy_drop": plan.max_accuracy_drop, "qat": asdict(plan.qat),
            "data": ctx.inputs.data.fingerprint, "residual": ctx.trt,
            "graph": "modelopt" if ctx.trt else "ort",
            "learn_ranges": plan.learn_ranges}  # fmt: skip


def _calibrated(ctx: RunContext, plan: QuantPlan, fp32, calib):
    """The FP32 student with INT8 quantizers calibrated on `calib`; non-finite ranges fail.
    For TensorRT: Model Optimizer's fake-quant model, whose Q/DQ export TensorRT builds. For
    ONNX Runtime: ORT's own Q/DQ graph (BatchNorm folded) as a torch module, so QAT trains
    the graph that ships (edgekd.quant.ort_qat)."""
    data = ctx.inputs.data
    student = load_student(fp32.student, data.num_classes, ctx.shape, fp32.best).to(ctx.device)
    say = ctx.reporter.message
    ranges = "learned (LSQ) from calibrated" if plan.learn_ranges else "calibrated"
    say(f"INT8 ranges {ranges} ({plan.calib.method}) on {len(calib)} training images")
    if ctx.trt and plan.learn_ranges:
        say("note: --learn-ranges trains ONNX Runtime's graph; for TensorRT the calibrated "
            "ranges are kept")  # fmt: skip
    if ctx.trt:
        # residual Adds get their skip input quantized where TensorRT fuses them
        student = quantize_int8(student, calib, batch_size=plan.batch_size,
                                method=plan.calib.method, percentile=plan.calib.percentile,
                                residual=True,
                                progress=Tally(say, "calibration", "batches"))  # fmt: skip
    else:
        student = ort_qdq_of(student.cpu(), ctx.shape, calib, plan.batch_size,
                             method=plan.calib.method, percentile=plan.calib.percentile,
                             learn_ranges=plan.learn_ranges).to(ctx.device)  # fmt: skip
        say(f"ONNX Runtime's INT8 graph: {len(student.layers)} layers and "
            f"{len(student.quants)} activation quantizers, BatchNorm folded")  # fmt: skip
    ranges = bad_ranges(student)
    fatal = {k: v for k, v in ranges.items() if v == "not finite"}
    if fatal:
        raise StageError(
            "calibration produced non-finite ranges",
            value=", ".join(sorted(fatal)[:5]),
            fix="check the calibration images and the FP32 student for NaN/inf",
        )
    for name, problem in sorted(ranges.items())[:10]:
        ctx.reporter.message(f"warning: calibration range of {name} is {problem}")
    return student, ranges


def _mixed(ctx: RunContext, plan: QuantPlan, student, calib, acc: float, info: dict, files,
           float_acc: float | None = None):  # fmt: skip
    """Per-layer sensitivity of the kept INT8 model; over the accuracy budget, the most
    sensitive layers stay in higher precision until it holds. Returns the accuracy kept.
    When the float student (`float_acc`) is itself under the goal, no layer in float can reach
    it: the search is skipped and the line says what falls short."""
    val = ctx.inputs.data.val
    say = ctx.reporter.message
    ranking = layer_sensitivity(student, calib, plan.batch_size,
                                progress=Tally(say, "per-layer sensitivity", "layers"))  # fmt: skip
    info["sensitivity"] = [{"layer": n, "kl": kl} for n, kl in ranking]
    if plan.max_accuracy_drop is None or not ranking:
        return acc
    teacher_acc, _ = evaluate_torch(ctx.inputs.teacher.module, val,
                                    progress=Tally(say, "teacher on val", "batches"))  # fmt: skip
    goal = teacher_acc - plan.max_accuracy_drop
    if acc >= goal:
        return acc
    if float_acc is not None and float_acc < goal:
        say(f"INT8 val {acc:.2f}% is under {goal:.2f}% (the teacher's {teacher_acc:.2f}% less "
            f"{plan.max_accuracy_drop}), and so is the float student ({float_acc:.2f}%): no "
            "layer kept in float can reach it, so none is; the distillation falls short (more "
            "--epochs, another --student or --kd-loss)")  # fmt: skip
        info.update(teacher_val_acc_torch=teacher_acc, mixed_skipped="float student under goal")
        return acc
    say(
        f"INT8 val {acc:.2f}% is under {goal:.2f}% (the teacher's {teacher_acc:.2f}% less "
        f"{plan.max_accuracy_drop}): keeping the most sensitive layers in float"
    )

    def accuracy(m) -> float:
        got = evaluate_torch(m, val, progress=Tally(say, "mixed precision on val", "batches"))[0]
        say(f"mixed precision: val {got:.2f}%")
        return got

    float_layers, mixed_acc = mixed_precision(
        student, ranking, accuracy, goal,
        max_float_layers=max(1, len(ranking) // 2),
    )  # fmt: skip
    save_quantized(ctx.run.path(MIXED), student)
    files.append(ctx.run.path(MIXED))
    info.update(checkpoint=MIXED, kept=f"{info['kept']}+mixed", float_layers=float_layers,
                mixed_val_acc=mixed_acc, teacher_val_acc_torch=teacher_acc)  # fmt: skip
    return mixed_acc


def run(ctx: RunContext, plan: QuantPlan, fp32) -> QuantStudent:
    data = ctx.inputs.data
    calib = data.calibration_subset(plan.calib.num_samples, plan.seed)
    student, ranges = _calibrated(ctx, plan, fp32, calib)
    ptq_acc, _ = evaluate_torch(
        student, data.val, progress=Tally(ctx.reporter.message, "PTQ on val", "batches")
    )
    ctx.reporter.message(f"PTQ (calibration alone): val {ptq_acc:.2f}%")
    info = {
        "graph": "modelopt" if ctx.trt else "ort",
        "learn_ranges": plan.learn_ranges and not ctx.trt,
        "method": plan.calib.method,
        "percentile": plan.calib.percentile if plan.calib.method == "percentile" else None,
        "calib_size": len(calib),
        "quantizers": count_quantizers(student),
        "ptq_val_acc": ptq_acc,
        "zero_or_bad_ranges": ranges,
        "residual_adds": (
            r.to_record() if (r := getattr(student, "residual_plan", None)) else None
        ),
        "checkpoint": PTQ,
        "kept": "ptq",
    }
    if line := residual_line(info):  # the wording the report and quant-report use
        ctx.reporter.message(line)
    save_quantized(ctx.run.path(PTQ), student)
    files = [ctx.run.path(PTQ)]
    if plan.qat.epochs:
        res = train_phase(ctx, "qat", plan.qat, student_name=fp32.student, student=student,
                          init=ctx.run.path(PTQ), prefix="qat_",
                          extra_state=lambda: quantizer_state(student))  # fmt: skip
        files += [res.best_path, res.last_path]
        info.update(qat_val_acc=res.best_val_acc, qat_best_epoch=res.best_epoch,
                    history=res.history)  # fmt: skip
        if res.best_val_acc >= ptq_acc:  # QAT must earn its place over calibration alone
            info.update(checkpoint=ctx.run.rel(res.best_path), kept="qat")
    acc = max(ptq_acc, info.get("qat_val_acc", ptq_acc))
    kept = torch.load(ctx.run.path(info["checkpoint"]), map_location="cpu", weights_only=True)
    student.load_state_dict(kept["model"])
    acc = _mixed(ctx, plan, student, calib, acc, info, files, fp32.best_val_acc)
    info["summary"] = f"INT8 fake-quant val {acc:.2f}% ({info['kept']} kept; PTQ {ptq_acc:.2f}%)"
    return QuantStudent(ctx.run.path(info["checkpoint"]), info["kept"], tuple(files), info)

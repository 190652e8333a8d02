"""The `export` stage: FP32 ONNX, and the INT8 graph the target runs: for TensorRT Model
Optimizer's Q/DQ graph (plus FP16 where the target builds FP16), for ONNX Runtime the ORT Q/DQ
graph that QAT trained (`edgekd.quant.ort_qat`), written with its trained integers and scales.
Each is checked for parity with its torch model on val; for TensorRT, what the device's version
would refuse fails here."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from edgekd.backends.parity import parity
from edgekd.errors import StageError
from edgekd.export import export_onnx
from edgekd.export.onnx_export import export_onnx_fp16, onnx_info
from edgekd.models import build_student, load_student
from edgekd.models.evaluate import evaluate_torch
from edgekd.pipeline.context import RunContext
from edgekd.pipeline.plans import ExportPlan
from edgekd.pipeline.rundir import RunDir
from edgekd.progress import Tally
from edgekd.quant import restore_quantized
from edgekd.quant.ort_layout import fusion_report
from edgekd.quant.ort_qat import export_ort
from edgekd.quant.precision import measured_precision

NAME = "export"
OWNS = ("export",)
FILES = {
    "fp32": "export/model-fp32.onnx",
    "fp16": "export/model-fp16.onnx",
    "int8": "export/model.onnx",  # Model Optimizer's Q/DQ graph (what TensorRT builds)
    "int8-ort": "export/model-ort-int8.onnx",  # ORT's Q/DQ layout, as trained
}


@dataclass(frozen=True)
class OnnxSet:
    NAME: ClassVar[str] = NAME
    files: dict[str, Path]  # fp32, and int8 (+ fp16) or int8-ort -> the ONNX file
    record: dict  # opset, Q/DQ pairs, op counts, parity, float Conv/Gemm left, lint

    def outputs(self) -> list[Path]:
        return list(self.files.values())

    @property
    def shipped_int8(self) -> str:
        """Which INT8 export the target runs: int8 (TensorRT) or int8-ort (ONNX Runtime)."""
        return "int8-ort" if "int8-ort" in self.files else "int8"

    def to_record(self) -> dict:
        return self.record | {"files": {k: str(FILES[k]) for k in self.files}}

    @classmethod
    def from_record(cls, info: dict, run: RunDir) -> OnnxSet:
        files = {k: run.path(rel) for k, rel in info["files"].items()}
        return cls(files, {k: v for k, v in info.items() if k != "files"})


Result = OnnxSet


def describe(ctx: RunContext, plan: ExportPlan) -> str:
    return "export ONNX (FP32 and INT8 Q/DQ) and check parity"


def key(ctx: RunContext, plan: ExportPlan) -> dict:
    return {"opset": plan.opset, "shape": ctx.shape, "runtime": ctx.target.runtime,
            "ort": "trained-graph",
            "mixed": [plan.mixed_precision, plan.threads, plan.remote,
                      ctx.target.name]}  # fmt: skip


def _per_block(ctx: RunContext, plan: ExportPlan, costed, choose) -> dict:
    """The per-block precision choice of the INT8 graph, or why every layer stays INT8.
    `costed`: the target profile whose cost model prices the candidates (None: they are timed
    on this machine); `choose(costed)` makes the choice (edgekd.quant.precision for ONNX
    Runtime, edgekd.quant.trt_precision for TensorRT) and leaves the model in it."""
    why = None
    if not plan.mixed_precision:
        why = "--no-mixed-precision"
    elif plan.remote:
        why = ("the target is timed on the device over SSH; the per-block choice times "
               "candidates on this machine or costs them by a cost model")  # fmt: skip
    elif costed is not None and costed.cost_model is None:
        why = f"the target {costed.name} has no cost model to cost the candidates with"
    if why:
        return {"kept": "int8", "line": f"precision per block: every layer INT8 ({why})"}
    choice = choose(costed)
    ctx.reporter.message(choice.line())
    return choice.to_record() | {"line": choice.line()}


def _precision(ctx: RunContext, plan: ExportPlan, qmodel) -> dict:
    """Blocks of ONNX Runtime's INT8 graph put in float where that is faster, measured here
    or costed by the target's cost model (edgekd.quant.precision); leaves `qmodel` in the
    chosen configuration, with the quantize stage's float layers kept in float."""
    return _per_block(
        ctx, plan, None if ctx.target.measured else ctx.target,
        lambda target: measured_precision(qmodel, ctx.shape, threads=plan.threads,
                                          target=target, say=ctx.reporter.message),
    )  # fmt: skip


def _trt_precision(ctx: RunContext, plan: ExportPlan, qmodel, path: Path, floats) -> dict:
    """Blocks of the TensorRT Q/DQ graph `path` (exported from `qmodel`, every layer INT8)
    put in float where the target's cost model and layer table price them faster
    (edgekd.quant.trt_precision); leaves `qmodel` with their quantizers off."""
    from edgekd.quant.trt_precision import costed_trt_precision

    return _per_block(
        ctx, plan, ctx.target,
        lambda target: costed_trt_precision(qmodel, path, target, say=ctx.reporter.message,
                                            float_layers=floats),
    )  # fmt: skip


def _lint(ctx: RunContext, files: dict[str, Path]) -> dict:
    """TensorRT-compatibility lint of every export; an error fails the stage here."""
    from edgekd.export.lint import lint_file, summarize

    version = ctx.target.runtime_version
    lint = {}
    for label, path in files.items():
        lint[label] = summarize(lint_file(path, version))
        if lint[label]["errors"]:
            first = next(f for f in lint[label]["findings"] if f["severity"] == "error")
            raise StageError(
                f"{label} ONNX would not build with TensorRT {version}",
                value=f"{first['rule']} at {first['node']}: {first['message']}",
                fix=first["fix"],
            )
    return {
        k: {"errors": v["errors"], "warnings": v["warnings"],
            "rules": sorted({f["rule"] for f in v["findings"]})}
        for k, v in lint.items()
    }  # fmt: skip


def run(ctx: RunContext, plan: ExportPlan, fp32, int8) -> OnnxSet:
    import torch

    data, shape, trt = ctx.inputs.data, ctx.shape, ctx.trt
    files = {"fp32": ctx.run.path(FILES["fp32"])}
    files |= {"int8": ctx.run.path(FILES["int8"])} if trt else {}
    say = ctx.reporter.message

    def check(name: str, path: Path, logits) -> dict:  # ORT against torch on val
        tally = Tally(say, f"parity of {name} in ONNX Runtime", "batches")
        return parity(path, logits, data.val, progress=tally)

    student = load_student(fp32.student, data.num_classes, shape, fp32.best)
    say("exporting the FP32 student to ONNX")
    e32 = export_onnx(student, files["fp32"], shape, opset=plan.opset)
    _, logits32 = evaluate_torch(student, data.val,
                                 progress=Tally(say, "FP32 student in torch on val", "batches"))
    ck = torch.load(int8.checkpoint, map_location="cpu", weights_only=True)
    qmodel = restore_quantized(build_student(fp32.student, data.num_classes, shape), ck["extra"],
                               ck["model"])  # fmt: skip
    if trt:  # the Q/DQ graph, every layer INT8, then blocks that cost less in float
        say("exporting the INT8 student to ONNX (Q/DQ)")
        e8 = export_onnx(qmodel, files["int8"], shape, opset=plan.opset)
        floats = int8.record.get("float_layers") or []  # the accuracy budget's
        precision = _trt_precision(ctx, plan, qmodel, files["int8"], floats)
        if precision["kept"] == "mixed":
            e8 = export_onnx(qmodel, files["int8"], shape, opset=plan.opset)
    else:
        precision = _precision(ctx, plan, qmodel)
    _, logits8 = evaluate_torch(qmodel, data.val,
                                progress=Tally(say, "INT8 student in torch on val", "batches"))
    par = {"fp32": check("fp32", files["fp32"], logits32)}
    if trt:
        par["int8"] = check("int8", files["int8"], logits8)
        if "fp16" in ctx.target.precisions:  # the FP16 ONNX a strongly typed build wants
            files = {"fp32": files["fp32"], "fp16": ctx.run.path(FILES["fp16"]),
                     "int8": files["int8"]}  # fmt: skip
            export_onnx_fp16(student, files["fp16"], shape)
            par["fp16"] = check("fp16", files["fp16"], logits32)
    else:  # the graph QAT trained, with its trained integers and scales: nothing re-calibrated
        say("writing the trained INT8 graph for ONNX Runtime (nothing calibrated after training)")
        files["int8-ort"] = export_ort(qmodel, ctx.run.path(FILES["int8-ort"]))
        e8 = onnx_info(files["int8-ort"])
        par["int8-ort"] = check("int8-ort", files["int8-ort"], logits8)
        par["int8-ort"]["trained_graph"] = True
    shipped = "int8" if trt else "int8-ort"
    fusion = {shipped: fusion_report(files[shipped])["float_conv_gemm"]}
    lint = _lint(ctx, files) if trt else {}
    record = {
        "opset": e8.opset,
        "qdq_pairs": e8.qdq_pairs,
        "ops_int8": e8.op_counts,
        "ops_fp32": e32.op_counts,
        "parity": par,
        "float_conv_gemm_left": fusion,
        "lint": lint,
        "precision": precision,
        "summary": f"opset {e8.opset}, {e8.qdq_pairs} Q/DQ pairs; {shipped}: ORT/torch "
        f"top-1 agreement {par[shipped]['top1_agreement']:.2f}%, "
        f"{fusion[shipped]} float Conv/Gemm left in ORT",
    }
    return OnnxSet(files, record)

"""The compress chain: teacher -> distill -> quantize -> export -> build -> validate -> report.

Each stage reads its inputs from files in the run directory and records its outputs' hashes,
so `resume=True` skips every stage whose inputs are unchanged and re-runs the rest.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import platform
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from edgekd import __version__
from edgekd._io import atomic_path, sha256_file, write_json
from edgekd.backends import Artifact
from edgekd.backends import onnxruntime as ort_backend
from edgekd.config import Budgets, CompressConfig
from edgekd.data import DataBundle, load_data, stack_inputs
from edgekd.distill import FrozenTeacher, TrainConfig, TrainResult, distill, evaluate_torch
from edgekd.distill.losses import create_loss, parse_loss_args
from edgekd.distill.losses._registry import loss_defaults
from edgekd.distributed import Launch, check_gpus, join, leave, send, torchrun_launch
from edgekd.errors import ConfigError, DataError, InputError, StageError
from edgekd.export import DEFAULT_OPSET, export_onnx, parity
from edgekd.export.onnx_export import export_onnx_fp16
from edgekd.latency.cost import predict_latency
from edgekd.models import (
    LoadedModel,
    build_student,
    check_teacher,
    count_params,
    load_teacher,
    teacher_classes,
)
from edgekd.pipeline.events import LogFileReporter, Reporter
from edgekd.pipeline.manifest import Manifest
from edgekd.pipeline.rundir import RunDir
from edgekd.pipeline.select import select_variant
from edgekd.pipeline.stages import StageRunner
from edgekd.quant.recipes import resolve_calib
from edgekd.report import write_reports
from edgekd.targets import get_target


@dataclass
class CompressResult:
    run_dir: Path
    report_path: Path
    report: dict
    exit_code: int  # 0 budgets met, 2 artifact produced but a budget missed
    follower: bool = False  # a rank > 0 under an outer torchrun: rank 0 wrote the report


def versions() -> dict[str, str]:
    import onnx
    import onnxruntime
    import timm

    try:
        from importlib.metadata import version

        modelopt_v = version("nvidia-modelopt")
    except Exception:
        modelopt_v = "unknown"
    return {
        "edgekd": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "timm": timm.__version__,
        "onnx": onnx.__version__,
        "onnxruntime": onnxruntime.__version__,
        "nvidia-modelopt": modelopt_v,
        "platform": platform.platform(),
        "cpu": platform.processor() or platform.machine(),
    }


def _teacher_and_data(cfg: CompressConfig) -> tuple[LoadedModel, DataBundle]:
    if cfg.teacher.startswith("timm:"):
        data = load_data(cfg.data, cfg.input_shape, augment=cfg.augment)
        if not data.labeled:
            raise DataError(
                "label-free data needs a trained teacher file, not a timm:NAME teacher",
                value=cfg.teacher,
                fix="pass the trained teacher (checkpoint, TorchScript or .pt2)",
            )
        teacher = load_teacher(cfg.teacher, num_classes=data.num_classes)
    else:
        teacher = load_teacher(cfg.teacher, arch=cfg.arch, trust_pickle=cfg.trust_pickle)
        data = load_data(cfg.data, cfg.input_shape or teacher.input_shape, augment=cfg.augment)
    if not data.labeled:
        data = _label_with_teacher(teacher, data)
    check_teacher(teacher, data.input_shape, data.num_classes)
    return teacher, data


def _label_with_teacher(teacher: LoadedModel, data: DataBundle) -> DataBundle:
    """Label-free data: the classes come from the teacher's output width; unlabeled val
    images get the teacher's predictions, so val accuracy is agreement with the teacher."""
    from edgekd.data.folder import Relabeled

    num_classes = teacher_classes(teacher, data.input_shape)
    val = data.val
    if data.val_labeled:
        top = max(getattr(val, "targets", [0]))
        if top >= num_classes:
            raise DataError(
                "val/ class index beyond the teacher's outputs",
                value=f"class {top} vs {num_classes} teacher outputs",
                fix="name val/ class folders 0..K-1 after the teacher's output indices",
            )
    else:
        _, logits = evaluate_torch(FrozenTeacher(teacher.module).module, data.val)
        val = Relabeled(data.val, logits.argmax(1).tolist())
    return dataclasses.replace(
        data,
        val=val,
        num_classes=num_classes,
        class_names=tuple(str(i) for i in range(num_classes)),
    )


def loss_arguments(cfg: CompressConfig, labeled: bool = True) -> dict:
    """The KD loss's arguments from --kd-args plus the --temperature / --alpha shorthands,
    checked by building the loss once (bad names and values are one ConfigError line)."""
    args = parse_loss_args(cfg.kd_loss, cfg.kd_args)
    accepted = loss_defaults(cfg.kd_loss)
    for flag, field in (("--temperature", "temperature"), ("--alpha", "alpha")):
        value = getattr(cfg, field)
        if value is None or field in args:
            continue
        if field not in accepted:
            raise ConfigError(
                f"{flag} does not apply to KD loss {cfg.kd_loss!r}",
                value=value,
                fix=f"its arguments are {', '.join(accepted)} (set them with --kd-args)",
            )
        args[field] = value
    create_loss(cfg.kd_loss, **args)
    if cfg.kd_loss == "ce" and not labeled:
        raise ConfigError(
            "the ce loss needs labels and this data has none", fix="pick a KD loss, e.g. kd"
        )
    return args


def _rel(run: RunDir, p: Path) -> str:
    return str(Path(p).relative_to(run.root))


def compress(
    cfg: CompressConfig, reporter: Reporter | None = None, budgets: Budgets | None = None
) -> CompressResult:
    """Run the whole chain for `cfg`; returns the report and the exit code (0 or 2).

    Bad input raises an `EdgekdError` before anything in the run directory claims completion.
    `budgets` defaults to `cfg.budgets`; pass the target's defaults merged with user values.

    Under an outer `torchrun -m edgekd compress` (see `edgekd.distributed`) rank 0 runs the
    chain and shares distillation and QAT with the other ranks, which only follow.
    """
    launch = torchrun_launch()
    if launch is None:
        return _compress(cfg, reporter, budgets, None)
    if cfg.nproc_per_node > 1 or cfg.nnodes > 1:
        raise ConfigError(
            f"already running under torchrun ({launch.world_size} ranks)",
            value=f"--nproc-per-node {cfg.nproc_per_node} --nnodes {cfg.nnodes}",
            fix="drop --nproc-per-node/--nnodes/--rdzv-endpoint: torchrun started the ranks",
        )
    if cfg.batch_size % launch.world_size:
        raise ConfigError(
            "the batch size must split evenly over the torchrun ranks",
            value=f"batch {cfg.batch_size} over {launch.world_size}",
            fix=f"use a multiple of {launch.world_size} for --batch-size",
        )
    device = resolve_device(cfg.device)
    check_gpus(device, launch.local_rank + 1, "torchrun LOCAL_RANK + 1 =")
    join(device)
    if not launch.leader:
        return _follow(cfg)
    try:
        result = _compress(cfg, reporter, budgets, launch)
    except BaseException:
        with contextlib.suppress(Exception):  # stop the followers; report our own error
            send(None)
            leave()
        raise
    send(None)  # the followers stop
    leave()
    return result


def _follow(cfg: CompressConfig) -> CompressResult:
    """A rank > 0: run each training phase rank 0 sends, until it sends None."""
    from edgekd.distill.ddp import run_spec

    while (spec := send(None)) is not None:
        run_spec(spec, say=lambda _m: None)
    leave()
    out = Path(cfg.out)
    return CompressResult(out, out / "report.json", {}, 0, follower=True)


def _compress(
    cfg: CompressConfig, reporter: Reporter | None, budgets: Budgets | None, launch: Launch | None
) -> CompressResult:
    rep = reporter or Reporter()
    target = get_target(cfg.target)
    if not target.measured and target.cost_model is None:
        raise InputError(
            f"target {target.name!r} is neither this machine nor has a cost model",
            fix="add cost_model to its profile so its latency can be predicted",
        )
    budgets = budgets or cfg.budgets
    device = resolve_device(cfg.device)
    check_gpus(device, cfg.nproc_per_node, "--nproc-per-node")
    recipe = resolve_calib(cfg.calib, cfg.calib_size, cfg.calib_percentile)
    t_start = time.perf_counter()

    loss_arguments(cfg)  # a bad loss name or argument fails before any loading
    teacher, data = _teacher_and_data(cfg)
    loss_args = loss_arguments(cfg, data.labeled)
    torch.manual_seed(cfg.seed)
    student_name = cfg.student
    teacher_params = count_params(teacher.module)
    searching = student_name in ("auto", "search")
    if not searching:
        build_student(student_name, data.num_classes, data.input_shape)  # fail fast on a bad name
    # every input is checked before the run directory is touched
    run = RunDir(cfg.out)
    run.prepare(resume=cfg.resume, force=cfg.force)
    rep = LogFileReporter(rep, run / "edgekd.log")
    rep.message(
        f"edgekd {__version__}: compress {cfg.teacher} -> {run.root} (target "
        f"{target.name}, device {device}, resume {cfg.resume})"
    )
    # nothing is printed before the inputs are known good: bad input gets exactly one line
    rep.message(
        f"teacher {teacher.kind} ({teacher_params / 1e6:.2f}M params), data "
        f"{data.name}: {len(data.train)} train / {len(data.val)} val, "
        f"{data.num_classes} classes, input {'x'.join(map(str, data.input_shape))}"
        + ("" if data.labeled else "; no labels: training on the teacher's outputs only")
    )

    manifest = Manifest.load(run.root) if cfg.resume else Manifest(run.root)
    manifest.run = {
        "config": cfg.model_dump(mode="json"),
        "budgets": budgets.model_dump(),
        "target": target.name,
        "seed": cfg.seed,
        "device": device,
        "versions": versions(),
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    runner = StageRunner(manifest, rep, resume=cfg.resume)
    teacher_sha = sha256_file(cfg.teacher) if teacher.kind != "timm" else cfg.teacher
    shape = data.input_shape
    searched = None
    if searching:  # the student search is a stage: a resumed run keeps its pick
        searched = _search_stage(
            cfg, runner, run, teacher, teacher_sha, teacher_params, data, target, budgets,
            device, rep,
        )  # fmt: skip
        student_name = searched["name"]

    # -- teacher: its FP32 ONNX is the reference every student artifact is measured against
    teacher_onnx = run / "export/teacher.onnx"

    def teacher_stage(key: str):
        info = export_onnx(teacher.module, teacher_onnx, shape, program=teacher.program)
        return [teacher_onnx], {
            "kind": teacher.kind,
            "arch": teacher.arch,
            "params": teacher_params,
            "onnx_opset": info.opset,
            "summary": f"{teacher.kind}, {teacher_params / 1e6:.2f}M params",
        }

    t_info = runner.run(
        "teacher",
        "export the teacher to ONNX (FP32 reference)",
        {"teacher": teacher_sha, "arch": teacher.arch, "shape": shape, "data": data.fingerprint},
        teacher_stage,
    )

    # -- distill: KD from the teacher into the float student
    train_cfg = TrainConfig(
        epochs=cfg.epochs,
        lr=cfg.lr,
        weight_decay=cfg.weight_decay,
        batch_size=cfg.batch_size,
        seed=cfg.seed,
        loss=cfg.kd_loss,
        loss_args=loss_args,
        optimizer=cfg.optimizer,
        schedule=cfg.schedule,
        warmup_epochs=cfg.warmup_epochs,
        ema_decay=cfg.ema,
        grad_clip=cfg.grad_clip,
        teacher_cache=cfg.teacher_cache,
        student_layer=cfg.student_layer,
        teacher_layer=cfg.teacher_layer,
        device=device,
    )
    steps = math.ceil(len(data.train) / cfg.batch_size)

    def train_phase(phase: str, student, tcfg: TrainConfig, key: str, **kwargs):
        """One training phase (distill or qat) with its progress shown, checkpoints in distill/."""
        rep.epochs_start(phase, tcfg.epochs, steps)
        return distill(
            student,
            teacher.module,
            data,
            tcfg,
            run / "distill",
            resume=cfg.resume,
            key=key,
            on_step=lambda e, s, n: rep.step(phase, e, s, n),
            on_epoch=lambda r: rep.epoch_end(phase, r),
            on_message=rep.message,
            **kwargs,
        )

    distributed = cfg.nproc_per_node > 1 or cfg.nnodes > 1 or launch is not None

    def distributed_phase(
        phase: str, tcfg: TrainConfig, key: str, prefix: str = "", init: str | None = None
    ) -> TrainResult:
        """A training phase under torchrun (--nproc-per-node / --nnodes): see distill.ddp.
        `init`: a fake-quantized checkpoint (weights + quantizer state) the student starts
        from (QAT); None starts a fresh student (distillation)."""
        import subprocess

        from edgekd.distill.ddp import launch_command, run_spec

        (run / "distill").mkdir(parents=True, exist_ok=True)
        spec_path = run / f"distill/{prefix}ddp_spec.json"
        result_path = run / f"distill/{prefix}ddp_result.json"
        result_path.unlink(missing_ok=True)
        write_json(
            spec_path,
            {
                "config": cfg.model_dump(mode="json") | {"out": str(run.root)},
                "student": student_name,
                "train": asdict(tcfg),
                "device": device,
                "ckpt_dir": str(run / "distill"),
                "prefix": prefix,
                "init_quantized": str(init) if init else None,
                "resume": cfg.resume,
                "key": key,
                "result": str(result_path),
            },
        )
        if launch is not None:  # an outer torchrun: the ranks are already here
            rep.message(f"{phase} over the {launch.world_size} torchrun ranks")
            run_spec(send(json.loads(spec_path.read_text())), rep.message, (teacher, data))
        else:
            cmd = launch_command(spec_path, cfg.nproc_per_node, cfg.nnodes, cfg.rdzv_endpoint)
            rep.message(f"{phase} under torchrun: {cfg.nproc_per_node} process(es) per node, "
                        f"{cfg.nnodes} node(s)")  # fmt: skip
            env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"))
            proc = subprocess.Popen(
                cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
            )
            assert proc.stdout is not None
            for line in proc.stdout:
                if line.strip():
                    rep.message(line.rstrip())
            errors = [ln for ln in proc.stderr.read().splitlines() if ln.startswith("error: ")]
            if proc.wait() != 0 or not result_path.exists():
                raise StageError(
                    f"distributed {phase} failed",
                    value=errors[0].removeprefix("error: ")
                    if errors
                    else f"exit {proc.returncode}",
                    fix=f"rerun the worker alone: {' '.join(cmd)}",
                )
        r = json.loads(result_path.read_text())  # rank 0 wrote it
        return TrainResult(
            Path(r["best_path"]), Path(r["last_path"]), r["history"], r["best_val_acc"],
            r["best_epoch"], r["resumed_from_epoch"], r["teacher_cache"], r["layers"],
        )  # fmt: skip

    def distill_stage(key: str):
        torch.manual_seed(cfg.seed)
        student = build_student(student_name, data.num_classes, shape)
        if distributed:
            res = distributed_phase("distill", train_cfg, key)
        else:
            res = train_phase("distill", student, train_cfg, key)
        hist = write_json(run / "distill/history.json", res.history)
        return [res.best_path, res.last_path, hist], {
            "student": student_name,
            "params": count_params(student),
            "best_val_acc": res.best_val_acc,
            "best_epoch": res.best_epoch,
            "resumed_from_epoch": res.resumed_from_epoch,
            "history": res.history,
            "loss": cfg.kd_loss,
            "loss_args": loss_args,
            "teacher_cache": res.teacher_cache,
            "layers": res.layers,
            "summary": f"{student_name}: best val {res.best_val_acc:.2f}% (epoch {res.best_epoch})",
        }

    d_info = runner.run(
        "distill",
        f"distill into {student_name}",
        {
            "teacher": teacher_sha,
            "data": data.fingerprint,
            "student": student_name,
            "shape": shape,
            "train": asdict(train_cfg),
        },
        distill_stage,
    )
    best_fp32 = run / "distill/best.pt"

    # -- quantize: INT8 fake-quant (Model Optimizer), max calibration, then QAT with KD
    qat_cfg = TrainConfig(
        epochs=cfg.qat_epochs,
        lr=cfg.qat_lr,
        weight_decay=cfg.weight_decay,
        batch_size=cfg.batch_size,
        seed=cfg.seed + 1,
        loss=cfg.kd_loss,
        schedule="cosine",
        loss_args=loss_args,
        optimizer=cfg.optimizer,
        grad_clip=cfg.grad_clip,
        amp="off",  # fake quantization stays in float32
        teacher_cache=cfg.teacher_cache,
        student_layer=cfg.student_layer,
        teacher_layer=cfg.teacher_layer,
        device=device,
    )
    ptq_ckpt = run / "distill/ptq.pt"

    def quant_stage(key: str):
        from edgekd.quant import count_quantizers, quantize_int8, quantizer_state
        from edgekd.quant.modelopt_int8 import bad_ranges
        from edgekd.quant.sensitivity import layer_sensitivity, mixed_precision

        student = _float_student(student_name, data, best_fp32).to(device)
        calib = data.calibration_subset(recipe.num_samples, cfg.seed)
        student = quantize_int8(
            student,
            calib,
            batch_size=cfg.batch_size,
            method=recipe.method,
            percentile=recipe.percentile,
        )
        ranges = bad_ranges(student)
        fatal = {k: v for k, v in ranges.items() if v == "not finite"}
        if fatal:
            raise StageError(
                "calibration produced non-finite ranges",
                value=", ".join(sorted(fatal)[:5]),
                fix="check the calibration images and the FP32 student for NaN/inf",
            )
        for name, problem in sorted(ranges.items())[:10]:
            rep.message(f"warning: calibration range of {name} is {problem}")
        ptq_acc, _ = evaluate_torch(student, data.val)
        info = {
            "method": recipe.method,
            "percentile": recipe.percentile if recipe.method == "percentile" else None,
            "calib_size": len(calib),
            "quantizers": count_quantizers(student),
            "ptq_val_acc": ptq_acc,
            "zero_or_bad_ranges": ranges,
            "checkpoint": _rel(run, ptq_ckpt),
            "kept": "ptq",
        }
        _save_quantized(ptq_ckpt, student)
        outputs: list[Path] = [ptq_ckpt]
        if cfg.qat_epochs and distributed:
            res = distributed_phase("qat", qat_cfg, key, prefix="qat_", init=ptq_ckpt)
        elif cfg.qat_epochs:
            res = train_phase(
                "qat",
                student,
                qat_cfg,
                key,
                prefix="qat_",
                extra_state=lambda: quantizer_state(student),
            )
        if cfg.qat_epochs:
            outputs += [res.best_path, res.last_path]
            info.update(
                qat_val_acc=res.best_val_acc, qat_best_epoch=res.best_epoch, history=res.history
            )
            if res.best_val_acc >= ptq_acc:  # QAT must earn its place over calibration alone
                info.update(checkpoint=_rel(run, res.best_path), kept="qat")
        acc = max(ptq_acc, info.get("qat_val_acc", ptq_acc))
        # per-layer sensitivity of the kept INT8 model; over the accuracy budget, the most
        # sensitive layers stay in higher precision until it holds
        kept_ck = torch.load(run / info["checkpoint"], map_location="cpu", weights_only=True)
        student.load_state_dict(kept_ck["model"])
        ranking = layer_sensitivity(student, calib, cfg.batch_size)
        info["sensitivity"] = [{"layer": n, "kl": kl} for n, kl in ranking]
        if budgets.max_accuracy_drop is not None and ranking:
            teacher_acc, _ = evaluate_torch(teacher.module, data.val)
            goal = teacher_acc - budgets.max_accuracy_drop
            if acc < goal:
                float_layers, mixed_acc = mixed_precision(
                    student,
                    ranking,
                    lambda m: evaluate_torch(m, data.val)[0],
                    goal,
                    max_float_layers=max(1, len(ranking) // 2),
                )
                mixed_ckpt = run / "distill/mixed.pt"
                _save_quantized(mixed_ckpt, student)
                outputs.append(mixed_ckpt)
                info.update(
                    checkpoint=_rel(run, mixed_ckpt),
                    kept=f"{info['kept']}+mixed",
                    float_layers=float_layers,
                    mixed_val_acc=mixed_acc,
                    teacher_val_acc_torch=teacher_acc,
                )
                acc = mixed_acc
        info["summary"] = (
            f"INT8 fake-quant val {acc:.2f}% ({info['kept']} kept; PTQ {ptq_acc:.2f}%)"
        )
        return outputs, info

    q_info = runner.run(
        "quantize",
        "INT8 calibration and quantization-aware training (Model Optimizer)",
        {
            "fp32": sha256_file(best_fp32),
            "calib": asdict(recipe),
            "seed": cfg.seed,
            "max_accuracy_drop": budgets.max_accuracy_drop,
            "qat": asdict(qat_cfg),
            "data": data.fingerprint,
        },
        quant_stage,
    )
    quant_ckpt = run / q_info["checkpoint"]  # the better of PTQ and QAT on val

    # -- export: FP32 and Q/DQ INT8 ONNX, parity of ORT against torch on val
    fp32_onnx, int8_onnx = run / "export/model-fp32.onnx", run / "export/model.onnx"
    ort_int8_onnx = run / "export/model-ort-int8.onnx"
    fp16_onnx = run / "export/model-fp16.onnx"
    trt = target.runtime == "tensorrt"

    def export_stage(key: str):
        from edgekd.quant import ort_layout, restore_quantized
        from edgekd.quant.ort_layout import fusion_report, qat_input_ranges, quantize_for_ort

        student = _float_student(student_name, data, best_fp32)
        e32 = export_onnx(student, fp32_onnx, shape)
        _, logits32 = evaluate_torch(student, data.val)
        ck = torch.load(quant_ckpt, map_location="cpu", weights_only=True)
        qmodel = restore_quantized(
            build_student(student_name, data.num_classes, shape), ck["extra"], ck["model"]
        )
        e8 = export_onnx(qmodel, int8_onnx, shape)
        _, logits8 = evaluate_torch(qmodel, data.val)
        par = {
            "fp32": parity(fp32_onnx, logits32, data.val),
            "int8": parity(int8_onnx, logits8, data.val),
        }
        written = [fp32_onnx, int8_onnx]
        exported = [("fp32", fp32_onnx), ("int8", int8_onnx)]
        if trt and "fp16" in target.precisions:  # the FP16 ONNX a strongly typed build wants
            export_onnx_fp16(student, fp16_onnx, shape)
            par["fp16"] = parity(fp16_onnx, logits32, data.val)
            written.append(fp16_onnx)
            exported.insert(1, ("fp16", fp16_onnx))
        fusion = {"int8": fusion_report(int8_onnx)["float_conv_gemm"]}
        lint = {}
        if trt:  # what the device's TensorRT would refuse fails here, not on the device
            from edgekd.export.lint import lint_file, summarize

            for label, path in exported:
                lint[label] = summarize(lint_file(path, target.runtime_version))
                if lint[label]["errors"]:
                    first = next(f for f in lint[label]["findings"] if f["severity"] == "error")
                    raise StageError(
                        f"{label} ONNX would not build with TensorRT {target.runtime_version}",
                        value=f"{first['rule']} at {first['node']}: {first['message']}",
                        fix=first["fix"],
                    )
        if not trt:
            # ONNX Runtime targets: the QAT-trained float weights, BN folded, Q/DQ laid out
            # the way ORT fuses (see edgekd.quant.ort_layout)
            trained = build_student(student_name, data.num_classes, shape)
            trained.load_state_dict(
                {k: v for k, v in ck["model"].items() if "_quantizer" not in k}, strict=True
            )
            with tempfile.TemporaryDirectory() as d:
                tmp32 = export_onnx(trained.eval(), Path(d) / "trained.onnx", shape).path
                calib = data.calibration_subset(recipe.num_samples, cfg.seed)
                # the QAT model's learned input ranges travel onto the ORT layout's tensors
                learned = qat_input_ranges(qmodel, calib, cfg.batch_size)
                quantize_for_ort(tmp32, ort_int8_onnx, calib, module_ranges=learned)
                ranges_carried = str(ort_int8_onnx) not in ort_layout.fallback_used
            par["int8-ort"] = parity(ort_int8_onnx, logits8, data.val)
            par["int8-ort"]["learned_ranges"] = ranges_carried
            fusion["int8-ort"] = fusion_report(ort_int8_onnx)["float_conv_gemm"]
            written.append(ort_int8_onnx)
        shipped_int8 = "int8" if trt else "int8-ort"
        return written, {
            "opset": e8.opset,
            "qdq_pairs": e8.qdq_pairs,
            "ops_int8": e8.op_counts,
            "ops_fp32": e32.op_counts,
            "parity": par,
            "float_conv_gemm_left": fusion,
            "lint": {
                k: {
                    "errors": v["errors"],
                    "warnings": v["warnings"],
                    "rules": sorted({f["rule"] for f in v["findings"]}),
                }
                for k, v in lint.items()
            },
            "summary": f"opset {e8.opset}, {e8.qdq_pairs} Q/DQ pairs; {shipped_int8}: ORT/torch "
            f"top-1 agreement {par[shipped_int8]['top1_agreement']:.2f}%, "
            f"{fusion[shipped_int8]} float Conv/Gemm left in ORT",
        }

    e_info = runner.run(
        "export",
        "export ONNX (FP32 and INT8 Q/DQ) and check parity",
        {
            "fp32": sha256_file(best_fp32),
            "quant": sha256_file(quant_ckpt),
            "opset": DEFAULT_OPSET,
            "shape": shape,
            "runtime": target.runtime,
            "calib": [asdict(recipe), cfg.seed],
        },
        export_stage,
    )

    # -- build: ONNX Runtime artifacts for the target's precisions; TensorRT engines are built
    # on the device itself (not portable), so for those the ONNX is the artifact handed over
    sources = {
        "fp32": fp32_onnx,
        "fp16": fp16_onnx if trt else fp32_onnx,
        "int8": int8_onnx if trt else ort_int8_onnx,
    }
    variants = {p: sources[p] for p in target.precisions}

    def build_stage(key: str):
        if trt:
            arts = {
                p: Artifact.of(
                    src,
                    "onnx",
                    p,
                    target.name,
                    {"tensorrt": target.runtime_version, "engine_built": False},
                )
                for p, src in variants.items()
            }
            from edgekd.backends.trt_build import write_build_script

            script = write_build_script(
                run / "build/build_engine.sh",
                target,
                {p: f"../{_rel(run, src)}" for p, src in variants.items()},
                shape,
            )
            summary = (
                f"TensorRT {target.runtime_version} engines are built on the device; "
                f"ONNX for {', '.join(arts)} ready, build/build_engine.sh runs trtexec there"
            )
            written: list[Path] = [script]
        else:
            arts = {
                p: ort_backend.compile_model(
                    src, run / f"build/student-{p}.ort.onnx", p, target.name
                )
                for p, src in variants.items()
            }
            summary = ", ".join(f"{p} {a.size_mb:.2f} MB" for p, a in arts.items())
            written = [a.path for a in arts.values()]
        return written, {
            "artifacts": {p: {**a.to_dict(), "path": _rel(run, a.path)} for p, a in arts.items()},
            "summary": summary,
        }

    b_info = runner.run(
        "build",
        f"build {target.runtime} artifacts ({', '.join(variants)})",
        {p: sha256_file(s) for p, s in variants.items()} | {"target": target.model_dump()},
        build_stage,
    )

    # -- validate: accuracy of every artifact on val (ONNX Runtime here), latency measured on
    # the host or predicted by the target's cost model; choose the artifact by those numbers
    final_path = run / ("build/model.onnx" if trt else "build/model.ort.onnx")
    metrics_path = run / "validate/metrics.json"
    threads = cfg.threads
    prof = dict(threads=threads, warmup=cfg.latency_warmup, iters=cfg.latency_iters)

    remote = None
    if cfg.remote:
        from edgekd.latency.remote import RemoteRunner

        remote = RemoteRunner(cfg.remote, cfg.ssh_option)
    device_runs: dict[str, dict] = {}  # per artifact path: engine / facts from the device
    # edgekd running on the device itself (a Jetson, or the GPU a desktop target describes):
    # engines are built and run here with TensorRT's Python API
    local_trt = False
    if trt and remote is None:
        from edgekd.backends import tensorrt as trt_backend

        if trt_backend.available()[0]:
            local_trt = trt_backend.this_gpu()[1] == target.compute_capability

    def on_this_gpu(path: Path, precision: str, stem: str) -> dict:
        """Build the engine here and time it (batch 1, after warm-up) with the agent's runner."""
        from edgekd import agent
        from edgekd.backends import tensorrt as trt_backend

        engine = run / f"device/{stem}.engine"
        trt_backend.build_engine(path, engine, target, precision, shape)
        device_runs[stem] = {"model": engine, "facts": agent.facts()}
        r = agent.profile(str(engine), 1, cfg.latency_warmup, cfg.latency_iters)
        return _agent_latency(r, f"{r['runtime']} on this machine's GPU", threads=0)

    def on_device(path: Path, precision: str, stem: str) -> dict:
        """Latency measured on the device (--remote): trtexec there for TensorRT targets,
        the agent with ONNX Runtime for CPU targets."""
        from edgekd.latency import remote as rmt
        from edgekd.latency.profile import trtexec_latency

        if trt:
            from edgekd.backends.trt_build import trtexec_args

            build = rmt.trtexec_remote(
                remote,
                path,
                trtexec_args(target, precision, shape),
                run / "device",
                stem=stem,
                trtexec=cfg.trtexec,
            )
            device_runs[stem] = {"model": build.engine, "log": _rel(run, build.log)}
            if build.layer_profile is not None:  # measured layers feed the target's cost model
                from edgekd.latency.layer_table import learn_from_trtexec

                learn_from_trtexec(path, target, precision, build.layer_profile)
            return trtexec_latency(build.result, f"measured on {remote.dest} with trtexec")
        r = rmt.profile_onnx_remote(
            remote,
            path,
            threads=target.threads or threads,
            warmup=cfg.latency_warmup,
            iters=cfg.latency_iters,
            python=cfg.remote_python,
        )
        facts = (r.get("facts") or {}) | {"machine": r.get("machine"), "cpus": r.get("cpu_count")}
        device_runs[stem] = {"model": path, "facts": facts}
        return _agent_latency(r, r["runtime"], threads=r["threads"])

    def latency(path: Path, precision: str, stem: str = "") -> dict:
        if remote is not None:
            return on_device(path, precision, stem or f"{path.stem}-{precision}")
        if local_trt:
            return on_this_gpu(path, precision, stem or f"{path.stem}-{precision}")
        if target.measured:
            return ort_backend.profile(path, shape, **prof).to_dict()
        # TensorRT builds float layers of a Q/DQ graph in FP16 when it can (--int8 --fp16)
        pred = predict_latency(path, target, precision if trt else None)
        return predicted_latency(pred, target)

    def validate_stage(key: str):
        _, labels = stack_inputs(data.val)
        y = labels.numpy()
        rep.message("validating the teacher (FP32 ONNX)")
        t_logits = ort_backend.predict(teacher_onnx, data.val, threads=threads)
        t_pred = t_logits.argmax(1)
        t_prec = "fp16" if trt and "fp16" in target.precisions else "fp32"
        teacher_m = {
            "path": _rel(run, teacher_onnx),
            "precision": t_prec,
            "accuracy": float((t_pred == y).mean() * 100),
            "latency": latency(teacher_onnx, t_prec),
            "size_mb": teacher_onnx.stat().st_size / 1e6,
            "params": teacher_params,
        }
        arts = {}
        logits_of: dict[str, np.ndarray] = {}
        for p, a in b_info["artifacts"].items():
            rep.message(f"validating the student ({p})")
            path = run / a["path"]
            if a["path"] not in logits_of:  # fp16 and fp32 engines come from one ONNX
                logits_of[a["path"]] = ort_backend.predict(path, data.val, threads=threads)
            pred = logits_of[a["path"]].argmax(1)
            arts[p] = {
                "path": a["path"],
                "precision": p,
                "sha256": a["sha256"],
                "size_mb": a["size_mb"],
                "accuracy": float((pred == y).mean() * 100),
                "agreement": float((pred == t_pred).mean() * 100),
                "latency": latency(path, p, f"student-{p}"),
            }
            if remote is not None or local_trt:  # the artifact as built on the device
                dev = device_runs[f"student-{p}"]
                if local_trt:
                    from edgekd.backends import tensorrt as trt_backend

                    rep.message(f"validating the student ({p}) as a TensorRT engine here")
                    dev_pred = trt_backend.predict(dev["model"], data.val).argmax(1)
                    got = {"top1": float((dev_pred == y).mean() * 100), "runtime": "tensorrt"}
                else:
                    from edgekd.latency.remote import accuracy_remote

                    rep.message(f"validating the student ({p}) on {remote.dest}")
                    x_val, _ = stack_inputs(data.val)
                    got = accuracy_remote(
                        remote, Path(dev["model"]), x_val.numpy(), y, python=cfg.remote_python
                    )
                    dev_pred = np.asarray(got["predictions"])
                arts[p].update(
                    device_accuracy=got["top1"],
                    device_agreement=float((dev_pred == pred).mean() * 100),
                    device_runtime=got["runtime"],
                )
                if dev.get("log"):
                    arts[p]["trtexec_log"] = dev["log"]
            par_key = ("int8" if trt else "int8-ort") if p == "int8" else "fp32"
            arts[p]["parity"] = e_info["parity"][par_key]["top1_agreement"]
            if p == "int8":
                arts[p]["float_conv_gemm_left"] = e_info["float_conv_gemm_left"][par_key]
        choice, reason = select_variant(arts, teacher_m["accuracy"], budgets)
        with atomic_path(final_path) as tmp:
            shutil.copyfile(run / arts[choice]["path"], tmp)
        metrics = {
            "val_samples": int(len(y)),
            "teacher": teacher_m,
            "student": arts,
            "selected": choice,
            "selection_reason": reason,
            "artifact": {
                **arts[choice],
                "path": _rel(run, final_path),
                "sha256": sha256_file(final_path),
            },
            "latency_source": (
                f"measured on the device {remote.dest} ({target.name})"
                if remote is not None
                else f"measured with TensorRT on this machine's GPU ({target.name})"
                if local_trt
                else f"measured on this machine ({target.name})"
                if target.measured
                else f"predicted by the cost model for {target.name} ({target.runtime} "
                f"{target.runtime_version}), not measured"
            ),
            "accuracy_source": "ONNX Runtime on this machine"
            + (
                f"; and the artifact as built on {remote.dest} (device_accuracy)"
                if remote is not None
                else "; the TensorRT engine's own accuracy is checked on the device"
                if trt
                else ""
            ),
        }
        facts = next((d["facts"] for d in device_runs.values() if d.get("facts")), None)
        if facts:
            metrics["device_facts"] = facts
        if trt:
            from edgekd.backends.trt_build import precision_flags

            metrics["build_flags"] = " ".join(precision_flags(target, choice))
        write_json(metrics_path, metrics)
        speed = teacher_m["latency"]["p90_ms"] / arts[choice]["latency"]["p90_ms"]
        metrics["summary"] = (
            f"{choice}: {arts[choice]['accuracy']:.2f}% (teacher "
            f"{teacher_m['accuracy']:.2f}%), {speed:.1f}x faster at p90"
        )
        return [metrics_path, final_path], metrics

    v_info = runner.run(
        "validate",
        "validate accuracy and latency of every artifact",
        {
            "teacher": sha256_file(teacher_onnx),
            "threads": threads,
            "data": data.fingerprint,
            "warmup": cfg.latency_warmup,
            "iters": cfg.latency_iters,
            "budgets": budgets.model_dump(),
            "remote": [cfg.remote, cfg.trtexec, cfg.remote_python] if cfg.remote else None,
        }
        | {p: a["sha256"] for p, a in b_info["artifacts"].items()},
        validate_stage,
    )

    manifest.run["wall_s"] = time.perf_counter() - t_start
    manifest.run["stages_ran"], manifest.run["stages_reused"] = runner.ran, runner.reused
    manifest.save()
    report, exit_code = write_reports(
        run.root,
        manifest=manifest,
        target=target,
        budgets=budgets,
        data=data,
        teacher_info=t_info,
        distill_info=d_info,
        quant_info=q_info,
        export_info=e_info,
        validate_info=v_info,
        searched=searched,
    )
    return CompressResult(run.root, run / "report.json", report, exit_code)


def _search_stage(
    cfg, runner, run, teacher, teacher_sha, teacher_params, data, target, budgets, device, rep
) -> dict:
    """`--student auto|search`: the student search (edgekd.search) as the run's `search`
    stage; returns the pick's record (Candidate fields, plus `how` and `candidates_file`).

    auto: every candidate of the search space under `size_cap`, the nominees of the top
    `AUTO_FEW_SHOT_K` by DisWOT and by params distilled for --few-shot-epochs; when no
    candidate meets the latency budget the fastest is kept and the report shows the budget
    missed. search: the whole space, ranked by DisWOT, few-shot only with --few-shot-k; no
    candidate within the budget is an error."""
    from edgekd.search import space
    from edgekd.search.search import (
        AUTO_FEW_SHOT_K,
        chosen,
        diswot_source,
        search,
        size_cap,
        write_results,
    )

    auto = cfg.student == "auto"
    budget = budgets.latency_ms
    k = cfg.few_shot_k if cfg.few_shot_k is not None else AUTO_FEW_SHOT_K if auto else 0
    cap = size_cap(teacher_params, budget) if auto else None
    names = space.candidates()
    inputs = {
        "teacher": teacher_sha, "arch": teacher.arch, "data": data.fingerprint,
        "target": target.name, "latency_ms": budget, "mode": cfg.student, "candidates": names,
        "max_params": cap, "few_shot_k": k, "few_shot_epochs": cfg.few_shot_epochs,
        "seed": cfg.seed, "device": device,
    }  # fmt: skip
    parts = [f"within {budget} ms"] if budget is not None else []
    parts += [f"with at most {cap / 1e6:.2f}M params"] if cap is not None else []
    within = " and ".join(parts) + (" (no latency budget)" if budget is None else "")

    def stage(key: str):
        ranked = search(
            teacher.module, data, target, names, latency_budget_ms=budget,
            few_shot_k=k, few_shot_epochs=cfg.few_shot_epochs, seed=cfg.seed, device=device,
            distributed=False,  # under torchrun rank 0 searches alone
            teacher_arch=teacher.arch, max_params=cap,
        )  # fmt: skip
        pick = chosen(ranked, fastest_if_none=auto)
        path = write_results(run / "search", ranked, budget, pick)
        fit = [c for c in ranked if c.within_budget and c.scores]
        shot = [c.name for c in fit if c.few_shot_acc is not None]
        kind = "measured" if pick.latency_measured else "predicted"
        if not pick.within_budget:
            how = f"no candidate meets {budget} ms: the fastest, {pick.latency_ms:.3f} ms {kind}"
        elif pick.few_shot_acc is not None:
            how = (
                f"best val {pick.few_shot_acc:.2f}% after {cfg.few_shot_epochs} epoch(s) of KD "
                f"among {', '.join(shot)}: the top {k} by DisWOT and by params of the {len(fit)} "
                f"candidates {within}; {pick.latency_ms:.3f} ms {kind}"
            )
        else:
            how = (
                f"best DisWOT score of the {len(fit)} candidates {within}; "
                f"{pick.latency_ms:.3f} ms {kind}"
            )
        record = dataclasses.asdict(pick) | {
            "mode": cfg.student,
            "how": how,
            "candidates_file": "search/candidates.json",
            "diswot_reference": diswot_source(ranked),
            "few_shot": {c.name: c.few_shot_acc for c in fit if c.few_shot_acc is not None},
        }
        return [path, path.parent / "pareto.png"], {"pick": record, "summary": pick.name}

    info = runner.run("search", f"student {cfg.student}: search {within}", inputs, stage)
    rep.message(f"student {cfg.student} -> {info['pick']['name']} ({info['pick']['how']})")
    return info["pick"]


def _agent_latency(r: dict, runtime: str, threads: int) -> dict:
    """The agent's timing (edgekd/agent.py `profile`) as a measured LatencyReport record."""
    keep = ("min_ms", "p50_ms", "p90_ms", "p99_ms", "mean_ms", "warmup", "iters")
    return {k: r[k] for k in keep} | {
        "throughput_ips": 1e3 / r["mean_ms"],
        "batch": 1,
        "threads": threads,
        "runtime": runtime,
        "measured": True,
    }


def predicted_latency(pred, target) -> dict:
    """A cost-model prediction in the shape of a measured LatencyReport, labelled predicted."""
    t = pred.total_ms
    return {
        "min_ms": t,
        "p50_ms": t,
        "p90_ms": t,
        "p99_ms": t,
        "mean_ms": t,
        "throughput_ips": 1e3 / t,
        "batch": 1,
        "threads": target.threads or 0,
        "warmup": 0,
        "iters": 0,
        "runtime": f"predicted: {target.runtime} {target.runtime_version} on "
        f"{target.name} ({pred.precision})",
        "measured": False,
    }


def resolve_device(spec: str) -> str:
    """`auto` -> cuda when a GPU is visible, else cpu; a CUDA request without a GPU is an error."""
    if spec == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if spec.startswith("cuda"):
        n = torch.cuda.device_count()
        index = int(spec.partition(":")[2] or 0)
        if index >= n:
            raise InputError(
                "CUDA device not available",
                value=spec,
                fix=f"this machine has {n} visible GPU(s); use --device cpu or auto",
            )
    return spec


def _save_quantized(path: Path, model: torch.nn.Module) -> None:
    """A fake-quantized student: its weights and Model Optimizer's quantizer state."""
    from edgekd.quant import quantizer_state

    with atomic_path(path) as tmp:
        torch.save({"model": model.state_dict(), "extra": quantizer_state(model)}, tmp)


def _float_student(name: str, data: DataBundle, ckpt: Path) -> torch.nn.Module:
    student = build_student(name, data.num_classes, data.input_shape)
    student.load_state_dict(torch.load(ckpt, map_location="cpu", weights_only=True)["model"])
    return student.eval()


__all__ = ["CompressResult", "compress", "versions"]

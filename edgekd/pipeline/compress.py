"""The compress chain: search -> teacher -> distill -> quantize -> export -> build -> validate
-> report. Each stage is a module of pipeline/stages/ run by the StageRunner, which records
its outputs' hashes, so `resume=True` skips every stage whose inputs are unchanged."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path

import torch

from edgekd import __version__
from edgekd.config import Budgets, CompressConfig
from edgekd.distributed import (
    Launch,
    check_gpus,
    join,
    leave,
    resolve_device,
    send,
    torchrun_launch,
)
from edgekd.errors import ConfigError
from edgekd.inputs import load_inputs, teacher_warning
from edgekd.models import count_params
from edgekd.pipeline import stages
from edgekd.pipeline.context import RunContext, RunResults
from edgekd.pipeline.events import LogFileReporter, Reporter
from edgekd.pipeline.manifest import Manifest, versions
from edgekd.pipeline.plans import Plans, make_plans
from edgekd.pipeline.rundir import RunDir
from edgekd.pipeline.runner import StageRunner
from edgekd.pipeline.summary import write_reports


@dataclass
class CompressResult:
    run_dir: Path
    report_path: Path
    report: dict
    exit_code: int  # 0 budgets met, 2 artifact produced but a budget missed
    follower: bool = False  # a rank > 0 under an outer torchrun: rank 0 wrote the report


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


def _input_paths(cfg: CompressConfig) -> tuple[Path, ...]:
    """The files and folders the run reads: --force must leave them alone."""
    from edgekd.data.fashion import parse_spec

    found = [Path(cfg.teacher)] if not cfg.teacher.startswith("timm:") else []
    data = parse_spec(cfg.data) or Path(cfg.data)
    if data.exists():
        found.append(data)
    return tuple(found)


def _context(cfg: CompressConfig, plans: Plans, reporter: Reporter, launch) -> RunContext:
    """Load and check the inputs, then (only then) claim the run directory."""
    inputs = load_inputs(plans.inputs)
    plans.check(inputs)
    torch.manual_seed(cfg.seed)
    # every input is checked before the run directory is touched
    run = RunDir(cfg.out, stages.OWNED)
    run.prepare(resume=cfg.resume, force=cfg.force, inputs=_input_paths(cfg))
    rep = LogFileReporter(reporter, run.path("edgekd.log"))
    return RunContext(run, rep, plans.target, plans.budgets, inputs, plans.inputs, plans.device,
                      cfg.seed, cfg.resume, launch, plans.scale_out)  # fmt: skip


def _announce(ctx: RunContext, teacher_file: str) -> None:
    # nothing is printed before the inputs are known good: bad input gets exactly one line
    teacher, data = ctx.inputs.teacher, ctx.inputs.data
    ctx.reporter.message(
        f"edgekd {__version__}: compress {teacher_file} -> {ctx.run.root} (target "
        f"{ctx.target.name}, device {ctx.device}, resume {ctx.resume})"
    )
    ctx.reporter.message(
        f"teacher {teacher.kind} ({count_params(teacher.module) / 1e6:.2f}M params), data "
        f"{data.name}: {len(data.train)} train / {len(data.val)} val"
        + (f" / {len(data.test)} test" if data.test is not None else "")
        + ", "
        f"{data.num_classes} classes, input {'x'.join(map(str, data.input_shape))} (from "
        f"{ctx.inputs.shape_from}"
        + ("; pass --input-shape to change it)" if "default" in ctx.inputs.shape_from else ")")
        + ("" if data.labeled else "; no labels: training on the teacher's outputs only")
    )
    if ctx.inputs.teacher_top1 is not None:
        n, acc = ctx.inputs.teacher_top1
        ctx.reporter.message(f"teacher top-1 on {n} val images: {acc:.1f}%")
        if (warning := teacher_warning(ctx.inputs, ctx.input_spec.normalize)) is not None:
            ctx.reporter.message(f"warning: {warning}")
    if getattr(teacher.module, "probabilities", False):  # an ONNX teacher with a softmax head
        ctx.reporter.message(
            "the ONNX teacher outputs probabilities (a softmax): distillation uses their log "
            "as its logits (the same softmax)"
        )
    ctx.reporter.val_metric(
        "val top-1" if data.val_labeled else
        "val agreement with the teacher (the val images have no labels)"
    )  # fmt: skip
    if data.skipped:
        ctx.reporter.message(
            f"skipped {len(data.skipped)} file(s) in the data folder that are not images "
            f"(e.g. {data.skipped[0]})"
        )


def _compress(
    cfg: CompressConfig, reporter: Reporter | None, budgets: Budgets | None, launch: Launch | None
) -> CompressResult:
    plans = make_plans(cfg, budgets)  # a bad loss, recipe, target or device fails here
    ctx = _context(cfg, plans, reporter or Reporter(), launch)
    try:
        with ctx.reporter.watch():  # edgekd.log is never silent for long (events.HEARTBEAT_S)
            return _chain(cfg, plans, ctx)
    finally:
        ctx.run.release()


def _chain(cfg: CompressConfig, plans: Plans, ctx: RunContext) -> CompressResult:
    _announce(ctx, cfg.teacher)
    manifest = Manifest.open(ctx.run.root, resume=cfg.resume, facts=plans.facts)
    runner = StageRunner(manifest, ctx.reporter, resume=cfg.resume)
    stage = runner.run
    pick = None
    if plans.search is not None:  # the student search is a stage: a resumed run keeps its pick
        pick = stage(stages.search, ctx, plans.search)
        ctx.reporter.message(f"student {plans.search.mode} -> {pick.name} ({pick.record['how']})")
    teacher = stage(stages.teacher, ctx, None)
    fp32 = stage(stages.distill, ctx, plans.distill(pick))
    int8 = stage(stages.quantize, ctx, plans.quant, fp32)
    onnx = stage(stages.export, ctx, plans.export, fp32, int8)
    built = stage(stages.build, ctx, None, onnx)
    checked = stage(stages.validate, ctx, plans.validate, teacher, onnx, built)
    manifest.finish(runner.ran, runner.reused)
    results = RunResults(pick, teacher, fp32, int8, onnx, built, checked)
    report, code = write_reports(ctx, manifest, results)
    return CompressResult(ctx.run.root, ctx.run.path("report.json"), report, code)


__all__ = ["CompressResult", "compress", "versions"]

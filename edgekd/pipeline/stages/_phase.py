"""One training phase (distillation or QAT) of a compress run: in this process, or under
torchrun when the run scales out (--nproc-per-node / --nnodes, or an outer torchrun). Its
checkpoints land in the run's distill/ folder; not a stage of its own."""

from __future__ import annotations

import json
import math
import os
import subprocess
from dataclasses import asdict
from pathlib import Path

from torch import nn

from edgekd._io import write_json
from edgekd.distill import TrainConfig, TrainResult, distill
from edgekd.distill.ddp import launch_command, run_spec
from edgekd.distributed import send
from edgekd.errors import StageError
from edgekd.pipeline.context import RunContext


def train_phase(
    ctx: RunContext,
    phase: str,
    train: TrainConfig,
    *,
    student_name: str,
    student: nn.Module | None = None,
    init: Path | None = None,
    prefix: str = "",
    extra_state=None,
    teacher: nn.Module | None = None,
) -> TrainResult:
    """Train `student` (in this process) or `student_name` (on every rank) for `phase`.
    The checkpoints carry the running stage's key (`ctx.stage_key`): one with another key is
    not resumed.

    Args:
        init: a fake-quantized checkpoint (weights + quantizer state) the ranks start from
            (QAT); None starts a fresh student (distillation).
        extra_state: stored with every checkpoint in this process (the quantizer state).
        teacher: who teaches instead of the run's teacher (a Born-Again generation's
            predecessor); in this process only.
    """
    if ctx.distributed:
        if teacher is not None:
            raise StageError(f"{phase} from an earlier generation runs in one process",
                             fix="drop --nproc-per-node / --nnodes, or train one generation")
        return _distributed(ctx, phase, train, student_name, init, prefix)
    rep = ctx.reporter
    rep.epochs_start(phase, train.epochs, math.ceil(len(ctx.inputs.data.train) / train.batch_size))
    return distill(
        student,
        teacher if teacher is not None else ctx.inputs.teacher.module,
        ctx.inputs.data,
        train,
        ctx.run.path("distill"),
        prefix=prefix,
        resume=ctx.resume,
        key=ctx.stage_key,
        extra_state=extra_state,
        on_step=lambda e, s, n: rep.step(phase, e, s, n),
        on_epoch=lambda r: rep.epoch_end(phase, r),
        on_message=rep.message,
    )


def _distributed(
    ctx: RunContext, phase: str, train: TrainConfig, student_name: str,
    init: Path | None, prefix: str,
) -> TrainResult:  # fmt: skip
    """The phase under torchrun: see edgekd.distill.ddp. Rank 0 writes the result file."""
    rep, scale = ctx.reporter, ctx.scale_out
    ctx.run.path("distill").mkdir(parents=True, exist_ok=True)
    spec_path = ctx.run.path(f"distill/{prefix}ddp_spec.json")
    result_path = ctx.run.path(f"distill/{prefix}ddp_result.json")
    result_path.unlink(missing_ok=True)
    write_json(
        spec_path,
        {
            "inputs": asdict(ctx.input_spec),
            "seed": ctx.seed,
            "student": student_name,
            "train": asdict(train),
            "device": ctx.device,
            "ckpt_dir": str(ctx.run.path("distill")),
            "prefix": prefix,
            "init_quantized": str(init) if init else None,
            "resume": ctx.resume,
            "key": ctx.stage_key,
            "result": str(result_path),
        },
    )
    if ctx.launch is not None:  # an outer torchrun: the ranks are already here
        rep.message(f"{phase} over the {ctx.launch.world_size} torchrun ranks")
        run_spec(send(json.loads(spec_path.read_text())), rep.message, ctx.inputs)
    else:
        cmd = launch_command(spec_path, scale.nproc_per_node, scale.nnodes, scale.rdzv_endpoint)
        rep.message(f"{phase} under torchrun: {scale.nproc_per_node} process(es) per node, "
                    f"{scale.nnodes} node(s)")  # fmt: skip
        env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"))
        proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
        )
        assert proc.stdout is not None and proc.stderr is not None
        for line in proc.stdout:
            if line.strip():
                rep.message(line.rstrip())
        errors = [ln for ln in proc.stderr.read().splitlines() if ln.startswith("error: ")]
        if proc.wait() != 0 or not result_path.exists():
            raise StageError(
                f"distributed {phase} failed",
                value=errors[0].removeprefix("error: ") if errors else f"exit {proc.returncode}",
                fix=f"rerun the worker alone: {' '.join(cmd)}",
            )
    r = json.loads(result_path.read_text())  # rank 0 wrote it
    return TrainResult(
        Path(r["best_path"]), Path(r["last_path"]), r["history"], r["best_val_acc"],
        r["best_epoch"], r["resumed_from_epoch"], r["teacher_cache"], r["layers"],
        r.get("loss_facts") or {},
    )  # fmt: skip

"""The `distill` stage: knowledge distillation from the teacher into the float student."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import ClassVar

import torch

from edgekd._io import write_json
from edgekd.distill.ensemble import EnsembleTeacher
from edgekd.models import build_student, count_params
from edgekd.pipeline.context import RunContext
from edgekd.pipeline.plans import DistillPlan, student_arch
from edgekd.pipeline.rundir import RunDir
from edgekd.pipeline.stages._phase import train_phase

NAME = "distill"
OWNS = ("distill",)
BEST, LAST, HISTORY = "distill/best.pt", "distill/last.pt", "distill/history.json"


@dataclass(frozen=True)
class FloatStudent:
    NAME: ClassVar[str] = NAME
    student: str
    best: Path  # the checkpoint of the best val epoch: what quantize and export start from
    last: Path
    history_file: Path
    best_val_acc: float
    record: dict  # params, epochs, history, loss and its arguments, teacher cache, taps

    def outputs(self) -> list[Path]:
        return [self.best, self.last, self.history_file]

    def to_record(self) -> dict:
        return self.record

    @classmethod
    def from_record(cls, info: dict, run: RunDir) -> FloatStudent:
        return cls(info["student"], run.path(BEST), run.path(LAST), run.path(HISTORY),
                   info["best_val_acc"], info)  # fmt: skip


Result = FloatStudent


def describe(ctx: RunContext, plan: DistillPlan) -> str:
    return f"distill into {plan.student}"


def key(ctx: RunContext, plan: DistillPlan) -> dict:
    return {"teacher": ctx.inputs.teacher_sha, "data": ctx.inputs.data.fingerprint,
            "student": plan.student, "shape": ctx.shape, "train": asdict(plan.train),
            **({"generations": plan.generations} if plan.generations > 1 else {}),
            **({"ensemble": True} if plan.ensemble else {})}  # fmt: skip


def run(ctx: RunContext, plan: DistillPlan) -> FloatStudent:
    data = ctx.inputs.data
    name = student_arch(plan.student, ctx.inputs)
    teacher, generations, members = None, [], []
    for g in range(1, plan.generations + 1):
        # Born-Again (Furlanello et al. 2018): generation g is a fresh student taught by
        # generation g - 1 (the first by the teacher), or with `ensemble` by the averaged
        # prediction of generations 1..g-1; only the last one's files are final
        torch.manual_seed(ctx.seed + g - 1)
        student = build_student(name, data.num_classes, ctx.shape)
        by = "the teacher"
        if g > 1:
            by = (f"generation {g - 1} (best val {generations[-1]['best_val_acc']:.2f}%)"
                  if not plan.ensemble or g == 2 else
                  f"the ensemble of generations 1-{g - 1} (best val "
                  + ", ".join(f"{e['best_val_acc']:.2f}%" for e in generations) + ")")  # fmt: skip
        if plan.generations > 1:
            ctx.reporter.message(f"Born-Again generation {g}/{plan.generations}: {name} taught "
                                 f"by {by}")  # fmt: skip
        prefix = "" if g == plan.generations else f"gen{g}_"
        res = train_phase(ctx, "distill", plan.train, student_name=name, student=student,
                          prefix=prefix, teacher=teacher)  # fmt: skip
        generations.append({"generation": g, "best_val_acc": res.best_val_acc,
                            "best_epoch": res.best_epoch, "checkpoint": ctx.run.rel(res.best_path),
                            "teacher": by.split(" (")[0]})  # fmt: skip
        if g < plan.generations:
            member = build_student(name, data.num_classes, ctx.shape)
            member.load_state_dict(torch.load(res.best_path, weights_only=True)["model"])
            members.append(member.eval())
            teacher = EnsembleTeacher(members).eval() if plan.ensemble else member
    hist = write_json(ctx.run.path(HISTORY), res.history)
    t = plan.train
    record = {
        "student": name,
        "generations": generations if plan.generations > 1 else None,
        "params": count_params(student),
        "best_val_acc": res.best_val_acc,
        "best_epoch": res.best_epoch,
        "resumed_from_epoch": res.resumed_from_epoch,
        "history": res.history,
        "loss": t.loss,
        "loss_args": t.loss_args,
        "teacher_cache": res.teacher_cache,
        "kd_augment": t.kd_augment,
        "weight_average": None if t.weight_average is None else {
            "start": None if t.weight_average == "swad" else t.weight_average,
            "window": "swad" if t.weight_average == "swad" else "uniform",
            "bn": t.weight_average_bn},  # fmt: skip
        "layers": res.layers,
        "loss_facts": res.loss_facts,  # e.g. cakld's teacher confidence
        "summary": f"{name}: best val {res.best_val_acc:.2f}% (epoch {res.best_epoch})"
        + (f", generation {plan.generations} of a Born-Again chain" if plan.generations > 1
           else ""),  # fmt: skip
    }
    return FloatStudent(name, res.best_path, res.last_path, hist, res.best_val_acc, record)

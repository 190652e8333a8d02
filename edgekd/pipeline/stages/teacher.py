"""The `teacher` stage: the teacher's FP32 ONNX, the reference every student artifact is
measured against in validate."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from edgekd._io import atomic_path
from edgekd.export import export_onnx
from edgekd.models import count_params
from edgekd.pipeline.context import RunContext
from edgekd.pipeline.rundir import RunDir

NAME = "teacher"
OWNS = ("export",)
ONNX = "export/teacher.onnx"


@dataclass(frozen=True)
class TeacherOnnx:
    NAME: ClassVar[str] = NAME
    path: Path
    opset: int
    params: int
    kind: str
    arch: str | None

    def outputs(self) -> list[Path]:
        return [self.path]

    def to_record(self) -> dict:
        return {
            "kind": self.kind,
            "arch": self.arch,
            "params": self.params,
            "onnx_opset": self.opset,
            "summary": f"{self.kind}, {self.params / 1e6:.2f}M params",
        }

    @classmethod
    def from_record(cls, info: dict, run: RunDir) -> TeacherOnnx:
        return cls(run.path(ONNX), info["onnx_opset"], info["params"], info["kind"], info["arch"])


Result = TeacherOnnx


def describe(ctx: RunContext, plan: None) -> str:
    if ctx.inputs.teacher.kind == "onnx":
        return "the ONNX teacher is the FP32 reference (copied)"
    return "export the teacher to ONNX (FP32 reference)"


def key(ctx: RunContext, plan: None) -> dict:
    t = ctx.inputs
    return {"teacher": t.teacher_sha, "arch": t.teacher.arch, "shape": ctx.shape,
            "data": t.data.fingerprint}  # fmt: skip


def run(ctx: RunContext, plan: None) -> TeacherOnnx:
    teacher = ctx.inputs.teacher
    path = ctx.run.path(ONNX)
    params = count_params(teacher.module)
    if teacher.kind == "onnx":  # already the reference: the user's file, byte for byte
        import shutil

        with atomic_path(path) as tmp:
            shutil.copyfile(teacher.source, tmp)
        return TeacherOnnx(path, teacher.meta["onnx_opset"], params, teacher.kind, teacher.arch)
    info = export_onnx(teacher.module, path, ctx.shape, program=teacher.program)
    return TeacherOnnx(path, info.opset, params, teacher.kind, teacher.arch)

"""The `build` stage: ONNX Runtime artifacts for the target's precisions. TensorRT engines are
built on the device itself (not portable across GPUs or TensorRT versions), so for a TensorRT
target the ONNX is the artifact handed over, with build/build_engine.sh to build it there."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from edgekd.backends import Artifact
from edgekd.backends import onnxruntime as ort_backend
from edgekd.pipeline.context import RunContext
from edgekd.pipeline.rundir import RunDir

NAME = "build"
OWNS = ("build",)
SCRIPT = "build/build_engine.sh"


@dataclass(frozen=True)
class Built:
    NAME: ClassVar[str] = NAME
    artifacts: dict[str, Artifact]  # precision -> the artifact validate checks
    script: Path | None  # TensorRT: the trtexec lines for the device
    summary: str
    root: Path  # the run directory (records name files relative to it)

    def outputs(self) -> list[Path]:
        return [self.script] if self.script else [a.path for a in self.artifacts.values()]

    def to_record(self) -> dict:
        arts = {p: {**a.to_dict(), "path": str(a.path.relative_to(self.root))}
                for p, a in self.artifacts.items()}  # fmt: skip
        return {"artifacts": arts, "summary": self.summary}

    @classmethod
    def from_record(cls, info: dict, run: RunDir) -> Built:
        arts = {
            p: Artifact(run.path(a["path"]), a["format"], a["precision"], a["target"],
                        a["toolchain"], a["sha256"])  # fmt: skip
            for p, a in info["artifacts"].items()
        }
        script = run.path(SCRIPT) if run.path(SCRIPT).is_file() else None
        return cls(arts, script, info["summary"], run.root)


Result = Built


def sources(ctx: RunContext, onnx) -> dict[str, Path]:
    """The ONNX each of the target's precisions is built from."""
    f = onnx.files
    by = {"fp32": f["fp32"], "fp16": f.get("fp16", f["fp32"]), "int8": f[onnx.shipped_int8]}
    return {p: by[p] for p in ctx.target.precisions}


def describe(ctx: RunContext, plan: None) -> str:
    return f"build {ctx.target.runtime} artifacts ({', '.join(ctx.target.precisions)})"


def key(ctx: RunContext, plan: None) -> dict:
    return {"target": ctx.target.model_dump()}


def run(ctx: RunContext, plan: None, onnx) -> Built:
    variants = sources(ctx, onnx)
    target = ctx.target
    if not ctx.trt:
        arts = {
            p: ort_backend.compile_model(src, ctx.run.path(f"build/student-{p}.ort.onnx"), p,
                                         target.name)  # fmt: skip
            for p, src in variants.items()
        }
        sizes = ", ".join(f"{p} {a.size_mb:.2f} MB" for p, a in arts.items())
        return Built(arts, None, sizes, ctx.run.root)
    from edgekd.backends.trt_build import onnx_facts, write_build_script

    toolchain = {"tensorrt": target.runtime_version, "engine_built": False}
    arts = {p: Artifact.of(src, "onnx", p, target.name, toolchain) for p, src in variants.items()}
    script = write_build_script(
        ctx.run.path(SCRIPT), target, {p: f"../{ctx.run.rel(s)}" for p, s in variants.items()},
        ctx.shape, onnx={p: onnx_facts(s) for p, s in variants.items()},
    )  # fmt: skip
    summary = (
        f"TensorRT {target.runtime_version} engines are built on the device; "
        f"ONNX for {', '.join(arts)} ready, build/build_engine.sh runs trtexec there"
    )
    return Built(arts, script, summary, ctx.run.root)

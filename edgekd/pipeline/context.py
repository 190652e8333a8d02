"""What every stage of a compress run sees: a frozen `RunContext`, and the result protocol.

A stage never reads `CompressConfig`: its own settings come as a plan (pipeline/plans.py), the
run-wide facts (run directory, target, budgets, inputs, device) as this context, and what
earlier stages produced as their typed results.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol

from edgekd.config import Budgets
from edgekd.distributed import Launch
from edgekd.inputs import Inputs, InputSpec
from edgekd.pipeline.events import Reporter
from edgekd.pipeline.rundir import RunDir
from edgekd.targets import TargetProfile


@dataclass(frozen=True)
class ScaleOut:
    """How training phases scale out when edgekd launches torchrun itself."""

    nproc_per_node: int = 1
    nnodes: int = 1
    rdzv_endpoint: str | None = None


@dataclass(frozen=True)
class RunContext:
    run: RunDir
    reporter: Reporter  # a LogFileReporter around the caller's (the CLI's rich) reporter
    target: TargetProfile
    budgets: Budgets
    inputs: Inputs  # the loaded teacher and data
    input_spec: InputSpec  # where they came from (a DDP worker loads them again from this)
    device: str  # the training device, resolved (cpu, cuda, cuda:N)
    seed: int
    resume: bool
    launch: Launch | None = None  # an outer torchrun, or None
    scale_out: ScaleOut = field(default_factory=ScaleOut)
    stage_key: str = ""  # the key of the stage running now: its epoch checkpoints carry it

    @property
    def trt(self) -> bool:
        """The target's runtime is TensorRT (engines are built on the device)."""
        return self.target.runtime == "tensorrt"

    @property
    def distributed(self) -> bool:
        """Training phases run under torchrun (launched here, or an outer one)."""
        s = self.scale_out
        return s.nproc_per_node > 1 or s.nnodes > 1 or self.launch is not None

    @property
    def shape(self) -> tuple[int, int, int]:
        return self.inputs.data.input_shape


class StageResult(Protocol):
    """What a stage returns: frozen, typed, and storable as its manifest record's info."""

    NAME: ClassVar[str]

    def outputs(self) -> list[Path]: ...

    def to_record(self) -> dict: ...

    @classmethod
    def from_record(cls, info: dict, run: RunDir) -> Any: ...


@dataclass(frozen=True)
class RunResults:
    """Every stage's result of one run, in chain order (search is None for a given student)."""

    search: Any
    teacher: Any
    fp32: Any
    int8: Any
    onnx: Any
    built: Any
    checked: Any

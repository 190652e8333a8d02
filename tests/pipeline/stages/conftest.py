"""A tiny run to drive each stage alone: digits at 16x16, a random-init timm teacher, lcnet_050
for 1 epoch, QAT 1 epoch on 32 calibration images; the host target. Each fixture is one
stage's result, computed once per session from the results it needs."""

from __future__ import annotations

import dataclasses
import json

import pytest
from torch.utils.data import Subset

from edgekd.config import Budgets, CompressConfig
from edgekd.inputs import load_inputs
from edgekd.pipeline import stages
from edgekd.pipeline.context import RunContext
from edgekd.pipeline.events import Reporter
from edgekd.pipeline.plans import make_plans
from edgekd.pipeline.rundir import RunDir


class Recorder(Reporter):
    def __init__(self) -> None:
        self.lines: list[str] = []

    def message(self, text: str) -> None:
        self.lines.append(text)


@pytest.fixture(scope="session")
def tiny(tmp_path_factory):
    """(ctx, plans) of the tiny run; the run directory is prepared, nothing run yet."""
    out = tmp_path_factory.mktemp("stages") / "run"
    cfg = CompressConfig(
        teacher="timm:resnet10t", data="digits", input_shape=(3, 16, 16), student="lcnet_050",
        epochs=1, qat_epochs=1, calib_size=32, latency_warmup=1, latency_iters=10,
        augment=False, out=out,
    )  # fmt: skip
    plans = make_plans(cfg, Budgets(max_accuracy_drop=100))
    loaded = load_inputs(plans.inputs)
    d = loaded.data  # 256 train / 128 val images: the stages' wiring, not their accuracy
    small = dataclasses.replace(d, train=Subset(d.train, range(256)), val=Subset(d.val, range(128)),
                                fingerprint=f"{d.fingerprint}-small")  # fmt: skip
    inputs = dataclasses.replace(loaded, data=small)
    run = RunDir(out, stages.OWNED)
    run.prepare(resume=False, force=False)
    ctx = RunContext(run, Recorder(), plans.target, plans.budgets, inputs, plans.inputs,
                     plans.device, cfg.seed, False, stage_key="tiny-key")  # fmt: skip
    return ctx, plans


def run_stage(stage, ctx, plan, *upstream):
    """What the StageRunner does around `stage.run`, minus the manifest."""
    return stage.run(dataclasses.replace(ctx, stage_key=f"{stage.NAME}-key"), plan, *upstream)


@pytest.fixture(scope="session")
def teacher_onnx(tiny):
    ctx, _ = tiny
    return run_stage(stages.teacher, ctx, None)


@pytest.fixture(scope="session")
def fp32(tiny):
    ctx, plans = tiny
    return run_stage(stages.distill, ctx, plans.distill())


@pytest.fixture(scope="session")
def int8(tiny, fp32):
    ctx, plans = tiny
    return run_stage(stages.quantize, ctx, plans.quant, fp32)


@pytest.fixture(scope="session")
def onnx_set(tiny, fp32, int8):
    ctx, plans = tiny
    return run_stage(stages.export, ctx, plans.export, fp32, int8)


@pytest.fixture(scope="session")
def built(tiny, onnx_set):
    ctx, _ = tiny
    return run_stage(stages.build, ctx, None, onnx_set)


@pytest.fixture(scope="session")
def checked(tiny, teacher_onnx, onnx_set, built):
    ctx, plans = tiny
    return run_stage(stages.validate, ctx, plans.validate, teacher_onnx, onnx_set, built)


def round_trips(result, ctx) -> None:
    """from_record(to_record()) gives the same result back, as a resumed run would: the
    record goes through JSON the way the manifest stores it."""
    stored = json.loads(json.dumps(result.to_record(), default=str))
    again = type(result).from_record(stored, ctx.run)
    assert again == result
    assert all(p.is_file() and p.is_relative_to(ctx.run.root) for p in result.outputs())

"""The chain in compress.py with fake stage modules: order, upstream hand-over, reuse on
--resume, and the exit code of the report, without any training."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import ClassVar

import pytest
from torch import nn

import edgekd.pipeline.compress as C
from edgekd.config import CompressConfig
from edgekd.data import DataBundle
from edgekd.inputs import Inputs
from edgekd.models import LoadedModel
from edgekd.pipeline.manifest import Manifest

ORDER = ["search", "teacher", "distill", "quantize", "export", "build", "validate"]


def fake_stage(stage_name: str, calls: list):
    @dataclass(frozen=True)
    class Result:
        NAME: ClassVar[str] = stage_name
        path: Path
        upstream: tuple[str, ...]

        def outputs(self):
            return [self.path]

        def to_record(self):
            return {"upstream": list(self.upstream), "summary": stage_name}

        @classmethod
        def from_record(cls, info, run):
            return cls(run.path(f"{stage_name}.out"), tuple(info["upstream"]))

        @property
        def name(self):  # the search pick's student
            return "lcnet_050"

        record = {"how": "fake"}

    def run(ctx, plan, *upstream):
        calls.append(stage_name)
        p = ctx.run.path(f"{stage_name}.out")
        p.write_text(f"{stage_name} {plan}")
        return Result(p, tuple(u.NAME for u in upstream))

    def key(ctx, plan):  # like the real validate, the fake validate keys on the budgets
        return [repr(plan), ctx.budgets.model_dump() if stage_name == "validate" else None]

    return SimpleNamespace(NAME=stage_name, OWNS=(stage_name,), Result=Result, run=run,
                           describe=lambda ctx, plan: stage_name, key=key)  # fmt: skip


@pytest.fixture()
def chain(monkeypatch):
    calls: list[str] = []
    fakes = {n: fake_stage(n, calls) for n in ORDER}
    monkeypatch.setattr(C, "stages", SimpleNamespace(**fakes, OWNED=tuple(ORDER)))
    data = DataBundle("fake", [0] * 8, [0] * 4, [0] * 4, 10, (3, 8, 8), tuple("0123456789"), "f")
    teacher = LoadedModel(nn.Linear(2, 2), "timm", None, None, "resnet10t")
    monkeypatch.setattr(C, "load_inputs", lambda spec: Inputs(teacher, data, "timm:resnet10t"))
    reports = []

    def write_reports(ctx, manifest, results):
        reports.append(results)
        code = 2 if ctx.budgets.max_model_mb else 0
        return {"verdict": {"exit_code": code}}, code

    monkeypatch.setattr(C, "write_reports", write_reports)
    return calls, reports


def _cfg(tmp_path, **kw):
    return CompressConfig(teacher="timm:resnet10t", out=tmp_path / "run", **kw)


def test_the_chain_runs_in_order_with_its_upstream(chain, tmp_path):
    calls, reports = chain
    result = C.compress(_cfg(tmp_path))
    assert calls == ORDER and result.exit_code == 0
    r = reports[0]
    assert r.fp32.upstream == () and r.int8.upstream == ("distill",)
    assert r.onnx.upstream == ("distill", "quantize") and r.built.upstream == ("export",)
    assert r.checked.upstream == ("teacher", "export", "build")
    m = Manifest.load(tmp_path / "run")
    assert list(m.stages) == ORDER and m.run["stages_ran"] == ORDER
    assert m.run["config"]["teacher"] == "timm:resnet10t" and "versions" in m.run


def test_a_given_student_skips_the_search(chain, tmp_path):
    calls, _ = chain
    C.compress(_cfg(tmp_path, student="lcnet_050"))
    assert calls == ORDER[1:]


def test_resume_reuses_and_a_changed_budget_reruns_from_where_it_is_read(chain, tmp_path):
    calls, reports = chain
    C.compress(_cfg(tmp_path))
    calls.clear()
    again = C.compress(_cfg(tmp_path, resume=True))
    assert calls == [] and again.exit_code == 0
    assert Manifest.load(tmp_path / "run").run["stages_reused"] == ORDER
    assert reports[-1].checked.upstream == ("teacher", "export", "build")  # from the record
    # a size budget is in validate's key alone: only validate runs again, and a missed budget
    # is the report's exit code 2
    from edgekd.config import Budgets

    calls.clear()
    missed = C.compress(_cfg(tmp_path, resume=True), budgets=Budgets(max_model_mb=0.001))
    assert calls == ["validate"] and missed.exit_code == 2


def test_warnings_flag_a_student_that_beats_its_teacher_and_noisy_latency():
    from edgekd.pipeline.summary import warnings

    def model(acc, noise=None):
        return {"accuracy": acc, "latency": {"noise": noise}}

    r = {"teacher": model(70.0), "artifact": model(89.6), "variants": {"fp32": model(89.6)}}
    (w,) = warnings(r)  # the case: a student 19.6 points over its teacher
    assert w.startswith("the student (89.60%) beats its teacher (70.00%) by 19.6 points")
    r["artifact"] = r["variants"]["fp32"] = model(72.0)  # within 2 points: nothing to say
    assert warnings(r) == []
    r["variants"]["int8"] = model(71.0, noise="p90 9 ms is 3.0x the median")
    assert warnings(r) == ["the latency of the student (int8) is unreliable: p90 9 ms is 3.0x "
                           "the median"]  # fmt: skip

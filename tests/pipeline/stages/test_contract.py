"""Every stage module has the stage shape (timm style: one test over the registry)."""

from __future__ import annotations

import dataclasses
import inspect

import pytest

from edgekd.pipeline import stages

NAMES = [s.NAME for s in stages.STAGES]


def test_the_chain_order():
    assert NAMES == ["search", "teacher", "distill", "quantize", "export", "build", "validate"]


@pytest.mark.parametrize("stage", stages.STAGES, ids=NAMES)
def test_stage_shape(stage):
    assert stage.Result.NAME == stage.NAME
    assert dataclasses.is_dataclass(stage.Result) and stage.Result.__dataclass_params__.frozen
    for method in ("outputs", "to_record"):
        assert callable(getattr(stage.Result, method)), method
    assert inspect.ismethod(stage.Result.from_record)  # a classmethod
    assert list(inspect.signature(stage.Result.from_record).parameters) == ["info", "run"]
    for fn in ("describe", "key"):
        assert list(inspect.signature(getattr(stage, fn)).parameters) == ["ctx", "plan"], fn
    run_params = list(inspect.signature(stage.run).parameters)
    assert run_params[:2] == ["ctx", "plan"]
    assert stage.OWNS and all("/" not in name for name in stage.OWNS)


@pytest.mark.parametrize("stage", stages.STAGES, ids=NAMES)
def test_no_stage_reads_the_config(stage):
    source = inspect.getsource(stage)
    assert "CompressConfig" not in source and "cfg." not in source

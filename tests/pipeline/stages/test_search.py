import json

import pytest

from edgekd.pipeline import stages
from edgekd.pipeline.plans import SearchPlan
from tests.pipeline.stages.conftest import round_trips, run_stage


def test_search_pick(tiny, monkeypatch):
    import edgekd.search.space as space

    ctx, _ = tiny
    pair = ["lcnet_050", "mobilenetv3_small_050"]
    monkeypatch.setattr(space, "candidates", lambda *a, **k: pair)
    plan = SearchPlan("search", None, 0, 1)  # DisWOT ranking alone, no few-shot runs
    assert stages.search.key(ctx, plan)["candidates"] == pair
    pick = run_stage(stages.search, ctx, plan)
    cands = json.loads(pick.candidates.read_text())
    assert pick.name == cands["chosen"] in pair and pick.pareto.is_file()
    assert pick.record["mode"] == "search" and pick.record["how"].startswith("best DisWOT score")
    assert pick.record["few_shot"] == {}
    assert pick.latency_ms == pytest.approx(pick.record["latency_ms"])
    round_trips(pick, ctx)

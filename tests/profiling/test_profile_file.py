"""set_profile_keys edits a profile YAML in place and leaves the rest of it alone."""

from __future__ import annotations

import shutil

import pytest

from edgekd.profiling.profile_file import set_profile_keys
from edgekd.targets import _profiles_dir, load_profile_file

NEW_CM = {
    "efficiency": {"dense_conv": 0.5, "depthwise_conv": 0.05, "gemm": 0.4, "elementwise": 0.04},
    "int8_efficiency_scale": 1.0,
    "layer_overhead_us": 12.5,
    "bandwidth_efficiency": 0.6,
}
BAND = {"low": 0.8, "high": 1.3, "coverage": 0.8, "figures": 27, "basis": "held out"}


def test_keys_are_replaced_or_added_and_every_other_line_kept(tmp_path):
    path = tmp_path / "jetson-nano.yaml"
    shutil.copy(_profiles_dir() / "jetson-nano.yaml", path)
    before = path.read_text().splitlines()
    set_profile_keys(
        path,
        {"cost_model": NEW_CM, "prediction_range": BAND},
        {"cost_model": "fitted", "prediction_range": "held-out ratios"},
    )
    prof = load_profile_file(path)
    assert prof.cost_model.layer_overhead_us == 12.5 and prof.cost_model.efficiency["gemm"] == 0.4
    assert prof.prediction_range.of(10.0) == pytest.approx((8.0, 13.0))
    assert prof.sources["cost_model"] == "fitted"
    assert prof.sources["prediction_range"] == "held-out ratios"
    after = path.read_text().splitlines()
    replaced, key = set(), None
    for ln in before:  # the lines of the blocks that were set, and of the two source entries
        if not ln.startswith(" "):
            key = ln.split(":")[0]
        if key in ("cost_model", "prediction_range") or ln.startswith(
            ("  cost_model:", "  prediction_range:")
        ):
            replaced.add(ln)
    assert [ln for ln in before if ln not in replaced] == [
        ln for ln in after if ln in before and ln not in replaced
    ]  # name, peaks, fit, aliases, every other source: kept, in order
    assert all(ln in after for ln in before if ln not in replaced)
    assert after.index("prediction_range:") < after.index("aliases: []")


def test_a_result_that_would_not_load_is_not_written(tmp_path):
    path = tmp_path / "jetson-nano.yaml"
    shutil.copy(_profiles_dir() / "jetson-nano.yaml", path)
    text = path.read_text()
    with pytest.raises(ValueError):
        set_profile_keys(path, {"cost_model": {**NEW_CM, "bandwidth_efficiency": 3.0}})
    with pytest.raises(ValueError):  # a range whose low end is above its high end
        set_profile_keys(
            path, {"prediction_range": {**BAND, "low": 2.0}}, {"prediction_range": "x"}
        )
    with pytest.raises(ValueError):  # a new field with no source entry
        set_profile_keys(path, {"threads": 2})
    assert path.read_text() == text

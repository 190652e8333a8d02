"""`edgekd targets` and `edgekd profile` through typer's runner."""

from __future__ import annotations

import json

import pytest
import yaml
from typer.testing import CliRunner

from edgekd.cli.app import app
from edgekd.targets import builtin_profiles

runner = CliRunner()

REQUIRED = {
    "jetson-nano",
    "jetson-xavier-nx",
    "jetson-agx-xavier",
    "jetson-orin-nano-4gb",
    "jetson-orin-nano-8gb",
    "jetson-orin-nano-super",
    "jetson-orin-nx-16gb",
    "jetson-agx-orin-64gb",
    "raspberry-pi-5",
    "x86-avx512",
    "host",
}


def invoke(*args):
    return runner.invoke(app, list(args), catch_exceptions=False)


@pytest.fixture(scope="module")
def model_onnx(tmp_path_factory):
    from edgekd.export import export_onnx
    from edgekd.models import create_timm

    path = tmp_path_factory.mktemp("p") / "m.onnx"
    return export_onnx(create_timm("mobilenetv3_small_050", 10), path, (3, 32, 32)).path


def test_every_required_profile_ships():
    assert REQUIRED <= set(builtin_profiles())


def test_jetson_nano_has_no_int8_and_jetson_alias():
    p = builtin_profiles()
    assert "int8" not in p["jetson-nano"].precisions
    from edgekd.targets import get_target

    assert get_target("jetson").name == "jetson-orin-nano-8gb"


def test_targets_list_table():
    r = invoke("targets", "list")
    assert r.exit_code == 0
    for name in REQUIRED:
        assert name in r.stdout


def test_targets_show_yaml_and_json():
    r = invoke("targets", "show", "jetson")
    assert r.exit_code == 0
    data = yaml.safe_load(r.stdout)
    assert data["name"] == "jetson-orin-nano-8gb" and data["sources"]["peak_tops"]
    j = json.loads(invoke("targets", "show", "agx-orin", "--json").stdout)
    assert j["dla_cores"] == 2 and j["runtime"] == "tensorrt"


def test_profile_host_is_measured(model_onnx):
    r = invoke(
        "profile", str(model_onnx), "--target", "host", "--iters", "20", "--warmup", "2", "--json"
    )
    assert r.exit_code == 0, r.stderr
    out = json.loads(r.stdout)
    m = out["measured"]
    assert m["iters"] == 20 and m["threads"] == 1 and m["p50_ms"] <= m["p99_ms"]
    assert "predicted" in out  # the host's cost model is shown beside the measurement


def test_profile_jetson_is_predicted_and_labelled(model_onnx):
    r = invoke(
        "profile", str(model_onnx), "--target", "jetson-orin-nano-8gb", "--precision", "fp16"
    )
    assert r.exit_code == 0, r.stderr
    assert "predicted (fp16, cost model, not measured)" in r.stdout
    assert "measured:" not in r.stdout
    band = builtin_profiles()["jetson-orin-nano-8gb"].prediction_range
    assert (
        band is not None
        and "range: " in r.stdout
        and "central 80% of published / predicted" in r.stdout
    )
    j = json.loads(
        invoke(
            "profile", str(model_onnx), "--target", "jetson", "--json", "--precision", "int8"
        ).stdout
    )
    assert "measured" not in j and j["predicted"]["precision"] == "int8"
    total, (lo, hi) = j["predicted"]["total_ms"], j["predicted"]["range_ms"]
    assert (lo, hi) == pytest.approx((total * band.low, total * band.high))
    assert j["predicted"]["range_coverage"] == band.coverage
    assert all(
        la["precision"] == "int8"
        for la in j["predicted"]["layers"]
        if la["op_class"] != "elementwise"
    )


def test_profile_errors_one_line(model_onnx, tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not onnx")
    for args, needle in [
        ((str(bad), "--target", "jetson"), "not a valid ONNX model"),
        ((str(tmp_path / "none.onnx"),), "ONNX file not found"),
        ((str(model_onnx), "--target", "jetson-nano", "--precision", "int8"), "no int8 path"),
        ((str(model_onnx), "--target", "nope"), "unknown target"),
    ]:
        r = invoke("profile", *args)
        lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
        assert r.exit_code == 1 and len(lines) == 1 and needle in lines[0], (args, r.stderr)


def test_bad_user_profile_negative_bandwidth(tmp_path):
    p = yaml.safe_load(invoke("targets", "show", "jetson").stdout)
    p["memory_bandwidth_gbs"] = -5
    f = tmp_path / "bad.yaml"
    f.write_text(yaml.safe_dump(p))
    r = invoke("targets", "show", str(f))
    assert r.exit_code == 1 and "memory_bandwidth_gbs" in r.stderr


def test_calibrated_user_profile_wins(tmp_path, monkeypatch):
    from edgekd.targets import get_target

    p = yaml.safe_load(invoke("targets", "show", "host").stdout)
    p["cost_model"]["layer_overhead_us"] = 123.0
    monkeypatch.setenv("EDGEKD_HOME", str(tmp_path))
    (tmp_path / "targets").mkdir()
    (tmp_path / "targets" / "host.yaml").write_text(yaml.safe_dump(p))
    assert get_target("host").cost_model.layer_overhead_us == 123.0


def test_calibrate_writes_user_profile(tmp_path, monkeypatch):
    """The real calibration path on two small models (the full set takes a minute)."""
    import edgekd.profiling.calibrate as cal
    from edgekd.targets import get_target

    monkeypatch.setenv("EDGEKD_HOME", str(tmp_path))
    monkeypatch.setattr(cal, "CALIBRATION_MODELS", ("resnet10t", "lcnet_050"))
    r = invoke("profile", "--calibrate", "--target", "host", "--json")
    assert r.exit_code == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["calibration"]["samples"] == 4  # 2 models x {fp32, int8}
    written = tmp_path / "targets" / "host.yaml"
    assert out["written_to"] == str(written) and written.exists()
    prof = get_target("host")
    assert prof.fit["models"] == ["resnet10t", "lcnet_050"]
    assert prof.cost_model.model_dump() == out["cost_model"]
    assert "profile --calibrate" in prof.sources["cost_model"]


def test_calibrate_refuses_a_device_target():
    r = invoke("profile", "--calibrate", "--target", "jetson")
    assert r.exit_code == 1 and "only the host can be calibrated" in r.stderr


def test_lint_command(model_onnx, tmp_path):
    r = invoke("lint", str(model_onnx), "--trt", "8.5", "--json")
    assert r.exit_code == 0 and json.loads(r.stdout)["errors"] == 0
    r = invoke("lint", str(model_onnx), "--trt", "8.2")  # opset 17 > 13
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert r.exit_code == 1 and len(lines) == 1 and "opset" in lines[0]
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"junk")
    r = invoke("lint", str(bad))
    assert r.exit_code == 1 and "not a valid ONNX model" in r.stderr
    r = invoke("lint", str(model_onnx), "--target", "host")
    assert r.exit_code == 1 and "does not run TensorRT" in r.stderr

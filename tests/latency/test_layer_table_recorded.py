"""The device loop on a real recorded profile: trtexec --exportProfile of torchvision resnet18
(FP16, TensorRT 10.4, RTX 3060 Laptop GPU), published by fuzzylabs/edge-vision-power-estimation
at 6d8ac68 (desktop/torch_onnx_trtexec/results/resnet18/resnet18_fp16.profile.json, Apache-2.0),
copied byte for byte. No Jetson profile of a torchvision/timm model with ONNX node names was
found in public sources; the loop is the same on any TensorRT GPU.

Profile once, and every later prediction of a layer with the same signature (op, class,
precision, FLOPs, bytes) on that target is the measured time: resnet34, never profiled, is
then costed mostly from resnet18's measurements."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edgekd.latency.cost import predict_latency
from edgekd.latency.graph import costed_layers, load_onnx
from edgekd.latency.layer_table import _TOKEN, learn_from_trtexec, load_table, signature
from edgekd.targets import load_profile_file

DATA = Path(__file__).parent / "data"
PROFILE = DATA / "rtx3060-resnet18-fp16.profile.json"


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGEKD_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


@pytest.fixture(scope="module")
def onnx_files(tmp_path_factory):
    from edgekd.profiling.fit import standin_onnx

    work = tmp_path_factory.mktemp("tv")
    return {
        n: standin_onnx(f"torchvision.models.{n}", (3, 224, 224), work)
        for n in ("resnet18", "resnet34")
    }


def test_a_recorded_profile_teaches_the_target_and_later_models_use_it(onnx_files, home):
    target = load_profile_file(DATA / "rtx3060-laptop.yaml")
    r18, r34 = onnx_files["resnet18"], onnx_files["resnet34"]
    before18 = predict_latency(r18, target, "fp16")
    before34 = predict_latency(r34, target, "fp16")
    assert not any(c.bound == "measured" for c in before18.layers + before34.layers)

    learned = learn_from_trtexec(r18, target, "fp16", PROFILE)

    # by definition: an entry matches when one of its name's tokens is an ONNX node name
    nodes = {n.name for n in load_onnx(r18).graph.node}
    entries = json.loads(PROFILE.read_text())[1:]
    unmatched = [e for e in entries if not set(_TOKEN.findall(e["name"])) & nodes]
    assert learned["unmatched_ms"] == pytest.approx(sum(e["averageMs"] for e in unmatched))
    assert learned["layers_costed"] == len(before18.layers)

    # every later prediction of a layer whose signature was measured uses the measurement
    known = {signature(la) for la in costed_layers(load_onnx(r18), target, "fp16")}
    after18 = predict_latency(r18, target, "fp16")
    after34 = predict_latency(r34, target, "fp16")
    layers34 = costed_layers(load_onnx(r34), target, "fp16")
    sigs = load_table("rtx-3060-laptop")
    assert (home / "targets/layer-tables/rtx-3060-laptop.json").is_file()
    for la, cost in zip(layers34, after34.layers, strict=True):
        assert (cost.bound == "measured") == (signature(la) in sigs)
    measured34 = sum(c.bound == "measured" for c in after34.layers)
    assert measured34 >= len(after34.layers) - 2  # resnet34 repeats resnet18's layer shapes
    assert {signature(la) for la in layers34} & known
    # the roofline's figure before and the profile-backed one after, for the README
    print(f"resnet18: {before18.total_ms:.3f} -> {after18.total_ms:.3f} ms; resnet34: "
          f"{before34.total_ms:.3f} -> {after34.total_ms:.3f} ms ({measured34}/"
          f"{len(after34.layers)} layers measured)")  # fmt: skip

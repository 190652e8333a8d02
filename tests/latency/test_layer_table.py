"""Measured per-layer times (a trtexec --exportProfile) feed the target's cost model."""

from __future__ import annotations

import json
import statistics

import pytest
import torch

from edgekd.export import export_onnx
from edgekd.latency.cost import predict_latency
from edgekd.latency.graph import graph_layers, load_onnx, resolve_precision
from edgekd.latency.layer_table import learn_from_trtexec, table_path
from edgekd.models import create_timm
from edgekd.targets import get_target

TARGET = "jetson-orin-nano-8gb"


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGEKD_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def _onnx(path, seed):
    torch.manual_seed(seed)
    export_onnx(create_timm("resnet10t", 10).eval(), path, (3, 32, 32))
    return path


def test_profile_entries_become_measured_layers(home, tmp_path):
    target = get_target(TARGET)
    onnx = _onnx(tmp_path / "a.onnx", 0)
    fp, implicit = resolve_precision(target, "fp16", False)
    layers = graph_layers(load_onnx(onnx), "tensorrt", fp, implicit)
    picked = [layer for layer in layers if layer.op_class == "dense_conv"][:3]
    entries = [{"count": 100}]
    for i, layer in enumerate(picked):  # TensorRT-style names: fused nodes joined with " + "
        name = " + ".join([layer.name, *layer.fused])
        entries.append({"name": name, "timeMs": 1.0, "averageMs": 0.1 * (i + 1),
                        "medianMs": 0.1, "percentage": 1.0})  # fmt: skip
    entries.append({"name": f"Reformatting CopyNode for Input Tensor 0 to {picked[0].name}",
                    "averageMs": 0.01})  # fmt: skip
    entries.append({"name": "some plugin we cannot place", "averageMs": 0.5})
    prof = tmp_path / "profile.json"
    prof.write_text(json.dumps(entries))

    before = predict_latency(onnx, target, "fp16")
    learned = learn_from_trtexec(onnx, target, "fp16", prof)
    assert learned["layers_matched"] == 3 and learned["unmatched_ms"] == pytest.approx(0.5)
    assert table_path(TARGET).exists() and str(home) in learned["table"]

    # the same architecture exported again (other weights, same shapes) uses the table
    other = _onnx(tmp_path / "b.onnx", 1)
    after = predict_latency(other, target, "fp16")
    by_name = {lc.name: lc for lc in after.layers}
    expected = [0.1 + 0.01, 0.2, 0.3]  # the reformat is charged to the layer it feeds
    for layer, ms in zip(picked, expected, strict=True):
        assert by_name[layer.name].bound == "measured"
        assert by_name[layer.name].ms == pytest.approx(ms)
    assert after.to_dict()["layers_from_measurements"] == 3
    rest_before = {lc.name: lc.ms for lc in before.layers if lc.name not in by_name or
                   by_name[lc.name].bound != "measured"}  # fmt: skip
    for name, ms in rest_before.items():
        assert by_name[name].ms == pytest.approx(ms)  # everything else: the roofline


def test_a_damaged_table_is_ignored(home, tmp_path):
    onnx = _onnx(tmp_path / "a.onnx", 0)
    target = get_target(TARGET)
    clean = predict_latency(onnx, target, "fp16").total_ms
    path = table_path(TARGET)
    path.parent.mkdir(parents=True)
    path.write_text("{not json")
    assert predict_latency(onnx, target, "fp16").total_ms == pytest.approx(clean)


def test_a_myelin_foreign_node_is_charged_to_the_layers_it_spans(home, tmp_path):
    from edgekd.latency.layer_table import match_profile, signature
    from edgekd.latency.trtexec import LayerTime

    target = get_target(TARGET)
    onnx = _onnx(tmp_path / "a.onnx", 0)
    fp, implicit = resolve_precision(target, "fp16", False)
    layers = graph_layers(load_onnx(onnx), "tensorrt", fp, implicit)
    first, last = layers[2], layers[5]
    # the form NVIDIA/TensorRT #3768 shows: {ForeignNode[<first node>...<last node>]}
    entry = LayerTime(f"{{ForeignNode[{first.name}...{last.name}]}}", 1.2, None, None)
    measured, unmatched = match_profile(layers, [entry])
    span = layers[2:6]
    flops = [max(x.flops, 1.0) for x in span]
    want: dict[str, list[float]] = {}
    for x, f in zip(span, flops, strict=True):
        want.setdefault(signature(x), []).append(1.2 * f / sum(flops))
    assert unmatched == 0.0 and set(measured) == set(want)
    for k, v in want.items():  # the table keeps the median per signature
        assert measured[k] == pytest.approx(statistics.median(v))
    assert sum(sum(v) for v in want.values()) == pytest.approx(1.2)

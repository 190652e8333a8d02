"""Precision per block for TensorRT's Q/DQ graph (edgekd.quant.trt_precision), costed by the
target's cost model and layer table, on a hand-built network whose answer is known."""

import numpy as np
import onnx
import pytest
import torch
from torch.utils.data import TensorDataset

from edgekd.export import export_onnx
from edgekd.latency.cost import predict_latency
from edgekd.latency.graph import costed_layers
from edgekd.latency.layer_table import signature, table_path, update_table
from edgekd.quant import quantize_int8
from edgekd.quant.sensitivity import quantized_layers
from edgekd.quant.trt_precision import costed_trt_precision, drop_qdq, quantizer_owner, trt_blocks
from edgekd.targets import get_target
from tests.quant.test_ort_qat import Tiny

SHAPE = (3, 8, 8)


@pytest.fixture()
def quantized(tmp_path):
    """Tiny in Model Optimizer's fake-quant form and its all-INT8 Q/DQ export."""
    torch.manual_seed(0)
    calib = TensorDataset(torch.randn(32, *SHAPE), torch.zeros(32).long())
    q = quantize_int8(Tiny().eval(), calib, 16)
    return q, export_onnx(q, tmp_path / "int8.onnx", SHAPE).path


def _qdq(model) -> int:
    return sum(n.op_type == "QuantizeLinear" for n in model.graph.node)


def _run(model, x):
    import onnxruntime as ort

    s = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return s.run(None, {s.get_inputs()[0].name: x})[0]


def test_quantizer_owner_reads_model_optimizer_node_names():
    assert quantizer_owner("/layer1/layer1.0/conv1/input_quantizer/QuantizeLinear") == (
        "layer1.0.conv1")
    assert quantizer_owner("/fc/weight_quantizer/DequantizeLinear") == "fc"
    assert quantizer_owner("/layer1/layer1.0/conv1/Conv") is None


def test_a_residual_tap_joins_the_block_that_reads_it():
    names = ["conv_stem", "blocks.0.0.conv", "blocks.0.0.bn3.drop.edgekd_residual",
             "blocks.0.1.conv", "blocks.0.1.conv2", "fc"]  # fmt: skip
    assert trt_blocks(names) == {
        "conv_stem": ["conv_stem"], "blocks.0.0": ["blocks.0.0.conv"],
        "blocks.0.1": ["blocks.0.0.bn3.drop.edgekd_residual", "blocks.0.1.conv",
                       "blocks.0.1.conv2"],
        "fc": ["fc"],
    }  # fmt: skip


def test_dropping_a_layers_qdq_is_the_export_with_its_quantizers_off(quantized, tmp_path):
    q, path = quantized
    base = onnx.load(str(path))
    off = {"se", "fc"}
    dropped = drop_qdq(base, off)
    for name, qs in quantized_layers(q).items():
        for x in qs:
            x.disable() if name in off else None
    again = onnx.load(str(export_onnx(q, tmp_path / "off.onnx", SHAPE).path))
    assert _qdq(dropped) == _qdq(again) == _qdq(base) - 4  # input and weight, twice
    x = np.random.default_rng(0).standard_normal((2, *SHAPE)).astype(np.float32)
    np.testing.assert_allclose(_run(dropped, x), _run(again, x), atol=1e-6)
    target = get_target("jetson-orin-nano-8gb")
    onnx.save(dropped, str(tmp_path / "dropped.onnx"))
    assert predict_latency(tmp_path / "dropped.onnx", target, "int8").total_ms == pytest.approx(
        predict_latency(tmp_path / "off.onnx", target, "int8").total_ms)


def test_the_roofline_alone_keeps_every_layer_int8(quantized):
    """INT8's peak is above FP16's and its bytes fewer: no cut costs less than all INT8."""
    q, path = quantized
    c = costed_trt_precision(q, path, get_target("jetson-orin-nano-8gb"))
    assert c.kept == "int8" and c.float_blocks == [] and c.how == "jetson-orin-nano-8gb"
    assert all(x.is_enabled for qs in quantized_layers(q).values() for x in qs)


def test_a_layer_table_that_says_int8_is_slow_moves_the_choice(quantized, tmp_path):
    """The device's layer table says the INT8 classifier Gemm takes 5 ms (measured, as a
    trtexec profile would give it), so fc goes to float. At 8x8 on the Orin every other layer
    is bound by launch overhead or the SM fill floor, the same in INT8 as in float, so the
    float tail grows over every block whose INT8 form is no faster: from conv.0 (the stem
    stays INT8, since all-float is the FP32 artifact's place, not a cut)."""
    q, path = quantized
    target = get_target("jetson-orin-nano-8gb").model_copy(update={"name": "test-orin"})
    gemm = next(x for x in costed_layers(onnx.load(str(path)), target, "int8")
                if x.op_class == "gemm" and x.precision == "int8")  # fmt: skip
    update_table(target.name, {signature(gemm): 5.0}, "test")
    try:
        ms = {}
        for fl in (["fc"], ["se", "fc"], ["conv.0", "se", "fc"]):
            onnx.save(drop_qdq(onnx.load(str(path)), set(fl)), str(tmp_path / "c.onnx"))
            ms[len(fl)] = predict_latency(tmp_path / "c.onnx", target, "int8").total_ms
        assert ms[1] == pytest.approx(ms[2]) == pytest.approx(ms[3])  # the ties
        c = costed_trt_precision(q, path, target)
        assert c.kept == "mixed" and c.float_blocks == ["conv.0", "se", "fc"]
        assert c.int8_ms > 5.0 > c.mixed_ms == pytest.approx(ms[3])
        assert list(quantized_layers(q)) == ["stem.0"]  # the others' quantizers are off
        row = {b["block"]: b for b in c.blocks}
        assert row["stem.0"]["precision"] == "int8" and row["fc"]["precision"] != "int8"
        assert "costed by the test-orin cost model" in c.line()
    finally:
        table_path(target.name).unlink()

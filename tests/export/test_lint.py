"""TensorRT lint rules on hand-built graphs: each rule fires on its case and not on a clean one."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from edgekd.export.lint import lint_model, opset_range
from tests.latency import onnx_graphs as G


def rules(model, trt="10.3", severity=None):
    return sorted(
        {f.rule for f in lint_model(model, trt) if severity is None or f.severity == severity}
    )


def qdq_graph(zp=0, zp_type=np.int8, scale=0.1, w_axis=0, with_out_q=True, opset=17):
    """input -> Q/DQ -> Conv(DQ(weights)) [-> Q/DQ]: a TensorRT-style explicit INT8 conv."""
    sc = G.init("sc", scale)
    zpi = G.init("zp", zp, zp_type)
    w = G.init("w", np.ones((8, 3, 3, 3)))
    wsc = G.init("wsc", np.full(8 if w_axis == 0 else 3, 0.01))
    wzp = G.init("wzp", np.zeros(8 if w_axis == 0 else 3), np.int8)
    nodes = [
        helper.make_node("QuantizeLinear", ["input", "sc", "zp"], ["xq"], name="q_in"),
        helper.make_node("DequantizeLinear", ["xq", "sc", "zp"], ["xd"], name="dq_in"),
        helper.make_node("QuantizeLinear", ["w", "wsc", "wzp"], ["wq"], axis=w_axis, name="q_w"),
        helper.make_node(
            "DequantizeLinear", ["wq", "wsc", "wzp"], ["wd"], axis=w_axis, name="dq_w"
        ),
        helper.make_node("Conv", ["xd", "wd"], ["logits"], pads=[1, 1, 1, 1], name="conv"),
    ]
    g = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 8, 8, 8])],
        initializer=[sc, zpi, w, wsc, wzp],
    )
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])


def test_clean_qdq_conv_passes():
    assert rules(qdq_graph()) == []


def test_clean_float_graph_passes():
    assert rules(G.conv_bn_relu(), "8.5") == []


@pytest.mark.parametrize(
    "trt,opset,ok",
    [
        ("8.2", 13, True),
        ("8.2", 17, False),
        ("8.5", 17, True),
        ("8.5", 18, False),
        ("10.3", 20, True),
        ("10.3", 21, False),
    ],
)
def test_opset_range(trt, opset, ok):
    m = qdq_graph(opset=opset)
    assert ("opset" not in rules(m, trt)) == ok
    assert opset_range((8, 5)) == (7, 17)


def test_nonzero_zero_point_and_uint8():
    assert "qdq-zero-point" in rules(qdq_graph(zp=3))
    assert "qdq-type" in rules(qdq_graph(zp=0, zp_type=np.uint8), "8.5")
    assert "qdq-type" not in rules(qdq_graph(zp=0, zp_type=np.uint8), "10.3")


def test_non_positive_scale():
    assert "qdq-scale" in rules(qdq_graph(scale=0.0))
    assert "qdq-scale" in rules(qdq_graph(scale=-0.5))


def test_weight_axis_must_be_zero():
    assert "qdq-weight-axis" in rules(qdq_graph(w_axis=1))
    assert "qdq-weight-axis" not in rules(qdq_graph(w_axis=0))


@pytest.mark.parametrize(
    "op,trt,bad",
    [
        ("QLinearConv", "10.3", True),
        ("DynamicQuantizeLinear", "10.3", True),
        ("LayerNormalization", "8.5", True),
        ("LayerNormalization", "8.6", False),
    ],
)
def test_unsupported_ops(op, trt, bad):
    m = G.conv_bn_relu()
    m.graph.node.append(helper.make_node(op, ["logits"], ["extra"], name="odd"))
    assert ("unsupported-op" in rules(m, trt)) == bad


def test_residual_add_and_float_island_warnings():
    m = qdq_graph()
    g = m.graph
    # a float conv fed by the quantized conv's output, and an Add of two activations
    g.initializer.append(G.init("w2", np.ones((8, 8, 1, 1))))
    g.node.append(helper.make_node("Conv", ["logits", "w2"], ["c2"], name="float_conv"))
    g.node.append(helper.make_node("Add", ["logits", "c2"], ["sum"], name="residual"))
    found = {(f.rule, f.node, f.severity) for f in lint_model(m, "10.3")}
    assert ("float-island", "float_conv", "warning") in found
    assert ("residual-add-float", "residual", "warning") in found
    assert ("float-island", "conv", "warning") not in found


def test_lint_of_a_real_modelopt_export_has_no_errors(tmp_path, digits):
    import torch
    from torch.utils.data import Subset

    from edgekd.export import export_onnx
    from edgekd.models import create_timm
    from edgekd.quant import quantize_int8

    torch.manual_seed(0)
    q = quantize_int8(create_timm("resnet10t", 10), Subset(digits.calib_source, range(16)))
    path = export_onnx(q, tmp_path / "q.onnx", (3, 32, 32)).path
    for trt in ("8.5", "10.3"):
        assert rules(onnx.load(str(path)), trt, severity="error") == []

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
        ("8.4", 17, True),  # onnx-tensorrt 8.4 operators.md: "up to Opset 17"
        ("10.9", 22, True),
        ("10.15", 24, True),
        ("10.15", 25, False),
        ("11.1", 25, True),
    ],
)
def test_opset_range(trt, opset, ok):
    m = qdq_graph(opset=opset)
    assert ("opset" not in rules(m, trt)) == ok
    assert opset_range((8, 5)) == (7, 17)


def test_nonzero_zero_point_and_uint8():
    assert "qdq-zero-point" in rules(qdq_graph(zp=3))
    assert "qdq-type" in rules(qdq_graph(zp=0, zp_type=np.uint8), "8.5")
    # UINT8 Q/DQ is refused by the 10.x importer too (onnx-tensorrt 10.1-GA
    # onnxOpImporters.cpp:1349 "Found unsupported input type of UINT8")
    assert "qdq-type" in rules(qdq_graph(zp=0, zp_type=np.uint8), "10.3")
    assert "qdq-type" in rules(qdq_graph(zp=0, zp_type=np.uint8), "11.1")


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


def _replace(model, node_name, **kw):
    """A copy of model with node `node_name` rebuilt with other inputs/outputs/attributes."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    for i, n in enumerate(m.graph.node):
        if n.name == node_name:
            new = helper.make_node(n.op_type, kw.get("inputs", list(n.input)),
                                   kw.get("outputs", list(n.output)), name=n.name,
                                   **kw.get("attrs", {}))  # fmt: skip
            m.graph.node.remove(n)
            m.graph.node.insert(i, new)
            return m
    raise KeyError(node_name)


def test_quantize_without_zero_point_is_uint8():
    m = _replace(qdq_graph(), "q_in", inputs=["input", "sc"])
    assert "qdq-type" in rules(m)


def test_per_channel_scale_on_an_activation_is_an_error():
    m = qdq_graph()
    m.graph.initializer.append(G.init("sc3", np.full(3, 0.1)))
    m.graph.initializer.append(G.init("zp3", np.zeros(3), np.int8))
    m = _replace(m, "q_in", inputs=["input", "sc3", "zp3"], attrs={"axis": 1})
    m = _replace(m, "dq_in", inputs=["xq", "sc3", "zp3"], attrs={"axis": 1})
    assert "qdq-activation-per-channel" in rules(m)
    assert "qdq-activation-per-channel" not in rules(qdq_graph())  # weights per channel: fine


def test_qdq_needs_opset_10_and_per_axis_13():
    assert "qdq-opset" in rules(qdq_graph(opset=12), "8.5")  # per-axis weights at 12
    assert "qdq-opset" not in rules(qdq_graph(opset=13), "8.5")


def test_float_island_looks_back_through_maxpool_and_reshape():
    m = qdq_graph()
    m = _replace(m, "conv", inputs=["xp", "wd"])
    pool = helper.make_node("MaxPool", ["xd"], ["xp"], kernel_shape=[1, 1], name="pool")
    m.graph.node.insert(len(m.graph.node) - 1, pool)
    assert "float-island" not in rules(m)  # TensorRT moves the DQ forward through MaxPool
    m2 = _replace(m, "pool", inputs=["input"])  # the pool reads the raw input: a real island
    assert "float-island" in rules(m2)


def test_dla_needs_static_shapes_and_a_tensorrt_with_dla():
    m = qdq_graph()
    assert [f.rule for f in lint_model(m, "10.3", dla=True)] == []
    m.graph.input[0].type.tensor_type.shape.dim[0].dim_param = "batch"
    assert "dla-shape" in {f.rule for f in lint_model(m, "10.3", dla=True)}
    assert "dla-shape" in {f.rule for f in lint_model(qdq_graph(), "11.1", dla=True)}


def test_strongly_typed_scale_must_match_the_input_type():
    m = qdq_graph()
    for init in m.graph.initializer:
        if init.name == "sc":
            init.CopyFrom(G.init("sc", np.float16(0.1), np.float16))
    assert "qdq-scale-type" in rules(m, "10.3")
    assert "qdq-scale-type" not in rules(m, "8.6")  # weakly typed: no such rule

import numpy as np
import pytest

from edgekd.latency.graph import graph_layers
from tests.latency import onnx_graphs as G

# Conv 3->8, 3x3, pad 1 on 8x8: each of 8*8*8 outputs takes 3*3*3 multiply-adds
CONV_FLOPS = 2 * (8 * 8 * 8) * (3 * 3 * 3)
IN, W, B, OUT = 3 * 8 * 8, 8 * 3 * 3 * 3, 8, 8 * 8 * 8


def test_conv_flops_bytes_and_fusion():
    (layer,) = graph_layers(G.conv_bn_relu(), "tensorrt")
    assert layer.op_class == "dense_conv" and layer.precision == "fp32"
    assert layer.flops == CONV_FLOPS == 27648
    assert layer.bytes == (IN + W + B + OUT) * 4
    assert layer.fused == ["BatchNormalization", "Relu"]


def test_fp16_halves_bytes():
    (layer,) = graph_layers(G.conv_bn_relu(), "tensorrt", float_precision="fp16")
    assert layer.precision == "fp16" and layer.bytes == (IN + W + B + OUT) * 2


def test_depthwise_is_its_own_class():
    (layer,) = graph_layers(G.conv_bn_relu(group=8, cout=8), "tensorrt")
    assert layer.op_class == "depthwise_conv"
    assert layer.flops == 2 * (8 * 8 * 8) * (1 * 3 * 3)


def test_gemm_flops():
    (layer,) = graph_layers(G.gemm(m=1, k=16, n=10), "onnxruntime")
    assert layer.op_class == "gemm" and layer.flops == 2 * 1 * 10 * 16


def test_tensorrt_runs_any_dq_conv_in_int8_and_drops_qdq():
    layers = graph_layers(G.qdq_conv(output_q=False), "tensorrt")
    assert [(la.op, la.precision) for la in layers] == [("Conv", "int8")]
    assert layers[0].bytes == IN + W + OUT  # one byte per element in INT8


def test_onnxruntime_fuses_only_dq_conv_q():
    fused = graph_layers(G.qdq_conv(output_q=True), "onnxruntime")
    # the input's Q (float -> int8) and the last DQ (int8 -> float output) run; the DQ into
    # the Conv, the weight's DQ and the Q after it become one integer kernel
    assert sorted((la.op, la.precision) for la in fused) == [
        ("Conv", "int8"),
        ("DequantizeLinear", "fp32"),
        ("QuantizeLinear", "fp32"),
    ]
    unfused = graph_layers(G.qdq_conv(output_q=False), "onnxruntime")
    ops = sorted((la.op, la.precision) for la in unfused)
    assert ("Conv", "fp32") in ops
    assert ops.count(("DequantizeLinear", "fp32")) == 2  # activation and weight DQ every call
    assert ("QuantizeLinear", "fp32") in ops


def test_onnxruntime_folds_a_relu_into_a_q_whose_zero_point_is_the_minimum():
    # ORT's ReluQuantFusion: Relu -> Q goes when Q's zero point is its type's minimum (the clip
    # does the ReLU), and DQ -> Conv -> Q fuses; with another zero point the Relu stays and
    # the Conv runs in float
    for zp, dtype in ((0, np.uint8), (-128, np.int8)):
        ops = sorted((la.op, la.precision) for la in
                     graph_layers(G.qdq_conv_relu(zp, dtype), "onnxruntime"))  # fmt: skip
        assert ops == [("Conv", "int8"), ("DequantizeLinear", "fp32"),
                       ("QuantizeLinear", "fp32")], ops  # fmt: skip
    ops = [(la.op, la.precision) for la in graph_layers(G.qdq_conv_relu(128), "onnxruntime")]
    assert ("Conv", "fp32") in ops and ("QuantizeLinear", "fp32") in ops


def test_implicit_int8_quantizes_float_graph():
    (layer,) = graph_layers(G.conv_bn_relu(), "tensorrt", implicit_int8=True)
    assert layer.precision == "int8"


@pytest.mark.parametrize("runtime", ["tensorrt", "onnxruntime"])
def test_batch_axis_is_costed_at_one(runtime, tmp_path):
    from edgekd.export import export_onnx
    from edgekd.models import create_timm

    path = export_onnx(create_timm("resnet10t", 10), tmp_path / "m.onnx", (3, 32, 32)).path
    import onnx

    layers = graph_layers(onnx.load(str(path)), runtime)
    first = next(la for la in layers if la.op == "Conv")
    # resnet10t stem: 3->24 channels, 3x3, stride 2 on 32x32 -> 16x16 outputs
    assert first.flops == 2 * 24 * 16 * 16 * 3 * 3 * 3

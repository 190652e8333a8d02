"""Small hand-built ONNX graphs whose FLOPs and bytes can be worked out on paper."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def _model(nodes, inits, out_shape, in_shape=(1, 3, 8, 8)):
    g = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, list(in_shape))],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, list(out_shape))],
        initializer=inits,
    )
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(m)
    return m


def init(name, arr, dtype=np.float32):
    return numpy_helper.from_array(np.asarray(arr, dtype=dtype), name)


def conv_bn_relu(group: int = 1, cout: int = 8):
    """input 1x3x8x8 (or 1xCx8x8 for depthwise) -> Conv 3x3 pad 1 -> BN -> Relu."""
    cin = 3 if group == 1 else group
    w = init("w", np.ones((cout, cin // group, 3, 3)))
    b = init("b", np.zeros(cout))
    bn = [init(n, np.ones(cout)) for n in ("s", "bb", "mu", "var")]
    nodes = [
        helper.make_node(
            "Conv", ["input", "w", "b"], ["c"], pads=[1, 1, 1, 1], group=group, name="conv"
        ),
        helper.make_node("BatchNormalization", ["c", "s", "bb", "mu", "var"], ["n"], name="bn"),
        helper.make_node("Relu", ["n"], ["logits"], name="relu"),
    ]
    return _model(nodes, [w, b, *bn], (1, cout, 8, 8), in_shape=(1, cin, 8, 8))


def gemm(m=1, k=16, n=10):
    nodes = [helper.make_node("Gemm", ["input", "w", "b"], ["logits"], transB=1, name="fc")]
    return _model(
        nodes, [init("w", np.ones((n, k))), init("b", np.zeros(n))], (m, n), in_shape=(m, k)
    )


def _dq_conv(conv_out: str, input_zp_dtype) -> tuple[list, list]:
    """DQ(Q(input)) -> Conv(DQ(int8 weight)) -> `conv_out`: its nodes and initializers."""
    inits = [init("sc", 0.1), init("zp", 0, input_zp_dtype),
             init("w8", np.ones((8, 3, 3, 3)), np.int8), init("wsc", np.full(8, 0.01)),
             init("wzp", np.zeros(8), np.int8)]  # fmt: skip
    nodes = [
        helper.make_node("QuantizeLinear", ["input", "sc", "zp"], ["xq"], name="q_in"),
        helper.make_node("DequantizeLinear", ["xq", "sc", "zp"], ["xd"], name="dq_in"),
        helper.make_node("DequantizeLinear", ["w8", "wsc", "wzp"], ["wd"], axis=0, name="dq_w"),
        helper.make_node("Conv", ["xd", "wd"], [conv_out], pads=[1, 1, 1, 1], name="conv"),
    ]
    return nodes, inits


def qdq_conv(output_q: bool):
    """DQ(Q(input)) -> Conv(DQ(int8 weight)) [-> Q -> DQ]: the ORT-fusable pattern or not."""
    nodes, inits = _dq_conv("c" if output_q else "logits", np.int8)
    if output_q:
        nodes += [
            helper.make_node("QuantizeLinear", ["c", "sc", "zp"], ["cq"], name="q_out"),
            helper.make_node("DequantizeLinear", ["cq", "sc", "zp"], ["logits"], name="dq_out"),
        ]
    return _model(nodes, inits, (1, 8, 8, 8))


def qdq_conv_relu(zero_point: int, dtype=np.uint8):
    """DQ(Q(input)) -> Conv(DQ(int8 weight)) -> Relu -> Q(zero_point) -> DQ."""
    nodes, inits = _dq_conv("c", np.uint8)
    nodes += [
        helper.make_node("Relu", ["c"], ["r"], name="relu"),
        helper.make_node("QuantizeLinear", ["r", "sc", "zr"], ["rq"], name="q_out"),
        helper.make_node("DequantizeLinear", ["rq", "sc", "zr"], ["logits"], name="dq_out"),
    ]
    return _model(nodes, [*inits, init("zr", zero_point, dtype)], (1, 8, 8, 8))

"""ONNX Runtime's Q/DQ graph as a trainable torch module (edgekd.quant.ort_qat): the trained
graph is the exported one."""

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper
from torch import nn
from torch.utils.data import TensorDataset

from edgekd.errors import StageError
from edgekd.quant.ort_qat import OrtQdq, export_ort, ort_qdq_of, torch_name


class Tiny(nn.Module):
    """Conv-BN-ReLU, a residual Add, hard-swish, a squeeze-excite gate, pooling, a classifier:
    the op kinds that the ORT layout used to re-quantize."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU())
        self.conv = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1), nn.BatchNorm2d(8))
        self.se = nn.Conv2d(8, 8, 1)
        self.act = nn.Hardswish()
        self.fc = nn.Linear(8, 4)

    def forward(self, x):
        x = self.stem(x)
        x = self.act(self.conv(x) + x)
        x = x * torch.sigmoid(self.se(x.mean((2, 3), keepdim=True)))
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))


@pytest.fixture(scope="module")
def data():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(48, 3, 8, 8, generator=g)
    return TensorDataset(x, torch.randint(0, 4, (48,), generator=g)), x


@pytest.fixture()
def tiny(data):
    torch.manual_seed(0)
    m = Tiny()
    with torch.no_grad():  # BatchNorm statistics that folding must carry
        for bn in (m.stem[1], m.conv[1]):
            bn.running_mean.uniform_(-0.5, 0.5)
            bn.running_var.uniform_(0.5, 2.0)
            bn.weight.uniform_(0.5, 1.5)
    return m.eval()


def _ort(model_proto_or_path, x, optimized: bool = False) -> np.ndarray:
    import onnxruntime as ort

    so = ort.SessionOptions()
    if not optimized:  # the graph's own ONNX semantics, no fused integer kernels
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    src = model_proto_or_path
    src = src.SerializeToString() if isinstance(src, onnx.ModelProto) else str(src)
    sess = ort.InferenceSession(src, so, providers=["CPUExecutionProvider"])
    return sess.run(None, {sess.get_inputs()[0].name: x.numpy()})[0]


def _train_steps(model: OrtQdq, x: torch.Tensor, steps: int = 5) -> None:
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    model.train()
    for _ in range(steps):
        opt.zero_grad()
        model(x).logsumexp(1).mean().backward()
        opt.step()
    model.eval()


def test_the_module_is_the_ort_graph(tiny, data):
    ds, x = data
    q = ort_qdq_of(tiny, (3, 8, 8), ds, batch_size=16)
    ops = {n.op_type for n in q.template.graph.node}
    assert "BatchNormalization" not in ops  # folded into the convolutions
    assert {"Add", "Mul", "ReduceMean", "HardSigmoid"} <= ops  # tensors QAT never saw before
    assert len(q.layers) == 4 and len(q.quants) > 8
    with torch.no_grad():
        got = q(x).numpy()
    assert np.allclose(got, _ort(q.template, x), atol=1e-5)


def test_trained_graph_is_the_exported_graph(tiny, data, tmp_path):
    ds, x = data
    q = ort_qdq_of(tiny, (3, 8, 8), ds, batch_size=16, learn_ranges=True)
    before = {k: float(a.scale) for k, a in q.quants.items()}
    zps = {k: int(a.zero_point) for k, a in q.quants.items()}
    w0 = q.layers["stem_0"].weight.detach().clone()
    _train_steps(q, x)
    assert not torch.equal(w0, q.layers["stem_0"].weight)
    assert any(abs(float(a.scale) - before[k]) > 0 for k, a in q.quants.items())  # LSQ moved
    assert {k: int(a.zero_point) for k, a in q.quants.items()} == zps  # zero points stay
    path = export_ort(q, tmp_path / "trained.onnx")
    with torch.no_grad():
        got = q(x).numpy()
    assert np.allclose(got, _ort(path, x), atol=1e-4)
    # ORT's fused integer kernels run the same graph: same top-1 on these images
    assert (got.argmax(1) == _ort(path, x, optimized=True).argmax(1)).mean() >= 0.95


def test_exported_integers_follow_ort_definitions(tiny, data, tmp_path):
    """Weights: symmetric INT8 per output channel, scale max|w|/127; bias: INT32 with scale
    input-scale x weight-scale (ONNX Runtime's quantizer, quant_utils / qdq_quantizer)."""
    ds, x = data
    q = ort_qdq_of(tiny, (3, 8, 8), ds, batch_size=16)
    _train_steps(q, x, 2)
    m = onnx.load(str(export_ort(q, tmp_path / "t.onnx")))
    inits = {t.name: numpy_helper.to_array(t) for t in m.graph.initializer}
    nodes = {n.name: n for n in m.graph.node}
    layer = q.layers["stem_0"]
    w = layer.weight.detach().numpy()
    wdq = nodes[q.weight_dq["stem_0"]]
    scale = np.abs(w).reshape(8, -1).max(1) / 127
    assert np.allclose(inits[wdq.input[1]], scale, rtol=1e-6)
    assert inits[wdq.input[0]].dtype == np.int8
    assert np.array_equal(inits[wdq.input[0]], np.round(w / scale[:, None, None, None]))
    bdq = nodes[q.bias_dq["stem_0"]]
    s_in = float(layer.input_quant.scale)
    assert np.allclose(inits[bdq.input[1]], s_in * scale, rtol=1e-6)
    b = layer.bias.detach().numpy()
    assert np.array_equal(inits[bdq.input[0]], np.round(b / (s_in * scale)).astype(np.int32))


def test_state_round_trip_and_float_layer(tiny, data, tmp_path):
    ds, x = data
    q = ort_qdq_of(tiny, (3, 8, 8), ds, batch_size=16)
    _train_steps(q, x, 2)
    q.layers["fc"].disable()  # mixed precision: the classifier in float
    torch.save({"model": q.state_dict(), "extra": q.extra_state()}, tmp_path / "q.pt")
    ck = torch.load(tmp_path / "q.pt", weights_only=True)
    back = OrtQdq.from_state(ck["extra"], ck["model"])
    assert not back.layers["fc"].quantized and back.layers["stem_0"].quantized
    with torch.no_grad():
        assert torch.equal(back(x), q(x))
    path = export_ort(back, tmp_path / "mixed.onnx")
    g = onnx.load(str(path)).graph
    gemm = next(n for n in g.node if n.op_type == "Gemm")
    assert gemm.input[1] in {t.name for t in g.initializer}  # a float weight, no DQ
    with torch.no_grad():
        assert np.allclose(back(x).numpy(), _ort(path, x), atol=1e-4)


def test_an_op_it_cannot_train_is_one_clear_error(tiny, data):
    ds, _ = data
    q = ort_qdq_of(tiny, (3, 8, 8), ds, batch_size=16)
    bad = onnx.ModelProto()
    bad.CopyFrom(q.template)
    node = next(n for n in bad.graph.node if n.op_type == "HardSigmoid")
    node.op_type = "Celu"
    with pytest.raises(StageError, match="cannot train") as e:
        OrtQdq(bad)
    assert "Celu" in str(e.value)


def test_torch_name_of_an_onnx_node():
    assert torch_name("/layer1/layer1.0/conv1/Conv") == "layer1.0.conv1"
    assert torch_name("/blocks/blocks.1/blocks.1.0/conv_pw/Conv") == "blocks.1.0.conv_pw"
    assert torch_name("/fc/Gemm") == "fc"


def test_a_float_region_drops_its_qdq(tiny, data, tmp_path):
    """Tiny: stem -> conv -> Add(conv, stem) -> hard-swish -> x * sigmoid(se(mean(x))) -> pool
    -> fc. With se and fc in float, a tensor loses its Q/DQ only when every layer it reaches
    through non-layer ops is float: se's output and the sigmoid's (between se and fc) and the
    logits (fc's output). Everything that also reaches stem or conv through the Add keeps its
    pair (derived from the graph by hand)."""
    ds, x = data
    q = ort_qdq_of(tiny, (3, 8, 8), ds, batch_size=16)
    q.set_float(["se", "fc"])
    assert q.float_layers() == ["se", "fc"]
    off = {k for k, a in q.quants.items() if not a.enabled}
    assert off == {"se_Conv_output_0", "Sigmoid_output_0", "logits_QuantizeLinear_Input"}
    path = export_ort(q, tmp_path / "mixed.onnx")
    g = onnx.load(str(path)).graph
    kept = {n for k in set(q.quants) - off for n in q.act_nodes[k]}
    consts = {*q.weight_dq.values(), *q.bias_dq.values()}
    qdq = {n.name for n in g.node if n.op_type in ("QuantizeLinear", "DequantizeLinear")}
    assert qdq - consts == kept
    assert sum(n.op_type == "Conv" for n in g.node) == 3  # se's weight is float, no DQ
    with torch.no_grad():
        torch_out, ort_out = q(x).numpy(), _ort(path, x)
    # ORT may round one element of fc's quantized input to the neighbouring level (its pooling
    # sums in another order: seen with onnxruntime 1.32, one of 48 rows): the float fc then
    # moves that row by exactly one step s times one column of its weight, never by more
    bad = np.flatnonzero(~np.isclose(torch_out, ort_out, atol=1e-4).all(axis=1))
    assert len(bad) <= 1, bad
    s = float(q.quants["GlobalAveragePool_output_0"].scale)
    w = tiny.fc.weight.detach().numpy()  # [classes, features]
    for row in bad:
        d = ort_out[row] - torch_out[row]
        assert any(np.allclose(np.abs(d), s * np.abs(w[:, j]), atol=2e-5)
                   for j in range(w.shape[1])), (row, d)  # fmt: skip
    q.set_float([])  # back to all INT8: every quantizer on
    assert all(a.enabled for a in q.quants.values())
    with pytest.raises(StageError, match="no such layer"):
        q.set_float(["nope"])


class ResidualRelu(nn.Module):
    """resnet's basic block: Conv-BN-ReLU, Conv-BN, the residual Add, then a ReLU."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU())
        self.c1 = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU())
        self.c2 = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1), nn.BatchNorm2d(8))
        self.fc = nn.Linear(8, 4)

    def forward(self, x):
        x = self.stem(x)
        x = torch.relu(self.c2(self.c1(x)) + x)
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))


def test_a_relu_after_an_add_fuses_into_one_integer_add(data, tmp_path):
    """ORT's quantizer, keeping the ReLUs, puts a Q/DQ pair on the Add's output and another on
    the ReLU's; ORT then runs QLinearAdd and a DequantizeLinear -> QuantizeLinear re-quantization
    after it. Without the pre-ReLU pair, ORT folds the ReLU into the Q (zero point 0) and the
    Add's output is the next Conv's input: in the optimized graph no Q or DQ is left but the
    input's Q and the output's DQ, and every Conv and the Add are integer ops."""
    from edgekd.quant.ort_layout import fusion_report
    from edgekd.quant.ort_qat import drop_pre_relu_pairs

    ds, x = data
    torch.manual_seed(0)
    q = ort_qdq_of(ResidualRelu().eval(), (3, 8, 8), ds, batch_size=16)
    relus = [n for n in q.template.graph.node if n.op_type == "Relu"]
    producer = {o: n for n in q.template.graph.node for o in n.output}
    assert len(relus) == 3 and all(producer[r.input[0]].op_type in ("Conv", "Add")
                                   for r in relus)  # fmt: skip
    assert drop_pre_relu_pairs(q.template) == 0  # already gone: applying it again is a no-op
    ops = fusion_report(export_ort(q, tmp_path / "int8.onnx"))["op_counts"]
    assert ops["QuantizeLinear"] == 1 and ops["DequantizeLinear"] == 1, ops
    assert ops["QLinearConv"] == 3 and ops["QLinearAdd"] == 1 and "Relu" not in ops, ops
    with torch.no_grad():
        got = q(x).numpy()
    assert np.allclose(got, _ort(tmp_path / "int8.onnx", x), atol=1e-5)


def test_pre_relu_pair_kept_where_something_else_reads_it(data):
    """A Q/DQ pair that another node also reads is not the ReLU's alone: it stays."""
    from onnx import helper

    from edgekd.quant.ort_qat import drop_pre_relu_pairs

    sc = numpy_helper.from_array(np.array(0.1, np.float32), "sc")
    zp = numpy_helper.from_array(np.array(0, np.uint8), "zp")

    def graph(extra_reader: bool):
        nodes = [helper.make_node("QuantizeLinear", ["x", "sc", "zp"], ["q1"], name="q1"),
                 helper.make_node("DequantizeLinear", ["q1", "sc", "zp"], ["d1"], name="d1"),
                 helper.make_node("Relu", ["d1"], ["r"], name="relu"),
                 helper.make_node("QuantizeLinear", ["r", "sc", "zp"], ["q2"], name="q2"),
                 helper.make_node("DequantizeLinear", ["q2", "sc", "zp"], ["y"], name="d2")]
        outs = [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 4])]
        if extra_reader:
            nodes.append(helper.make_node("Neg", ["d1"], ["z"], name="neg"))
            outs.append(helper.make_tensor_value_info("z", onnx.TensorProto.FLOAT, [1, 4]))
        g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info(
            "x", onnx.TensorProto.FLOAT, [1, 4])], outs, [sc, zp])  # fmt: skip
        return helper.make_model(g)

    alone = graph(False)
    assert drop_pre_relu_pairs(alone) == 1
    assert [n.name for n in alone.graph.node] == ["relu", "q2", "d2"]
    assert alone.graph.node[0].input[0] == "x"
    shared = graph(True)
    assert drop_pre_relu_pairs(shared) == 0 and len(shared.graph.node) == 6

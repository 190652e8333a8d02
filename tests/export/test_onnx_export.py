import numpy as np
import onnx
import pytest
import torch
from torch.utils.data import Subset

from edgekd.backends import onnxruntime as ortb
from edgekd.backends.parity import parity
from edgekd.distill import evaluate_torch
from edgekd.export import FORBIDDEN_OPS, export_onnx
from edgekd.models import create_timm
from edgekd.quant import quantize_int8


@pytest.fixture(scope="module")
def float_model():
    torch.manual_seed(0)
    return create_timm("mobilenetv3_small_050", 10).eval()


def test_float_export_named_dynamic_opset17(tmp_path, float_model):
    info = export_onnx(float_model, tmp_path / "m.onnx", (3, 32, 32))
    m = onnx.load(str(info.path))
    assert info.opset == 17
    assert [i.name for i in m.graph.input] == ["input"]
    assert [o.name for o in m.graph.output] == ["logits"]
    assert m.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    x = torch.randn(3, 3, 32, 32)
    out = ortb.session(info.path).run(None, {"input": x.numpy()})[0]
    with torch.no_grad():
        np.testing.assert_allclose(out, float_model(x).numpy(), atol=1e-4)


def test_qdq_export_has_pairs_and_no_integer_ops(tmp_path, digits):
    torch.manual_seed(0)
    q = quantize_int8(create_timm("resnet10t", 10), Subset(digits.calib_source, range(32)))
    info = export_onnx(q, tmp_path / "q.onnx", (3, 32, 32))
    assert info.qdq_pairs > 0
    assert not FORBIDDEN_OPS & set(info.op_counts)
    m = onnx.load(str(info.path))
    inits = {i.name: i for i in m.graph.initializer}
    consts = {n.output[0]: n for n in m.graph.node if n.op_type == "Constant"}
    # every QuantizeLinear zero point is 0 (symmetric), every scale positive
    for n in m.graph.node:
        if n.op_type != "QuantizeLinear":
            continue
        for name, check in (
            (n.input[1], lambda a: (a > 0).all()),
            (n.input[2], lambda a: (a == 0).all()),
        ):
            t = inits.get(name) or consts[name].attribute[0].t
            assert check(onnx.numpy_helper.to_array(t)), n.name
    # ORT agrees with the torch fake-quant model on real images
    val = Subset(digits.val, range(64))
    _, logits = evaluate_torch(q, val)
    par = parity(info.path, logits, val)
    assert par["top1_agreement"] >= 95.0 and par["samples"] == 64


def test_failed_export_leaves_no_file(tmp_path):
    class Bad(torch.nn.Module):
        def forward(self, x):
            raise RuntimeError("cannot trace me")

    with pytest.raises(Exception, match="ONNX export failed"):
        export_onnx(Bad(), tmp_path / "bad.onnx", (3, 8, 8))
    assert list(tmp_path.iterdir()) == []


def test_fp16_export_keeps_an_fp32_interface(tmp_path):
    import numpy as np
    import onnx
    import onnxruntime as ort
    import torch

    from edgekd.export.onnx_export import export_onnx_fp16
    from edgekd.models import create_timm

    torch.manual_seed(0)
    model = create_timm("resnet10t", 10).eval()
    export_onnx_fp16(model, tmp_path / "m16.onnx", (3, 32, 32))
    assert next(model.parameters()).dtype == torch.float32  # the caller's model is untouched
    m = onnx.load(tmp_path / "m16.onnx")
    kinds = {i.data_type for i in m.graph.initializer if len(i.dims) == 4}
    assert kinds == {onnx.TensorProto.FLOAT16}  # conv weights stored in FP16
    f32 = onnx.TensorProto.FLOAT
    assert m.graph.input[0].type.tensor_type.elem_type == f32
    assert m.graph.output[0].type.tensor_type.elem_type == f32
    x = torch.randn(4, 3, 32, 32)
    got = ort.InferenceSession(str(tmp_path / "m16.onnx")).run(None, {"input": x.numpy()})[0]
    with torch.no_grad():
        want = model(x).numpy()
    assert np.abs(got - want).max() < 5e-2 * max(1.0, np.abs(want).max())

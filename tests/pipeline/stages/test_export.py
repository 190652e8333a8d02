import onnx

from tests.pipeline.stages.conftest import round_trips


def test_onnx_set(tiny, onnx_set):
    ctx, _ = tiny
    assert set(onnx_set.files) == {"fp32", "int8-ort"}  # an ONNX Runtime target
    assert onnx_set.shipped_int8 == "int8-ort"
    for path in onnx_set.files.values():
        onnx.checker.check_model(str(path))
    r = onnx_set.record
    assert r["opset"] == 17 and r["qdq_pairs"] > 0 and r["lint"] == {}
    assert set(r["parity"]) == {"fp32", "int8-ort"}
    assert r["parity"]["int8-ort"]["trained_graph"] is True
    prec = r["precision"]  # every layer in a block with a precision and its reason
    assert prec["kept"] in ("int8", "mixed") and prec["candidates"] == 2 * len(prec["blocks"]) - 1
    assert all(b["precision"] in ("int8", "fp32") and b["why"] for b in prec["blocks"])
    float_layers = sum(len(b["layers"]) for b in prec["blocks"] if b["precision"] == "fp32")
    assert r["float_conv_gemm_left"]["int8-ort"] == float_layers
    round_trips(onnx_set, ctx)

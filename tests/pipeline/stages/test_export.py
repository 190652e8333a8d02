import onnx
import pytest

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


def test_a_target_off_this_machine_chooses_by_its_cost_model(tiny, fp32, int8, tmp_path):
    """raspberry-pi-5 is not this machine: the per-block choice costs each cut with the
    Pi's cost model (no timing here), and the INT8 file written is the cut it chose."""
    import dataclasses

    from edgekd.latency.cost import predict_latency
    from edgekd.pipeline import stages
    from edgekd.pipeline.rundir import RunDir
    from edgekd.targets import get_target
    from tests.pipeline.stages.conftest import run_stage

    ctx, plans = tiny
    pi = get_target("raspberry-pi-5")
    run = RunDir(tmp_path / "pi", stages.OWNED)
    run.prepare(resume=False, force=False)
    got = run_stage(stages.export, dataclasses.replace(ctx, run=run, target=pi), plans.export,
                    fp32, int8)  # fmt: skip
    prec = got.record["precision"]
    assert prec["how"] == "raspberry-pi-5" and "costed by the raspberry-pi-5 cost model" in (
        prec["line"])
    shipped = predict_latency(got.files["int8-ort"], pi).total_ms
    best = prec["mixed_ms"] if prec["kept"] == "mixed" else prec["int8_ms"]
    assert shipped == pytest.approx(best, rel=1e-9)  # the file is the cut that was costed

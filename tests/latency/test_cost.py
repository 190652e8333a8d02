import pytest

from edgekd.errors import InputError
from edgekd.latency.cost import layer_ms, predict_latency
from edgekd.latency.graph import Layer, graph_layers
from edgekd.profiling.calibrate import Sample, error_stats, fit_params
from edgekd.targets import CostModelParams, TargetProfile, get_target
from tests.latency import onnx_graphs as G


def tgt(**cm):
    params = {
        "efficiency": {"dense_conv": 0.5, "depthwise_conv": 0.1, "gemm": 0.25, "elementwise": 0.05},
        "layer_overhead_us": 10.0,
        "bandwidth_efficiency": 0.5,
        **cm,
    }
    return TargetProfile(
        name="t",
        description="d",
        runtime="tensorrt",
        runtime_version="10",
        precisions=["fp32", "fp16", "int8"],
        peak_tops={"fp32": 1.0, "fp16": 2.0, "int8": 4.0},
        memory_bandwidth_gbs=100.0,
        cost_model=params,
        sources={
            "runtime": "x",
            "precisions": "x",
            "peak_tops": "x",
            "memory_bandwidth_gbs": "x",
            "cost_model": "x",
        },
    )


def test_compute_bound_layer():
    t = tgt()
    # 1e9 FLOPs at 1 TFLOPS x 0.5 = 2 ms; 1 MB at 100 GB/s x 0.5 = 0.02 ms; + 10 us
    ms, bound = layer_ms(Layer("c", "Conv", "dense_conv", "fp32", 1e9, 1e6), t, t.cost_model)
    assert ms == pytest.approx(2.0 + 0.01) and bound == "compute"


def test_memory_bound_layer_and_int8_scale():
    t = tgt(int8_efficiency_scale=0.5)
    # 1e8 bytes at 50 GB/s effective = 2 ms; 1e6 int8 ops at 4 TOPS x 0.05 x 0.5 = 0.01 ms
    ms, bound = layer_ms(Layer("e", "Add", "elementwise", "int8", 1e6, 1e8), t, t.cost_model)
    assert ms == pytest.approx(2.0 + 0.01) and bound == "memory"


def test_overhead_bound_label():
    t = tgt()
    ms, bound = layer_ms(Layer("g", "Gemm", "gemm", "fp32", 10, 10), t, t.cost_model)
    assert bound == "overhead" and ms == pytest.approx(0.01, rel=1e-3)


def test_predict_latency_sums_layers(tmp_path):
    import onnx

    p = tmp_path / "m.onnx"
    onnx.save(G.conv_bn_relu(), str(p))
    t = tgt()
    pred = predict_latency(p, t, "fp16")
    (layer,) = graph_layers(G.conv_bn_relu(), "tensorrt", "fp16")
    assert pred.total_ms == pytest.approx(layer_ms(layer, t, t.cost_model)[0])
    assert pred.precision == "fp16" and pred.to_dict()["measured"] is False
    assert predict_latency(p, t, "int8").layers[0].precision == "int8"  # TensorRT --int8


def test_no_int8_on_jetson_nano(tmp_path):
    import onnx

    p = tmp_path / "m.onnx"
    onnx.save(G.conv_bn_relu(), str(p))
    with pytest.raises(InputError, match="no int8 path"):
        predict_latency(p, get_target("jetson-nano"), "int8")


def _synthetic_samples(t, true):
    layers_a = [Layer("a", "Conv", "dense_conv", "fp32", 5e8, 1e6)]
    layers_b = [Layer("b", "Conv", "depthwise_conv", "fp32", 1e7, 5e6)] * 3
    layers_c = [Layer("c", "Add", "elementwise", "fp32", 1e6, 4e7)] * 5
    layers_d = [Layer("d", "MatMul", "gemm", "int8", 2e8, 1e6)] * 2
    layers_e = [Layer("e", "Conv", "dense_conv", "fp32", 1e5, 1e4)] * 40
    out = []
    for i, ls in enumerate(
        [
            layers_a,
            layers_b,
            layers_c,
            layers_d,
            layers_e,
            layers_a + layers_b,
            layers_c + layers_d,
            layers_b + layers_e,
        ]
    ):
        ms = sum(layer_ms(la, t, true)[0] for la in ls)
        out.append(Sample(f"m{i}", "fp32", list(ls), ms))
    return out


def test_fit_recovers_a_known_model():
    t = tgt()
    true = CostModelParams(
        efficiency={"dense_conv": 0.6, "depthwise_conv": 0.08, "gemm": 0.3, "elementwise": 0.02},
        int8_efficiency_scale=0.7,
        layer_overhead_us=4.0,
        bandwidth_efficiency=0.6,
    )
    samples = _synthetic_samples(t, true)
    params, stats = fit_params(samples, t)
    assert stats["median_abs_pct_error"] < 1.0
    assert stats["spearman"] == pytest.approx(1.0)


def test_error_stats_on_exact_predictions():
    t = tgt()
    s = _synthetic_samples(t, t.cost_model)
    stats = error_stats(s, t, t.cost_model)
    assert stats["median_abs_pct_error"] == pytest.approx(0.0, abs=1e-9)

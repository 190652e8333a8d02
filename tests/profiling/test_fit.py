"""The evidence fit: the fast predictor is the cost model, a fit recovers known parameters,
a held-out group never sees itself, and the range, the profile field and the gate agree."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from edgekd.latency.cost import layer_ms, predict_latency
from edgekd.latency.graph import Layer
from edgekd.profiling import fit
from edgekd.profiling.calibrate import params_of, theta_of
from edgekd.profiling.evidence import Figure
from edgekd.report.writer import range_caution
from edgekd.targets import PredictionRange
from tests.latency import onnx_graphs as G
from tests.latency.test_cost import tgt

FIG = Figure("t", "m", "timm:m", (3, 8, 8), "fp16", 1, "latency_mean_ms", 1.0, "", "", "",
             "gpu", "https://x", "q", "x.csv:2")  # fmt: skip


def layers(k: float) -> list[Layer]:
    """A mix whose share of compute-, memory- and overhead-bound layers moves with k."""
    return [
        Layer("c", "Conv", "dense_conv", "fp16", 4e8 * k, 2e5),
        Layer("d", "Conv", "depthwise_conv", "fp16", 2e6 * k, 3e6 * k),
        Layer("q", "Conv", "dense_conv", "int8", 1e9 / k, 1e5),
        Layer("g", "Gemm", "gemm", "fp32", 5e6, 4e6 / k),
        Layer("e", "Add", "elementwise", "fp16", 1e3, 1e3),
    ]


def test_the_vector_predictor_is_the_sum_of_layer_ms():
    for t in (tgt(), tgt().model_copy(update={"gpu_sms": 16})):
        for k in (0.3, 1.0, 7.0):
            ls = layers(k)
            c = fit.Costed.of(FIG, t, ls)
            for theta in (
                theta_of(t.cost_model),
                np.log([0.3, 0.02, 0.5, 0.9, 2.0, 40.0, 0.4]),
                np.log([0.3, 0.02, 0.5, 0.9, 2.0, 40.0, 0.4, 30.0]),  # with the SM fill
            ):
                want = sum(layer_ms(la, t, params_of(theta))[0] for la in ls)
                assert c.predict(theta) == pytest.approx(want, rel=1e-9)


def test_the_sm_fill_floors_only_small_tiled_layers():
    # floor = 16 SMs x 30 MFLOPs / (fp16 peak 2 TFLOPS x dense efficiency 0.5) = 0.48 ms
    t = tgt().model_copy(update={"gpu_sms": 16})
    p = params_of(np.log([0.5, 0.1, 0.25, 0.05, 1.0, 10.0, 0.5, 30.0]))
    small = Layer("c", "Conv", "dense_conv", "fp16", 4e8, 1)  # 4e8 / 1e12 s = 0.4 ms alone
    assert layer_ms(small, t, p) == (pytest.approx(0.48 + 0.01), "fill")
    big = Layer("c", "Conv", "dense_conv", "fp16", 2e9, 1)  # 2 ms: above the floor
    assert layer_ms(big, t, p) == (pytest.approx(2.0 + 0.01), "compute")
    # the floor is a time: an FP32 or INT8 tiled layer has the same one
    fp32 = Layer("c", "Conv", "dense_conv", "fp32", 1e8, 1)  # 1e8 / (1e12 x 0.5) = 0.2 ms
    assert layer_ms(fp32, t, p)[0] == pytest.approx(0.48 + 0.01)
    # a depthwise conv is not a tiled matrix product: 4e7 / (2e12 x 0.1) = 0.2 ms, no floor
    dw = Layer("d", "Conv", "depthwise_conv", "fp16", 4e7, 1)
    assert layer_ms(dw, t, p)[0] == pytest.approx(0.2 + 0.01)
    assert layer_ms(small, tgt(), p)[0] == pytest.approx(0.4 + 0.01)  # no gpu_sms: no floor


def synthetic(t, theta, ks):
    out = []
    for i, k in enumerate(ks):
        c = fit.Costed.of(replace(FIG, standin=f"timm:m{i}"), t, layers(k))
        ms = c.predict(theta)
        out.append(replace(c, fig=replace(c.fig, value=ms)))
    return out


def test_a_fit_without_the_pull_recovers_figures_made_from_known_parameters():
    t = tgt()
    truth = np.log([0.35, 0.03, 0.4, 0.08, 1.5, 25.0, 0.6])
    items = synthetic(t, truth, [0.1, 0.2, 0.5, 1, 2, 3, 5, 8, 13, 21])
    prior = theta_of(t.cost_model)
    theta = fit.fit_family(items, prior, ridge=0.0)
    for c in items:
        assert c.predict(theta) == pytest.approx(c.fig.ms, rel=1e-4)


def test_the_pull_keeps_a_fit_on_no_figures_at_its_prior():
    prior = theta_of(tgt().cost_model)
    assert np.array_equal(fit.fit_family([], prior), prior)
    items = synthetic(tgt(), prior + 0.7, [1.0])
    strong = fit.fit_family(items, prior, ridge=1e6)
    assert np.allclose(strong, prior, atol=1e-3)


def test_a_held_out_group_is_predicted_by_a_fit_on_the_others_only():
    t = tgt()
    prior = theta_of(t.cost_model)
    items = synthetic(t, prior + 0.3, [0.5, 1, 2, 4])
    # the last group is far off: it must not pull its own held-out prediction
    items[-1] = replace(items[-1], fig=replace(items[-1].fig, value=items[-1].fig.ms * 5))
    held = fit.hold_out(items, prior)
    theta_rest = fit.fit_family(items[:-1], prior)
    assert held[-1] == pytest.approx(items[-1].predict(theta_rest), rel=1e-12)
    # two figures of one group (one model at two sizes) are held out together
    twin = replace(items[0], fig=replace(items[0].fig, shape=(3, 16, 16)))
    held2 = fit.hold_out([items[0], twin, *items[1:3]], prior)
    theta_wo = fit.fit_family(items[1:3], prior)
    assert held2[1] == pytest.approx(twin.predict(theta_wo), rel=1e-12)


def test_ratio_range_is_the_central_share_by_linear_percentiles():
    # 10 values: the 10th percentile sits at position 0.9 between 1 and 2, the 90th at 8.1
    assert fit.ratio_range(list(range(1, 11))) == pytest.approx((1.9, 9.1))


def test_family_is_the_gpu_architecture():
    from edgekd.targets import builtin_profiles

    p = builtin_profiles()
    orin = {n for n, t in p.items() if fit.family(t) == "sm_87"}
    assert {"jetson-orin-nano-4gb", "jetson-orin-nano-8gb", "jetson-agx-orin-64gb"} <= orin
    assert fit.family(p["jetson-xavier-nx"]) == fit.family(p["jetson-agx-xavier"]) == "sm_72"


def test_a_profile_range_scales_the_prediction(tmp_path):
    import onnx

    band = PredictionRange(low=0.8, high=1.5, coverage=0.8, figures=20, basis="b")
    t = tgt().model_copy(update={"prediction_range": band})
    path = tmp_path / "m.onnx"
    onnx.save(G.conv_bn_relu(), path)
    pred = predict_latency(path, t, "fp16")
    assert pred.range_ms == pytest.approx((0.8 * pred.total_ms, 1.5 * pred.total_ms))
    assert pred.to_dict()["range_ms"] == pytest.approx([0.8 * pred.total_ms, 1.5 * pred.total_ms])
    with pytest.raises(ValueError):
        PredictionRange(low=2, high=1, coverage=0.8, figures=3, basis="b")


def lat(p50, band, measured=False):
    return {"p50_ms": p50, "measured": measured, "range_ms": band, "range_coverage": 0.8}


def test_the_gate_cautions_only_when_the_budget_lies_inside_the_range():
    assert range_caution(lat(4.0, [3.0, 6.0]), 5.0).startswith("may miss it: the budget 5 ms")
    assert range_caution(lat(4.0, [3.0, 6.0]), 3.5).startswith("may meet it")
    assert "80% of" in range_caution(lat(4.0, [3.0, 6.0]), 5.0)
    assert range_caution(lat(4.0, [3.0, 6.0]), 6.0) is None  # above the range: a clear pass
    assert range_caution(lat(4.0, [3.0, 6.0]), 2.0) is None  # below: a clear miss
    assert range_caution(lat(4.0, None), 5.0) is None
    assert range_caution(lat(4.0, [3.0, 6.0], measured=True), 5.0) is None


def test_judge_and_the_warnings_carry_the_caution():
    from edgekd.config import Budgets
    from edgekd.pipeline.summary import warnings
    from edgekd.report.writer import judge

    latency = {"p50_ms": 4.0, "p90_ms": 4.0, "measured": False, "range_ms": [3.0, 6.0],
               "range_coverage": 0.8, "runtime": "predicted: tensorrt 10.3.0 on t (fp16)",
               "threads": 0}  # fmt: skip
    art = {"accuracy": 90.0, "latency": latency, "size_mb": 1.0}
    v = judge(Budgets(latency_ms=5.0, max_accuracy_drop=None), 90.0, art)
    (gate,) = [g for g in v.gates if g.name == "latency"]
    assert gate.passed and gate.caution.startswith("may miss it")
    report = {"teacher": {"accuracy": 90.0, "latency": {}}, "artifact": art, "variants": {},
              "verdict": v.model_dump()}  # fmt: skip
    assert any("may miss it" in w for w in warnings(report))
    clear = judge(Budgets(latency_ms=7.0, max_accuracy_drop=None), 90.0, art)
    assert clear.gates[0].caution is None

"""Precision per block by measured latency (edgekd.quant.precision), on a model whose answer is
known by construction: the timer is a cost table, so the fastest cut is known beforehand."""

import pytest
import torch
from torch.utils.data import TensorDataset

from edgekd.quant.ort_qat import ort_qdq_of
from edgekd.quant.precision import best_cut, block_of, blocks, cuts, measured_precision
from tests.quant.test_ort_qat import Tiny


@pytest.fixture()
def qmodel():
    torch.manual_seed(0)
    x = torch.randn(32, 3, 8, 8)
    return ort_qdq_of(Tiny().eval(), (3, 8, 8), TensorDataset(x, torch.zeros(32).long()), 16)


def test_blocks_follow_the_torch_modules(qmodel):
    assert block_of("blocks.1.0.se.conv_reduce") == "blocks.1.0"
    assert block_of("layer2.1.conv1") == "layer2.1"
    assert block_of("layer4.0.downsample.0") == "layer4.0"  # a Sequential inside the block
    assert block_of("conv_stem") == "conv_stem" and block_of("fc#2") == "fc"
    assert blocks(qmodel) == {"stem.0": ["stem_0"], "conv.0": ["conv_0"], "se": ["se"],
                              "fc": ["fc"]}  # fmt: skip


def test_cuts_have_one_boundary_and_never_all_float():
    assert cuts(["a", "b", "c"]) == [
        ("all INT8", []),
        ("float from b", ["b", "c"]),
        ("float from c", ["c"]),
        ("float up to a", ["a"]),
        ("float up to b", ["a", "b"]),
    ]


BLOCK = {"stem_0": "stem.0", "conv_0": "conv.0", "se": "se", "fc": "fc"}  # layer -> block


def _table_timer(cost: dict[str, tuple[float, float]], boundary: float, order: list[str]):
    """Latency of a configuration = each block's cost at its precision (int8, fp32) plus
    `boundary` for every float/INT8 transition along the chain."""

    def timer(configs):
        def measure(i, _round):
            fl = {BLOCK[k] for k in configs[i]}
            prec = ["fp32" if b in fl else "int8" for b in order]
            t = sum(cost[b][p == "fp32"] for b, p in zip(order, prec, strict=True))
            return t + boundary * sum(a != b for a, b in zip(prec, prec[1:], strict=False))

        return measure

    return timer


ORDER = ["stem.0", "conv.0", "se", "fc"]


def test_a_float_tail_that_is_faster_is_chosen(qmodel):
    # INT8 wins on the two convolutions, float on se and fc: the tail from se goes to float
    cost = {"stem.0": (1.0, 2.0), "conv.0": (1.0, 2.0), "se": (1.0, 0.2), "fc": (1.0, 0.2)}
    c = measured_precision(qmodel, (3, 8, 8), timer=_table_timer(cost, 0.1, ORDER))
    assert c.kept == "mixed" and c.float_blocks == ["se", "fc"]
    assert c.int8_ms == pytest.approx(4.0) and c.mixed_ms == pytest.approx(2.5)
    assert qmodel.float_layers() == ["se", "fc"]  # the model is left as chosen
    assert [b["precision"] for b in c.blocks] == ["int8", "int8", "fp32", "fp32"]
    assert "float from se" in c.blocks[2]["why"] and c.candidates == 7
    assert "2 of 4 blocks in float" in c.line()


def test_a_winner_the_fresh_rounds_do_not_confirm_is_not_shipped(qmodel):
    """The float tail from se wins the first 5 rounds by 20% (a lucky spell) and loses the
    next 5 by 10%: the fresh rounds decide, every layer stays INT8, and the figures reported
    are the fresh rounds' own."""
    seen = []

    def timer(configs):
        def measure(i, rnd):
            seen.append((i, rnd))
            if not configs[i]:
                return 4.0
            if {BLOCK[k] for k in configs[i]} == {"se", "fc"}:
                return 3.2 if rnd < 5 else 4.4
            return 5.0

        return measure

    c = measured_precision(qmodel, (3, 8, 8), rounds=5, timer=timer)
    assert c.kept == "int8" and qmodel.float_layers() == [] and c.rejected == "float from se"
    assert c.int8_ms == pytest.approx(4.0) and c.mixed_ms == pytest.approx(4.4)
    assert c.ratio == pytest.approx(1.1)
    assert sorted({r for _, r in seen}) == list(range(10))  # 5 rounds, then 5 fresh ones
    assert {i for i, r in seen if r >= 5} == {0, 2}  # all INT8 and the winner (cut 2) alone
    assert "not confirmed in fresh rounds" in c.line()
    assert all("not faster again in fresh rounds" in b["why"] for b in c.blocks)


def test_one_block_alone_is_not_worth_its_boundaries(qmodel):
    # se alone in float saves 0.3 but adds two transitions (0.4): every cut with it is slower
    cost = {"stem.0": (1.0, 2.0), "conv.0": (1.0, 2.0), "se": (1.0, 0.7), "fc": (0.1, 0.5)}
    c = measured_precision(qmodel, (3, 8, 8), timer=_table_timer(cost, 0.2, ORDER))
    assert c.kept == "int8" and c.float_blocks == [] and qmodel.float_layers() == []
    assert all(b["precision"] == "int8" for b in c.blocks)
    assert c.line().startswith("precision per block: every layer INT8")


def test_a_saving_inside_the_noise_keeps_int8():
    base = [10.0, 10.5, 9.6, 10.2, 10.1]
    mixed = [9.0, 10.8, 9.0, 10.6, 9.1]  # faster by median, slower in two rounds
    assert best_cut([base, mixed], 0.03)[0] == 0
    small = [t * 0.99 for t in base]  # faster every round, by less than the margin
    assert best_cut([base, small], 0.03)[0] == 0
    much = [t * 0.8 for t in base]
    keep, ratio, spread = best_cut([base, mixed, much], 0.03)
    assert keep == 2 and ratio == pytest.approx(0.8) and spread == pytest.approx(0, abs=1e-9)


def test_every_cut_exports_the_graph_the_module_runs(qmodel, tmp_path):
    """Each candidate the choice times is the file that would ship: written with its float
    blocks, it gives the module's outputs (ORT without its fused kernels)."""
    from edgekd.quant.ort_qat import export_ort
    from tests.quant.test_ort_qat import _ort

    x = torch.randn(4, 3, 8, 8)
    groups = blocks(qmodel)
    for i, (_, fl) in enumerate(cuts(list(groups))):
        qmodel.set_float([k for b in fl for k in groups[b]])
        path = export_ort(qmodel, tmp_path / f"cut{i}.onnx")
        with torch.no_grad():
            assert torch.allclose(qmodel(x), torch.from_numpy(_ort(path, x)), atol=1e-4), fl
    qmodel.set_float([])


@pytest.fixture()
def tiny_float():
    torch.manual_seed(1)
    model = Tiny().eval()
    with torch.no_grad():
        for bn in (model.stem[1], model.conv[1]):
            bn.running_mean.uniform_(-0.5, 0.5)
            bn.running_var.uniform_(0.5, 2.0)
    x = torch.randn(32, 3, 8, 8)
    return model, x, ort_qdq_of(model, (3, 8, 8), TensorDataset(x, torch.zeros(32).long()), 16)


def test_every_layer_in_float_is_the_float_model(tiny_float):
    """With every layer in float no quantizer is left, and the graph is the FP32 model with
    BatchNorm folded, its weights where INT8 calibration left them (on the INT8 grid, a few
    1e-4 off): its outputs equal the float model's to that (ReLUs included: ORT would fold
    them into a zero point, and dropping that Q/DQ must not drop the ReLU)."""
    model, x, q = tiny_float
    q.set_float(list(q.layers))
    assert not any(a.enabled for a in q.quants.values())
    assert any(n.op_type == "Relu" for n in q.template.graph.node)
    with torch.no_grad():
        assert torch.allclose(q(x), model(x), atol=2e-3)


def test_layers_in_float_for_accuracy_stay_float_in_every_cut(qmodel):
    """The quantize stage's accuracy budget put conv_0 in float: the latency choice may add
    float layers, never take that one back to INT8, even where all-INT8 is fastest."""
    cost = {"stem.0": (1.0, 2.0), "conv.0": (1.0, 2.0), "se": (1.0, 2.0), "fc": (1.0, 2.0)}
    seen = []

    def timer(configs):
        seen.extend(configs)
        return _table_timer(cost, 0.1, ORDER)(configs)

    qmodel.set_float(["conv_0"])
    try:
        c = measured_precision(qmodel, (3, 8, 8), timer=timer)
        assert all("conv_0" in config for config in seen)
        assert c.candidates == 5  # the cuts of the three blocks left: stem.0, se, fc
        assert c.kept == "int8" and qmodel.float_layers() == ["conv_0"]
        assert c.accuracy_float == ["conv.0"]
        row = {b["block"]: b for b in c.blocks}
        assert row["conv.0"]["precision"] == "fp32" and "accuracy" in row["conv.0"]["why"]
        assert "1 layer(s) kept in float for accuracy" in c.line()
    finally:
        qmodel.set_float([])


def _profile(peak: dict):
    from edgekd.targets import get_target

    pi = get_target("raspberry-pi-5")
    return pi.model_copy(update={"name": "test-cpu", "peak_tops": peak})


def test_a_target_off_this_machine_is_costed_by_its_cost_model(qmodel):
    """Known by construction. Float arithmetic 1e6 times slower than INT8: any cut with a
    convolution in float loses, so every layer stays INT8. INT8 arithmetic 1e6 times slower:
    the fastest cut leaves the fewest INT8 FLOPs, which is fc alone (2 x 8 x 4 = 64 FLOPs
    against the stem's 2 x 8 x 8 x 8 x 27 = 27,648), so everything before fc goes float."""
    slow_float = _profile({"fp32": 1e-6, "int8": 1.0})
    c = measured_precision(qmodel, (3, 8, 8), target=slow_float)
    assert c.kept == "int8" and qmodel.float_layers() == []
    assert c.how == "test-cpu" and "costed by the test-cpu cost model" in c.line()
    slow_int8 = _profile({"fp32": 1.0, "int8": 1e-6})
    c = measured_precision(qmodel, (3, 8, 8), target=slow_int8)
    try:
        assert c.kept == "mixed" and c.float_blocks == ["stem.0", "conv.0", "se"]
        assert qmodel.float_layers() == ["stem_0", "conv_0", "se"]
        assert "cuts costed by the test-cpu cost model" in c.line()
    finally:
        qmodel.set_float([])

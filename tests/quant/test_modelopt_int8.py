import pytest
import torch
from torch.utils.data import Subset

from edgekd.errors import ConfigError
from edgekd.models import create_timm
from edgekd.quant import count_quantizers, quantize_int8, quantizer_state, restore_quantized


@pytest.fixture(scope="module")
def quantized(digits):
    torch.manual_seed(0)
    model = create_timm("resnet10t", 10)
    return quantize_int8(model, Subset(digits.calib_source, range(64)), batch_size=32)


def _quantizers(model):
    return {n: m for n, m in model.named_modules() if type(m).__name__ == "TensorQuantizer"}


def test_int8_default_config_weights_per_channel_activations_per_tensor(quantized):
    qs = _quantizers(quantized)
    w = qs["conv1.0.weight_quantizer"]
    a = qs["conv1.0.input_quantizer"]
    assert w.num_bits == 8 and a.num_bits == 8
    assert w.axis == 0  # per output channel
    assert a.axis is None  # per tensor
    assert w.amax.numel() == quantized.conv1[0].out_channels
    assert a.amax.numel() == 1 and float(a.amax) > 0
    assert count_quantizers(quantized) > 0


def test_calibrated_activation_range_is_the_max_seen(digits):
    # max calibration: the first conv's input amax is max |x| over the calibration images
    torch.manual_seed(0)
    calib = Subset(digits.calib_source, range(64))
    model = quantize_int8(create_timm("resnet10t", 10), calib)
    xmax = max(float(digits.calib_source[i][0].abs().max()) for i in range(64))
    amax = float(_quantizers(model)["conv1.0.input_quantizer"].amax)
    assert amax == pytest.approx(xmax, rel=1e-6)


def test_state_roundtrip_restores_identical_outputs(quantized, tmp_path):
    p = tmp_path / "q.pt"
    torch.save({"model": quantized.state_dict(), "extra": quantizer_state(quantized)}, p)
    ck = torch.load(p, weights_only=True)  # our own checkpoints load without unpickling code
    fresh = restore_quantized(create_timm("resnet10t", 10), ck["extra"], ck["model"])
    x = torch.randn(4, 3, 32, 32)
    quantized.eval()
    with torch.no_grad():
        assert torch.equal(fresh(x), quantized(x))


def test_unknown_calibration_method(digits):
    with pytest.raises(ConfigError, match="unknown calibration method"):
        quantize_int8(create_timm("resnet10t", 10), digits.calib_source, method="entropyy")


def test_zero_ranges_are_reported_with_the_layer(digits):
    from edgekd.quant.modelopt_int8 import bad_ranges

    torch.manual_seed(0)
    model = create_timm("resnet10t", 10)
    with torch.no_grad():
        model.conv1[0].weight[:2].zero_()  # two dead output channels
    q = quantize_int8(model, Subset(digits.calib_source, range(16)))
    ranges = bad_ranges(q)
    assert ranges["conv1.0.weight_quantizer"] == "zero in 2 of 24 channel(s)"
    assert all("input_quantizer" not in k for k in ranges)


@pytest.mark.parametrize("method", ["entropy", "percentile"])
def test_histogram_methods_clip_below_max(digits, method):
    """entropy / percentile ranges lie inside (0, max|x|]; weights stay max-calibrated."""
    calib = Subset(digits.calib_source, range(64))
    xmax = max(float(digits.calib_source[i][0].abs().max()) for i in range(64))
    torch.manual_seed(0)
    # two quantized layers: the histogram methods cost per quantizer, and the first conv's
    # input range is what is checked against the definition
    tiny = torch.nn.Sequential()
    tiny.conv1 = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3))
    tiny.pool = torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())
    tiny.fc = torch.nn.Linear(8, 10)
    q = quantize_int8(tiny, calib, method=method, percentile=99.0)
    qs = _quantizers(q)
    amax = float(qs["conv1.0.input_quantizer"].amax)
    assert 0 < amax <= xmax + 1e-6
    if method == "percentile":
        # the 99th percentile of |x| over the calibration images, from the definition
        xs = torch.stack([digits.calib_source[i][0] for i in range(64)]).abs().flatten()
        assert amax == pytest.approx(float(torch.quantile(xs, 0.99)), rel=0.02)
    w = q.conv1[0].weight.detach().abs().flatten(1).amax(1)
    assert torch.allclose(qs["conv1.0.weight_quantizer"].amax.flatten(), w)


def test_recipes_resolve(tmp_path):
    from pathlib import Path

    from edgekd.quant.recipes import resolve_calib

    root = Path(__file__).resolve().parents[2] / "calibration"
    assert resolve_calib(str(root / "entropy.yaml"), 256, 99.99).method == "entropy"
    r = resolve_calib(str(root / "percentile-99.99.yaml"), 256, 90.0)
    assert (r.method, r.num_samples, r.percentile) == ("percentile", 512, 99.99)
    assert resolve_calib("max", 100, 99.99).num_samples == 100
    bad = tmp_path / "bad.yaml"
    bad.write_text("method: kl\n")
    with pytest.raises(ConfigError, match="unknown calibration method"):
        resolve_calib(str(bad), 1, 99.0)
    with pytest.raises(ConfigError, match="unknown calibration method"):
        resolve_calib("minmax", 1, 99.0)
    bad.write_text("- method\n- max\n")
    with pytest.raises(ConfigError, match="must be a YAML mapping"):
        resolve_calib(str(bad), 1, 99.0)


def test_sensitivity_rises_for_a_sabotaged_layer(digits):
    """One huge weight per output channel stretches that layer's per-channel INT8 range, so its
    other weights round to zero: quantizing that layer alone must hurt far more than before."""
    from edgekd.quant.sensitivity import keep_in_float, layer_sensitivity, quantized_layers

    calib = Subset(digits.calib_source, range(32))

    def ranking(sabotage: bool):
        torch.manual_seed(0)
        model = create_timm("resnet10t", 10, zero_init_last=False).eval()
        with torch.no_grad():
            model.fc.weight.mul_(100)  # peaked outputs, so the KL is informative
            if sabotage:
                w = model.conv1[3].weight
                w.mul_(0.001)
                w[:, 0, 0, 0] = 10.0
        q = quantize_int8(model, calib)
        return q, layer_sensitivity(q, calib, batch_size=32)

    _, clean = ranking(False)
    q, bad = ranking(True)
    assert dict(bad)["conv1.3"] > 5 * dict(clean)["conv1.3"]
    assert [k for _, k in bad] == sorted((k for _, k in bad), reverse=True)
    assert all(k >= 0 for _, k in bad)
    assert len(bad) == len(quantized_layers(q))  # every quantizer was restored afterwards
    keep_in_float(q, ["conv1.3"])
    assert "conv1.3" not in quantized_layers(q)


def test_mixed_precision_that_never_reaches_the_target_keeps_its_best_step(quantized):
    """The accuracy function is a table over the float set: 1 layer in float scores best,
    2 and 4 score lower, and the target (99) is never reached. The model must end with the
    1-layer configuration, every other quantizer back on."""
    from edgekd.quant.sensitivity import mixed_precision, quantized_layers

    on = quantized_layers(quantized)
    before = list(on)
    ranking = [(n, 1.0 / (i + 1)) for i, n in enumerate(before)]
    score = {0: 50.0, 1: 70.0, 2: 60.0, 4: 65.0}

    def accuracy(m):
        return score[len(before) - len(quantized_layers(m))]

    try:
        kept, acc = mixed_precision(quantized, ranking, accuracy, 99.0, max_float_layers=4)
        assert kept == [before[0]] and acc == 70.0
        assert list(quantized_layers(quantized)) == before[1:]
    finally:
        for q in (q for qs in on.values() for q in qs):
            q.enable()

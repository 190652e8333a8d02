"""Residual Adds quantized for TensorRT's fusion, on a hand-built network whose answer is known
by construction: which input of each Add is the skip branch, and which Adds cannot fuse."""

import numpy as np
import pytest
import torch
from torch import nn

from edgekd.quant import quantize_int8, quantizer_state, restore_quantized
from edgekd.quant.residual import ATTR, attached, plan_residuals


class Block(nn.Module):
    """A ResNet basic block; with `down`, the skip branch is a strided 1x1 conv + BN."""

    def __init__(self, cin: int, cout: int, down: bool = False, inplace: bool = False) -> None:
        super().__init__()
        s = 2 if down else 1
        self.conv1, self.bn1 = nn.Conv2d(cin, cout, 3, s, 1, bias=False), nn.BatchNorm2d(cout)
        self.act1 = nn.ReLU()
        self.conv2, self.bn2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout)
        self.down = (
            nn.Sequential(nn.Conv2d(cin, cout, 1, s, bias=False), nn.BatchNorm2d(cout))
            if down
            else None
        )
        self.act2 = nn.ReLU()
        self.inplace = inplace

    def forward(self, x):
        shortcut = x
        x = self.bn2(self.conv2(self.act1(self.bn1(self.conv1(x)))))
        if self.down is not None:
            shortcut = self.down(shortcut)
        if self.inplace:
            x += shortcut
        else:
            x = torch.add(shortcut, x)  # the skip branch first: the order must not matter
        return self.act2(x)


class Net(nn.Module):
    """stem -> identity block -> downsampling block -> an Add of two activations (nothing to
    fuse into) -> a conv whose skip is made inline -> pool -> classifier."""

    def __init__(self) -> None:
        super().__init__()
        self.stem, self.stem_bn, self.stem_act = (
            nn.Conv2d(3, 8, 3, 1, 1),
            nn.BatchNorm2d(8),
            nn.ReLU(),
        )
        self.block1 = Block(8, 8, inplace=True)
        self.block2 = Block(8, 16, down=True)
        self.a, self.b = nn.ReLU6(), nn.Hardswish()
        self.conv3 = nn.Conv2d(16, 16, 3, 1, 1)
        self.pool, self.fc = nn.AdaptiveAvgPool2d(1), nn.Linear(16, 10)

    def forward(self, x):
        x = self.block2(self.block1(self.stem_act(self.stem_bn(self.stem(x)))))
        x = self.a(x) + self.b(x)  # no convolution on either side
        z = torch.relu(x)  # inline: no module returns it
        x = self.conv3(z) + z
        return self.fc(self.pool(x).flatten(1))


class Images(torch.utils.data.Dataset):
    def __init__(self, n: int, seed: int) -> None:
        self.x = torch.randn(n, 3, 16, 16, generator=torch.Generator().manual_seed(seed))

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i):
        return self.x[i], 0


def _net() -> Net:
    torch.manual_seed(0)
    return Net().eval()


def test_plan_quantizes_the_skip_branch_and_says_why_the_rest_stay_float():
    plan = plan_residuals(_net(), torch.randn(1, 3, 16, 16))
    rec = plan.to_record()
    assert rec["adds"] == 4 and rec["quantized"] == 2
    # block1: the skip is the stem's activation (the innermost module that returns it);
    # block2: both inputs are convolutions, the 1x1 branch (one conv from the block input,
    # against two) is the skip; the Sequential holding it is never the one hooked
    assert rec["modules"] == ["block2.down.1", "stem_act"]
    assert [a.quantized for a in plan.adds] == ["stem_act", "block2.down.1", None, None]
    assert "no convolution on either input" in plan.adds[2].reason
    assert "made inline" in plan.adds[3].reason
    # the stem activation also feeds block1's conv1 and block2 (the module), and nothing else
    assert plan.consumers["stem_act"] == ["block1", "block1.conv1"]
    assert plan.consumers["block2.down.1"] == []


@pytest.fixture(scope="module")
def quantized():
    return quantize_int8(_net(), Images(32, 0), batch_size=16)


def test_the_skip_tensor_is_quantized_once_for_all_its_readers(quantized):
    tap = getattr(quantized.stem_act, ATTR).input_quantizer
    assert tap.is_enabled and tap.axis is None and tap.num_bits == 8
    # max calibration: the tap's range is max |x| of the stem activation over the calibration
    # images, as the float model computes it
    net, outs = _net(), []
    net.stem_act.register_forward_hook(lambda m, i, o: outs.append(o))
    with torch.no_grad():
        net(Images(32, 0).x)
    assert float(torch.as_tensor(tap.amax)) == pytest.approx(float(outs[0].abs().max()), rel=1e-6)
    # block1.conv1 reads the same tensor: its own input quantizer is off (no second Q/DQ)
    assert quantized.residual_plan.dropped == ["block1.conv1"]
    assert not quantized.block1.conv1.input_quantizer.is_enabled


def test_export_leaves_only_the_adds_tensorrt_cannot_fuse(quantized, tmp_path):
    import onnx

    from edgekd.export import export_onnx
    from edgekd.export.lint import lint_file

    path = export_onnx(quantized, tmp_path / "q.onnx", (3, 16, 16)).path
    warned = sorted(f.node for f in lint_file(path, "10.3") if f.rule == "residual-add-float")
    assert warned == ["/Add", "/Add_1"]  # the two in Net.forward, explained in the plan
    g = onnx.load(str(path)).graph
    producer = {o: n for n in g.node for o in n.output}
    for add in (n for n in g.node if n.op_type == "Add" and n.name.startswith("/block")):
        kinds = sorted(producer[i].op_type for i in add.input)
        assert "DequantizeLinear" in kinds, add.name  # the skip arrives dequantized
    # without the residual quantizers every Add is a float island
    bare = quantize_int8(_net(), Images(32, 0), batch_size=16, residual=False)
    path = export_onnx(bare, tmp_path / "bare.onnx", (3, 16, 16)).path
    assert sum(f.rule == "residual-add-float" for f in lint_file(path, "10.3")) == 4


def test_onnx_runtime_runs_the_trained_graph(quantized, tmp_path):
    """The Q/DQ graph handed to TensorRT computes what the fake-quant model trained: ONNX
    Runtime on the export against torch, on images the calibration never saw."""
    import onnxruntime as ort

    from edgekd.export import export_onnx

    path = export_onnx(quantized, tmp_path / "q.onnx", (3, 16, 16)).path
    x = Images(64, 1).x
    with torch.no_grad():
        want = quantized(x).numpy()
    got = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(
        None, {"input": x.numpy()}
    )[0]
    # the same grid in both: at most a rounding step apart somewhere, never a different model
    assert np.abs(got - want).max() <= 0.02 * np.abs(want).max()
    assert (got.argmax(1) == want.argmax(1)).mean() >= 0.98


def test_restore_reattaches_the_residual_quantizers(quantized):
    state, weights = quantizer_state(quantized), quantized.state_dict()
    assert attached(state) == ["block2.down.1", "stem_act"]
    fresh = restore_quantized(Net(), state, weights)
    x = Images(8, 2).x
    with torch.no_grad():
        assert torch.equal(fresh(x), quantized(x))
    assert not fresh.block1.conv1.input_quantizer.is_enabled  # restored switched off


def test_entropy_calibration_sets_the_residual_ranges():
    q = quantize_int8(_net(), Images(32, 0), batch_size=16, method="entropy")
    amax = torch.as_tensor(getattr(q.block2.down[1], ATTR).input_quantizer.amax)
    assert torch.isfinite(amax).all() and float(amax) > 0


def test_timm_linear_classifier_is_quantized(digits, tmp_path):
    """timm's Linear subclass (MobileNetV3's classifier) is quantized like nn.Linear, so the
    TensorRT export has no float Gemm at its end."""
    from torch.utils.data import Subset

    from edgekd.export import export_onnx
    from edgekd.export.lint import lint_file
    from edgekd.models import create_timm

    torch.manual_seed(0)
    calib = Subset(digits.calib_source, range(32))
    q = quantize_int8(create_timm("mobilenetv3_small_050", 10), calib, batch_size=16)
    assert q.classifier.input_quantizer.is_enabled and q.classifier.weight_quantizer.is_enabled
    path = export_onnx(q, tmp_path / "m.onnx", (3, 32, 32)).path
    findings = lint_file(path, "10.3")
    assert [f for f in findings if f.rule in ("float-island", "residual-add-float")] == []

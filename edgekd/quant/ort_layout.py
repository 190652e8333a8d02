"""INT8 laid out the way ONNX Runtime fuses it: BatchNorm folded, `DQ -> Conv -> Q` everywhere.

Model Optimizer's Q/DQ export is right for TensorRT (which folds BatchNorm and fuses itself)
but ONNX Runtime only turns `DQ -> Conv/Gemm (-> Relu) -> Q` with INT8 weight initializers into
integer kernels; on its graph ORT leaves every Conv in float and runs the Q/DQ nodes on their
own, slower than FP32. So for ONNX Runtime targets the trained float weights (after QAT) are
exported to FP32 ONNX, BatchNorm is folded by ORT's pre-processing, and ORT's static quantizer
places the Q/DQ pairs: weights symmetric INT8 per channel, activations asymmetric UINT8 (the
form ORT's x86 and Arm kernels run fastest, and that lets a ReLU fold into its Q), with
activation ranges calibrated by max on the same calibration subset as the QAT model.
"""

from __future__ import annotations

import contextlib
import io
import logging
import tempfile
from collections import Counter
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from edgekd._io import atomic_path
from edgekd.data import loader
from edgekd.errors import StageError

FLOAT_COMPUTE = {"Conv", "FusedConv", "Gemm", "MatMul", "FusedGemm", "NchwcConv"}
INTEGER_COMPUTE = {
    "QLinearConv",
    "QGemm",
    "QLinearMatMul",
    "MatMulInteger",
    "ConvInteger",
    "MatMulIntegerToFloat",
    "DynamicQuantizeMatMul",
}


class _Reader:
    """onnxruntime CalibrationDataReader over a dataset of (image, label)."""

    def __init__(self, ds, input_name: str, batch_size: int) -> None:
        self.ds, self.input_name, self.batch_size = ds, input_name, batch_size
        self.rewind()

    def get_next(self):
        x = next(self._batches, None)
        return None if x is None else {self.input_name: x}

    def rewind(self) -> None:
        self._batches = (x.numpy() for x, _ in loader(self.ds, self.batch_size))


def onnx_scope(module_name: str) -> str:
    """The node-name scope the TorchScript ONNX exporter gives a module's ops: `layer1.0.conv1`
    -> `/layer1/layer1.0/conv1` (numbered children are joined to their parent's name)."""
    comps: list[str] = []
    for part in module_name.split("."):
        comps.append(f"{comps[-1]}.{part}" if part.isdigit() and comps else part)
    return "/" + "/".join(comps)


@torch.no_grad()
def qat_input_ranges(qmodel, calib_ds, batch_size: int = 64) -> dict[str, tuple[float, float]]:
    """Module name -> (rmin, rmax) of its input as the INT8 model learned it: rmax is the
    quantizer's amax (calibrated, then trained through in QAT); rmin is 0 for inputs that were
    never negative on the calibration images (after a ReLU: lets ORT fold the ReLU into its
    Q), else -amax (the symmetric range the model was trained with). A module whose input
    quantizer was switched off because it reads a residual-quantized tensor
    (`edgekd.quant.residual`) takes that tensor's range."""
    from edgekd.quant.residual import ATTR

    amax, lows, hooks, made = {}, {}, [], {}
    for name, m in qmodel.named_modules():
        q = getattr(m, "input_quantizer", None)
        if type(q).__name__ != "TensorQuantizer":
            continue
        if name.endswith("." + ATTR) and q.is_enabled and q.amax is not None:
            tap_amax = float(torch.as_tensor(q.amax).max())

            def tapped(_m, _i, out, a=tap_amax):
                made[id(out)] = a

            hooks.append(m.register_forward_hook(tapped))
            continue
        if q.is_enabled and q.amax is not None:
            amax[name] = float(torch.as_tensor(q.amax).max())
        elif q.is_enabled:
            continue

        def hook(_m, inputs, _out, name=name):
            if name not in amax and id(inputs[0]) in made:
                amax[name] = made[id(inputs[0])]
            lows[name] = min(lows.get(name, 0.0), float(inputs[0].min()))

        hooks.append(m.register_forward_hook(hook))
    device = next(qmodel.parameters()).device
    try:
        qmodel.eval()
        for x, _ in loader(calib_ds, batch_size):
            made.clear()
            qmodel(x.to(device))
    finally:
        for h in hooks:
            h.remove()
    return {n: (0.0 if lows.get(n, 0.0) >= 0 else -a, a) for n, a in amax.items() if a > 0}


def _overrides(pre_onnx: Path, module_ranges: dict[str, tuple[float, float]]) -> dict:
    """TensorQuantOverrides for the ORT quantizer: each module's range on its input tensor."""
    import onnx

    model = onnx.load(str(pre_onnx), load_external_data=False)
    by_scope = {onnx_scope(n): r for n, r in module_ranges.items()}
    out: dict[str, tuple[float, float]] = {}
    for node in model.graph.node:
        if node.op_type not in ("Conv", "Gemm", "MatMul") or not node.name:
            continue
        scope = node.name.rsplit("/", 1)[0]
        if scope in by_scope:
            lo, hi = by_scope[scope]
            t = node.input[0]
            if t in out:  # one tensor feeding two layers: the union of their ranges
                lo, hi = min(lo, out[t][0]), max(hi, out[t][1])
            out[t] = (lo, hi)
    return {t: [{"rmin": np.float32(lo), "rmax": np.float32(hi)}] for t, (lo, hi) in out.items()}


class OrtInt8(NamedTuple):
    """An ORT-layout INT8 file, and whether it carries the learned (QAT) ranges."""

    path: Path
    learned_ranges: bool  # False: calibrated ranges throughout (none given, or they failed)


def quantize_for_ort(
    float_onnx: str | Path,
    out_path: str | Path,
    calib_ds,
    batch_size: int = 32,
    module_ranges: dict[str, tuple[float, float]] | None = None,
    method: str = "max",
    percentile: float = 99.99,
    keep_activations: bool = False,
) -> OrtInt8:
    """Write the ORT-fusable INT8 Q/DQ model of `float_onnx` to `out_path`.

    `module_ranges` (from `qat_input_ranges`) carries the INT8 model's learned activation
    ranges onto the layers' input tensors; the other tensors are calibrated by `method` (max,
    entropy, percentile). `keep_activations` keeps the Relu/Clip nodes ORT's quantizer
    would fold into a zero point of 0 (ORT's graph optimizer still fuses them when it loads
    the file); a graph whose Q/DQ pairs may be dropped later needs them. When ONNX Runtime
    cannot run the model with them, the whole model falls back to calibrated
    ranges, and the result says so."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    logging.getLogger("onnxruntime").setLevel(logging.ERROR)
    out_path = Path(out_path)
    with tempfile.TemporaryDirectory() as d, atomic_path(out_path) as tmp:
        pre = Path(d) / "pre.onnx"
        try:
            with (
                contextlib.redirect_stdout(io.StringIO()),
                contextlib.redirect_stderr(io.StringIO()),
            ):
                quant_pre_process(str(float_onnx), str(pre), skip_symbolic_shape=True)
                extra = {"WeightSymmetric": True, "ActivationSymmetric": False,
                         "CalibPercentile": percentile,
                         "QDQKeepRemovableActivations": keep_activations}  # fmt: skip
                if module_ranges:
                    extra["TensorQuantOverrides"] = _overrides(pre, module_ranges)
                quantize_static(
                    str(pre),
                    str(tmp),
                    _Reader(calib_ds, "input", batch_size),
                    quant_format=QuantFormat.QDQ,
                    per_channel=True,
                    activation_type=QuantType.QUInt8,
                    weight_type=QuantType.QInt8,
                    calibrate_method={"max": CalibrationMethod.MinMax,
                                      "entropy": CalibrationMethod.Entropy,
                                      "percentile": CalibrationMethod.Percentile}[method],
                    extra_options=extra,
                )
        except Exception as e:
            raise StageError(
                "ONNX Runtime INT8 quantization failed",
                value=str(float_onnx),
                fix=str(e).strip().splitlines()[0][:200],
            ) from None
        learned_ok = not module_ranges or _runs(tmp, calib_ds)
    if not learned_ok:
        # some QLinear kernels bound the ratio of their input and output scales; learned
        # ranges can fall outside it: fall back to calibrated ranges for the whole model
        quantize_for_ort(float_onnx, out_path, calib_ds, batch_size, method=method,
                         percentile=percentile)
    return OrtInt8(out_path, bool(module_ranges) and learned_ok)


def ort_layout_of(
    qmodel, float_model, input_shape, calib_ds, out_path: str | Path, batch_size: int = 64
) -> OrtInt8:
    """The ORT layout of a fake-quant model: its float weights (quantizer state left out)
    loaded into `float_model` (the same architecture, unquantized), exported to FP32 ONNX and
    quantized by `quantize_for_ort` with the fake-quant model's learned input ranges."""
    from edgekd.export import export_onnx

    weights = {k: v for k, v in qmodel.state_dict().items() if "_quantizer" not in k}
    float_model.load_state_dict(weights, strict=True)
    with tempfile.TemporaryDirectory() as d:
        fp32 = export_onnx(float_model.eval(), Path(d) / "trained.onnx", input_shape).path
        ranges = qat_input_ranges(qmodel, calib_ds, batch_size)
        return quantize_for_ort(fp32, out_path, calib_ds, module_ranges=ranges)


def _runs(path: Path, calib_ds) -> bool:
    """True when ONNX Runtime executes the model on a calibration batch with finite outputs."""
    import onnxruntime as ort

    from edgekd.backends.onnxruntime import session

    quiet = ort.RunOptions()
    quiet.log_severity_level = 4  # a failing kernel is the answer here, not an error to print
    try:
        sess = session(path)
        x, _ = next(iter(loader(calib_ds, 8)))
        out = sess.run(None, {sess.get_inputs()[0].name: x.numpy()}, quiet)[0]
        return bool(np.isfinite(out).all())
    except Exception:
        return False


def fusion_report(onnx_path: str | Path) -> dict:
    """Which compute ops ONNX Runtime runs in float vs integer after its graph optimizations."""
    import onnx

    from edgekd.backends.onnxruntime import session

    with tempfile.TemporaryDirectory() as d:
        opt = Path(d) / "opt.onnx"
        session(onnx_path, optimized_path=opt, level="extended")
        ops = Counter(n.op_type for n in onnx.load(str(opt)).graph.node)
    return {
        "float_conv_gemm": sum(ops[o] for o in FLOAT_COMPUTE),
        "integer_ops": sum(ops[o] for o in INTEGER_COMPUTE),
        "op_counts": dict(ops),
    }


__all__ = ["OrtInt8", "fusion_report", "onnx_scope", "ort_layout_of", "qat_input_ranges",
           "quantize_for_ort"]  # fmt: skip

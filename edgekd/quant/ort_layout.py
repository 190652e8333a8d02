"""INT8 laid out the way ONNX Runtime fuses it: BatchNorm folded, `DQ -> Conv -> Q` everywhere.

Model Optimizer's Q/DQ export is right for TensorRT (which folds BatchNorm and fuses itself)
but ONNX Runtime only turns `DQ -> Conv/Gemm (-> Relu) -> Q` with INT8 weight initializers into
integer kernels; on its graph ORT leaves every Conv in float and runs the Q/DQ nodes on their
own, slower than FP32. So for ONNX Runtime targets the FP32 student is exported, BatchNorm is
folded by ORT's pre-processing, and ORT's static quantizer places the Q/DQ pairs: weights
symmetric INT8 per channel, activations asymmetric UINT8 (the form ORT's x86 and Arm kernels
run fastest), ranges calibrated on the calibration subset (`quantize_for_ort`). That file is
the template `edgekd.quant.ort_qat` turns into a trainable module, trained (QAT) and written
back as trained. `fusion_report` says which compute ops ORT runs in float after loading.
"""

from __future__ import annotations

import contextlib
import io
import logging
import tempfile
from collections import Counter
from pathlib import Path

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


def quantize_for_ort(
    float_onnx: str | Path,
    out_path: str | Path,
    calib_ds,
    batch_size: int = 32,
    method: str = "max",
    percentile: float = 99.99,
    keep_activations: bool = False,
) -> Path:
    """Write the ORT-fusable INT8 Q/DQ model of `float_onnx` to `out_path`, its activation
    ranges calibrated by `method` (max, entropy, percentile) on `calib_ds`.
    `keep_activations` keeps the Relu/Clip nodes ORT's quantizer would fold into a zero
    point of 0 (ORT's graph optimizer folds a kept Relu into the Q after it when it loads the
    file); a graph whose Q/DQ pairs may be dropped later (`ort_qat.OrtQdq.set_float`) needs
    them. The quantizer then also leaves a Q/DQ pair in front of each kept Relu, which ORT
    runs as a re-quantization after an Add: `ort_qat.drop_pre_relu_pairs` removes it."""
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
    return out_path


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


__all__ = ["fusion_report", "quantize_for_ort"]
